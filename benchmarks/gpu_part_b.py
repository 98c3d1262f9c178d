"""The whole product on CUDA once (issue 31, part B), in one run within a time budget, ending in a compact summary.

From the repository root, on the GPU machine (its Python needs torch, torchvision, OpenCV, pyyaml, tqdm,
matplotlib, onnx and onnxruntime; pycocotools is optional, mAP is then yolorep's internal estimate):

    PYTHON=python3 bash benchmarks/gpu_part_b.sh [OUT]
    python3 benchmarks/gpu_part_b.py --dry-run            # print every command, run nothing
    python3 benchmarks/gpu_part_b.py --device cpu --tiny  # the same flow on a CPU at tiny sizes (no fp16, no graphs)

Steps, most important first (a step that would start after ``--budget`` seconds is skipped):
1. training with AMP on the shapes set, interrupted and resumed; a CPU-started run resumed on the GPU;
2. ``val`` in fp32 and with ``--half``; ``predict`` on a video; ONNX and TorchScript exports (traced on the CPU,
   and fp16 on the GPU), each validated on the GPU; ``benchmark --formats torchscript,onnx`` on the GPU;
3. ``torchrun --nproc_per_node <every GPU>`` on NCCL with the default device and with a device list;
4. ``benchmarks/gpu_check.sh`` for yolorep-n and yolorep-s (the issue's throughput targets);
5. TensorRT fp16 beside PyTorch, and ``export --format tensorrt`` in fp32, fp16 and INT8 timed and scored by
   ``benchmark --formats``, when TensorRT is installed.
Everything goes to OUT/<date-time>/: a log per step under logs/, summary.txt and summary.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

from gpu_part_b_summary import summarize

ROOT = Path(__file__).resolve().parent.parent
ENVIRONMENT = """
import importlib.util, json, shutil, torch
cuda = torch.cuda.is_available()
print(json.dumps({
    "torch": torch.__version__, "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version(),
    "gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if cuda else [],
    "pycocotools": importlib.util.find_spec("pycocotools") is not None,
    "onnxruntime": __import__("onnxruntime").get_available_providers(),
    "tensorrt": importlib.util.find_spec("tensorrt") is not None or shutil.which("trtexec") is not None,
}))
"""
NCCL_ONE_PROCESS = """
import torch, torch.distributed as dist
dist.init_process_group("nccl", init_method="tcp://127.0.0.1:29531", rank=0, world_size=1, device_id=torch.device(0))
t = torch.ones(4, device="cuda:0"); dist.all_reduce(t); box = [{"ok": 1}]; dist.broadcast_object_list(box, src=0)
assert t.sum().item() == 4 and box == [{"ok": 1}]; dist.destroy_process_group(); print("NCCL one process: ok")
"""
VIDEO = """
import sys; from pathlib import Path; from yolorep.demo import write_demo_video
images = sorted(Path(sys.argv[1]).glob("*.jpg"))[:6]; print(write_demo_video(images, Path(sys.argv[2]), frames=48))
"""
SMALL_SHAPES = """path: shapes_small
train: images/train
val: images/val
train_json: annotations/instances_train.json
val_json: annotations/instances_val.json
synthetic: {n_train: 64, n_val: 32, imgsz: 128, seed: 1}
"""


class Run:
    """The run's settings, its clock and the outcome of every step."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args, self.dry = args, args.dry_run
        self.gpu = args.device != "cpu"
        self.device = "0" if self.gpu else "cpu"
        self.out = Path(args.out) / time.strftime("%Y%m%d-%H%M%S")
        self.started = time.perf_counter()
        self.steps: list[dict] = []
        path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
        self.env = dict(os.environ, PYTHONPATH=path, YOLOREP_DATASETS=str(self.out / "datasets"))
        self.facts: dict = {"gpus": ["(dry run)"] * 2} if self.dry else {}

    def left(self) -> float:
        return self.args.budget - (time.perf_counter() - self.started)

    def yolorep(self, *args: str) -> list[str]:
        return [self.args.python, "-m", "yolorep", *args]

    def call(self, step: str, argv: list[str], timeout: float = 300) -> int:
        """Run ``argv`` with its output in logs/STEP.log (appended); its exit status (124: stopped at the budget).
        Every command is also listed in commands.jsonl."""
        self.record(argv)
        if self.dry:
            return 0
        log = self.out / "logs" / f"{step}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "a") as f:
            f.write(f"\n$ {shlex.join(argv)}\n")
            f.flush()
            process = subprocess.Popen(argv, cwd=ROOT, env=self.env, stdout=f, stderr=subprocess.STDOUT,
                                       start_new_session=True)  # fmt: skip
            try:
                return process.wait(timeout=max(1.0, min(timeout, self.left())))
            except subprocess.TimeoutExpired:  # the whole group: gpu_check.sh's benchmark would hold the GPU on
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
                return 124

    def record(self, argv: list[str], note: str = "") -> None:
        print("+", shlex.join(argv), note, flush=True)
        with open(self.out / "commands.jsonl", "a") as f:
            f.write(json.dumps(argv) + "\n")

    def step(self, name: str, function, *args) -> None:
        """Run one step unless the budget is spent; record ok / FAIL / skipped with its seconds and note."""
        if self.left() < 20:
            self.steps.append({"step": name, "status": "skipped", "seconds": 0.0, "note": "out of time"})
            return
        print(f"\n=== {name}", flush=True)
        tic = time.perf_counter()
        try:
            ok, note = function(self, *args)
        except Exception as err:  # a broken step must not stop the others; its error is the note
            ok, note = False, f"{type(err).__name__}: {err}"
        status = "skipped" if ok is None else "ok" if ok else "FAIL"
        self.steps.append({"step": name, "status": status, "seconds": time.perf_counter() - tic, "note": note})
        print(f"--- {name}: {status} {note}", flush=True)


def environment(run: Run) -> tuple[bool, str]:
    argv = [run.args.python, "-c", ENVIRONMENT]
    if run.dry:
        run.call("environment", argv)
        return True, "dry run"
    result = subprocess.run(argv, cwd=ROOT, env=run.env, capture_output=True, text=True, timeout=120)
    if result.returncode:
        return False, result.stderr.strip().splitlines()[-1]
    run.facts = json.loads(result.stdout.strip().splitlines()[-1])
    (run.out / "environment.json").write_text(json.dumps(run.facts, indent=2))
    if run.gpu and not run.facts["gpus"]:
        raise SystemExit("gpu_part_b: CUDA is not available to this Python; use --device cpu for a CPU run")
    gpus = run.facts["gpus"]
    return True, f"torch {run.facts['torch']}, {len(gpus)} x {', '.join(set(gpus)) or 'no GPU'}"


def last_epoch(last: Path) -> int:
    import torch

    try:
        return int(torch.load(last, map_location="cpu", weights_only=True)["epoch"])
    except Exception:  # absent, or replaced while being read: not there yet
        return -1


def interrupted(run: Run, step: str, argv: list[str], last: Path, after_epoch: int) -> str:
    """Start a training command, interrupt it (SIGINT, as Ctrl-C) once ``last`` holds ``after_epoch``."""
    run.record(argv, f"  # interrupted after epoch {after_epoch + 1}")
    if run.dry:
        return "dry run"
    log = run.out / "logs" / f"{step}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a") as f:
        process = subprocess.Popen(argv, cwd=ROOT, env=run.env, stdout=f, stderr=subprocess.STDOUT,
                                   start_new_session=True)  # fmt: skip
        deadline = time.perf_counter() + min(300, run.left())
        while process.poll() is None and last_epoch(last) < after_epoch and time.perf_counter() < deadline:
            time.sleep(0.2)
        if process.poll() is not None:
            return f"ended by itself (exit {process.returncode}) before it could be interrupted"
        os.killpg(process.pid, signal.SIGINT)
        try:
            rc = process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            rc = process.wait()
    return f"interrupted after epoch {last_epoch(last) + 1} (exit {rc})"


def sizes(run: Run) -> dict:
    """Data and sizes: the bundled shapes set at 320 on a GPU, a 64-image one at 64 px on a CPU (--tiny)."""
    small = str(run.out / "small_shapes.yaml")
    if run.args.tiny:
        return {"data": small, "images": run.out / "shapes_small/images/val", "epochs": 3, "imgsz": 64, "batch": 8,
                "small": small, "extra": ["--workers", "0"], "hyp": []}  # fmt: skip
    # the demo's short schedule: an update every batch of 16, AdamW at 3e-3, half the batches mosaics
    hyp = ["--nbs", "16", "--lr0", "0.003", "--mosaic", "0.5", "--close-mosaic", "4", "--warmup-epochs", "1"]
    return {"data": "shapes.yaml", "images": run.out / "datasets/shapes/images/val", "epochs": 12, "imgsz": 320,
            "batch": 16, "small": small, "extra": [], "hyp": hyp}  # fmt: skip


def results_rows(folder: Path) -> int:
    path = folder / "results.csv"
    return max(len(path.read_text().strip().splitlines()) - 1, 0) if path.is_file() else 0


def train_amp(run: Run) -> tuple[bool, str]:
    """AMP training (fp16 on a GPU) interrupted after its second epoch and resumed to the end. The schedule is the
    demo's (which reached mAP50-95 0.21 in 7 epochs at 256 px), so fp16 and the exports are compared on a model
    that detects something."""
    s, project = sizes(run), run.out / "e2e"
    argv = run.yolorep("train", "--model", "yolorep-n.yaml", "--data", s["data"], "--epochs", str(s["epochs"]),
                       "--imgsz", str(s["imgsz"]), "--batch", str(s["batch"]), "--device", run.device,
                       "--project", str(project), "--name", "amp", "--optimizer", "AdamW", *s["hyp"],
                       *s["extra"])  # fmt: skip
    last = project / "amp" / "weights" / "last.pt"
    note = interrupted(run, "train_amp", argv, last, after_epoch=1)
    rc = run.call("train_amp", run.yolorep("train", "--resume", str(last)))
    rows = results_rows(project / "amp")
    return rc == 0 and (run.dry or rows == s["epochs"]), f"{note}; resumed: exit {rc}, {rows}/{s['epochs']} epochs"


def cpu_to_gpu_resume(run: Run) -> tuple[bool, str]:
    """A run started on the CPU (its last.pt holds an empty GradScaler state) resumed on the GPU."""
    s, project = sizes(run), run.out / "e2e"
    argv = run.yolorep("train", "--model", "yolorep-n.yaml", "--data", s["small"], "--epochs", "2", "--imgsz", "64",
                       "--batch", "16", "--device", "cpu", "--project", str(project), "--name", "cpu_start",
                       "--workers", "0")  # fmt: skip
    last = project / "cpu_start" / "weights" / "last.pt"
    note = interrupted(run, "cpu_to_gpu_resume", argv, last, after_epoch=0)
    rc = run.call("cpu_to_gpu_resume", run.yolorep("train", "--resume", str(last), "--device", run.device))
    return rc == 0, f"{note}; resumed on {run.device}: exit {rc}"


def metrics(folder: Path) -> dict:
    path = folder / "metrics.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def validate(run: Run, weights: Path, name: str, *extra: str) -> tuple[int, dict]:
    project = run.out / "e2e"
    argv = run.yolorep("val", "--weights", str(weights), "--device", run.device, "--project", str(project),
                       "--name", name, *extra, *sizes(run)["extra"])  # fmt: skip
    return run.call("val", argv), metrics(project / name)


def val_half(run: Run) -> tuple[bool, str]:
    """fp32 and --half validation of best.pt score alike (fp16 network, boxes decoded in fp32)."""
    best = run.out / "e2e/amp/weights/best.pt"
    (rc32, m32), (rc16, m16) = validate(run, best, "val_fp32"), validate(run, best, "val_half", "--half")
    if run.dry:
        return True, "dry run"
    a, b = m32.get("map50_95", float("nan")), m16.get("map50_95", float("nan"))
    note = f"mAP50-95 fp32 {a:.4f}, --half {b:.4f} ({m32.get('source', '?')}), exits {rc32}/{rc16}"
    return rc32 == rc16 == 0 and abs(a - b) <= 0.01, note


def predict_video(run: Run) -> tuple[bool, str]:
    s, project = sizes(run), run.out / "e2e"
    video = project / "pan.mp4"
    run.call("predict_video", [run.args.python, "-c", VIDEO, str(s["images"]), str(video)])
    video = video if run.dry or video.is_file() else video.with_suffix(".avi")
    argv = run.yolorep("predict", "--weights", str(project / "amp/weights/best.pt"), "--source", str(video),
                       "--device", run.device, "--project", str(project), "--name", "video",
                       *(["--half"] if run.gpu else []))  # fmt: skip
    rc = run.call("predict_video", argv)
    written = [p for p in (project / "video").glob("*") if p.suffix in (".mp4", ".avi") and p.stat().st_size > 0]
    return rc == 0 and (run.dry or bool(written)), f"exit {rc}, wrote {[p.name for p in written]}"


def exports(run: Run) -> tuple[bool, str]:
    """ONNX and TorchScript traced on the CPU, and TorchScript fp16 traced on the GPU, each validated on the GPU."""
    best = run.out / "e2e/amp/weights/best.pt"
    files = {"onnx": best.with_suffix(".onnx"), "torchscript": best.with_suffix(".torchscript")}
    rcs = [run.call("exports", run.yolorep("export", "--weights", str(best), "--format", f, "--device", "cpu"))
           for f in files]  # fmt: skip
    if run.gpu:
        half = run.out / "e2e/half/best.pt"
        half.parent.mkdir(parents=True, exist_ok=True)
        if not run.dry and best.is_file():
            half.write_bytes(best.read_bytes())
        argv = run.yolorep("export", "--weights", str(half), "--format", "torchscript", "--half", "--device", "0")
        rcs.append(run.call("exports", argv))
        files["torchscript_fp16"] = half.with_suffix(".torchscript")
    scores = {}
    for name, path in files.items():
        rc, figures = validate(run, path, f"val_{name}")
        rcs.append(rc)
        scores[name] = round(figures.get("map50_95", float("nan")), 4)
    reference = metrics(run.out / "e2e/val_fp32").get("map50_95", float("nan"))
    close = all(abs(v - reference) <= 0.03 for v in scores.values())
    return not any(rcs) and (run.dry or close), f"exits {rcs}; mAP50-95 {scores} (best.pt {reference:.4f})"


def formats(run: Run) -> tuple[bool, str]:
    s, out = sizes(run), run.out / "e2e"
    argv = run.yolorep("benchmark", "--formats", "torchscript,onnx", "--weights", str(out / "amp/weights/best.pt"),
                       "--device", run.device, "--imgsz", str(s["imgsz"]), "--batch", "8", "--iters", "50",
                       "--out", str(out / "formats"), "--json", str(out / "formats.json"))  # fmt: skip
    rc = run.call("formats", argv)
    path = out / "formats.json"
    rows = json.loads(path.read_text())["rows"] if path.is_file() else []
    note = ", ".join(f"{r['format']} {r['ms']:.2f} ms (box diff {r['max_box_diff_px']:.2g} px)" for r in rows)
    return rc == 0, f"exit {rc}; {note}"


def torchrun(run: Run) -> tuple[bool, str]:
    """DDP on every GPU (NCCL): the default device and an explicit list; gloo with two processes on a CPU."""
    s, project = sizes(run), run.out / "ddp"
    n = len(run.facts.get("gpus", [])) if run.gpu else 2
    notes, rcs = [], []
    if run.gpu and n == 1:  # torchrun with one process does not form a process group: NCCL alone, then
        rcs.append(run.call("torchrun", [run.args.python, "-c", NCCL_ONE_PROCESS]))
        notes.append(f"one GPU: NCCL checked in one process (exit {rcs[-1]})")
    devices = [("default", [] if run.gpu else ["--device", "cpu"])]
    if run.gpu and n > 1:
        devices.append(("list", ["--device", ",".join(map(str, range(n)))]))
    for name, device in devices:
        argv = [run.args.python, "-m", "torch.distributed.run", "--nproc_per_node", str(n), "--master_port", "29533",
                "-m", "yolorep", "train", "--model", "yolorep-n.yaml", "--data", s["data"], "--epochs", "2",
                "--imgsz", str(s["imgsz"]), "--batch", str(s["batch"] * n), "--project", str(project),
                "--name", name, *device, *s["extra"]]  # fmt: skip
        rcs.append(run.call("torchrun", argv, timeout=240))
        epoch = last_epoch(project / name / "weights" / "last.pt")
        notes.append(f"{n} processes, device {name}: exit {rcs[-1]}, last.pt epoch {epoch + 1}")
    return not any(rcs), "; ".join(notes)


def gpu_check(run: Run, model: str) -> tuple[bool | None, str]:
    """benchmarks/gpu_check.sh for one model (fused vs unfused, fp32/fp16, batch 1/32, CUDA graphs, AMP step)."""
    if not run.gpu:
        return None, "CUDA only"
    settings = [f"PYTHON={run.args.python}", f"MODELS={model}", f"BENCH_ARGS=--iters {run.args.iters}"]
    argv = ["env", *settings, "bash", "benchmarks/gpu_check.sh", str(run.out / "gpu_check")]
    rc = run.call(f"gpu_check_{model}", argv)
    return rc == 0, f"exit {rc}"


def tensorrt(run: Run) -> tuple[bool | None, str]:
    """TensorRT fp16 of the fused yolorep-n beside PyTorch fp16, batch 32 at 640, when TensorRT is installed."""
    if not run.gpu or not (run.facts.get("tensorrt") or run.dry):
        return None, "TensorRT is not installed" if run.gpu else "CUDA only"
    folder = run.out / "tensorrt"
    folder.mkdir(parents=True, exist_ok=True)
    weights = folder / "yolorep-n.pt"
    make = "import sys, yolorep; from yolorep.benchmark.command import randomize_for_check as r"
    make += "; yolorep.save(r(yolorep.build_model('yolorep-n.yaml')), sys.argv[1])"  # outputs that check something
    rcs = [run.call("tensorrt", [run.args.python, "-c", make, str(weights)])]
    argv = run.yolorep("export", "--weights", str(weights), "--format", "onnx", "--imgsz", "640", "--batch", "32")
    rcs.append(run.call("tensorrt", argv))
    argv = [run.args.python, "benchmarks/tensorrt_fp16.py", str(weights), str(weights.with_suffix(".onnx")),
            "--json", str(folder / "tensorrt.json")]  # fmt: skip
    rcs.append(run.call("tensorrt", argv, timeout=300))
    path = folder / "tensorrt.json"
    figures = json.loads(path.read_text()) if path.is_file() else {}
    note = ", ".join(f"{k} {v:.4g}" for k, v in figures.items() if isinstance(v, float))
    return not any(rcs), f"exits {rcs}; {note}"


def tensorrt_formats(run: Run) -> tuple[bool | None, str]:
    """``yolorep export --format tensorrt`` in fp32, fp16 and INT8 (issue 29), each checked against PyTorch at
    export, timed beside ONNX Runtime and scored by pycocotools on the trained model, when TensorRT is installed."""
    if not run.gpu or not (run.facts.get("tensorrt") or run.dry):
        return None, "TensorRT is not installed" if run.gpu else "CUDA only"
    s, out = sizes(run), run.out / "e2e"
    argv = run.yolorep("benchmark", "--formats", "onnx,tensorrt,tensorrt-fp16,tensorrt-int8", "--weights",
                       str(out / "amp/weights/best.pt"), "--data", s["data"], "--device", run.device,
                       "--imgsz", str(s["imgsz"]), "--batch", "8", "--iters", "50", "--out", str(out / "trt_formats"),
                       "--json", str(out / "trt_formats.json"))  # fmt: skip
    rc = run.call("tensorrt_formats", argv, timeout=900)
    path = out / "trt_formats.json"
    rows = json.loads(path.read_text())["rows"] if path.is_file() else []
    note = ", ".join(f"{r['format']} {r['ms']:.2f} ms mAP50-95 {r.get('map50_95', float('nan')):.4f}" for r in rows)
    return rc == 0, f"exit {rc}; {note}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", nargs="?", default="runs/gpu_part_b", help="parent folder of this run's folder")
    parser.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    parser.add_argument("--tiny", action="store_true", help="tiny data and sizes (for a CPU)")
    parser.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    parser.add_argument("--budget", type=float, default=480.0, help="seconds after which no step starts")
    parser.add_argument("--iters", type=int, default=100, help="timed calls per model in gpu_check")
    parser.add_argument("--python", default=os.environ.get("PYTHON", sys.executable), help="interpreter to run")
    run = Run(parser.parse_args(argv))
    run.out.mkdir(parents=True, exist_ok=True)
    (run.out / "small_shapes.yaml").write_text(SMALL_SHAPES)
    print(f"gpu_part_b: {run.out} (budget {run.args.budget:.0f} s)", flush=True)
    run.step("environment", environment)
    run.step("train AMP, interrupt, resume", train_amp)
    run.step("CPU-started run resumed on the GPU", cpu_to_gpu_resume)
    run.step("val fp32 and --half", val_half)
    run.step("predict a video", predict_video)
    run.step("exports loaded back on the GPU", exports)
    run.step("benchmark --formats", formats)
    run.step("torchrun", torchrun)
    run.step("gpu_check yolorep-n", gpu_check, "yolorep-n")
    run.step("gpu_check yolorep-s", gpu_check, "yolorep-s")
    run.step("TensorRT fp16", tensorrt)
    run.step("TensorRT exports fp32, fp16, INT8", tensorrt_formats)
    return summarize(run.out, run.steps, time.perf_counter() - run.started)


if __name__ == "__main__":
    sys.exit(main())
