"""The prepared GPU scripts (benchmarks/gpu_part_b.py, gpu_check.sh) run on a lent GPU machine in one shot, so
every command they would run is checked here: yolorep commands parse with the CLI's own parser, Python snippets
compile, and the summary reads the figures from real benchmark JSON files."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from yolorep.benchmark import benchmark
from yolorep.cli import parse_args

ROOT = Path(__file__).resolve().parents[2]
BENCHMARKS = ROOT / "benchmarks"


def _yolorep_args(argv: list[str]) -> list[str] | None:
    """The yolorep arguments of ``python -m yolorep ...`` or ``torchrun ... -m yolorep ...``; else None."""
    for i in range(len(argv) - 1):
        if argv[i] == "-m" and argv[i + 1] == "yolorep":
            return argv[i + 2 :]
    return None


def _gpu_check_commands(tmp_path: Path, env: dict[str, str]) -> list[list[str]]:
    """The commands gpu_check.sh runs, recorded by a stand-in interpreter."""
    log = tmp_path / "python_calls.jsonl"
    fake = tmp_path / "fake_python"
    fake.write_text(
        f'#!{sys.executable}\nimport json, sys\nopen("{log}", "a").write(json.dumps(sys.argv[1:]) + "\\n")\n'
    )
    fake.chmod(0o755)
    env = dict(os.environ, **env, PYTHON=str(fake))
    result = subprocess.run(["bash", str(BENCHMARKS / "gpu_check.sh"), str(tmp_path / "out")], env=env, cwd=ROOT,
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_gpu_check_runs_every_benchmark_with_the_chosen_interpreter(tmp_path):
    calls = _gpu_check_commands(tmp_path, {"MODELS": "yolorep-n yolorep-s", "BENCH_ARGS": "--iters 7"})
    benchmarks = [argv for argv in calls if argv[:2] == ["-m", "yolorep"]]
    assert len(benchmarks) == 14 and calls[-1][0] == "-"  # 7 per model, then the summary script on stdin
    for argv in benchmarks:
        command, kwargs, _ = parse_args(argv[2:])
        assert command == "benchmark" and kwargs["device"] == "cuda" and kwargs["iters"] == 7, argv
    names = {Path(parse_args(argv[2:])[1]["json"]).stem for argv in benchmarks}
    assert {"yolorep-n_b32_fp16_graph", "yolorep-s_train_b64_amp", "yolorep-n_b1_fp16_graph"} <= names


def test_gpu_part_b_dry_run_lists_commands_that_parse(tmp_path):
    result = subprocess.run([sys.executable, str(BENCHMARKS / "gpu_part_b.py"), str(tmp_path), "--dry-run"],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    (run,) = tmp_path.iterdir()
    commands = [json.loads(line) for line in (run / "commands.jsonl").read_text().splitlines()]
    subcommands = set()
    for argv in commands:
        args = _yolorep_args(argv)
        if args is not None:
            subcommands.add(parse_args(args)[0])  # a bad flag would exit 2 here
        elif argv[1] == "-c":
            compile(argv[2], "<snippet>", "exec")
        elif argv[0] == "env":
            assert argv[-2] == "benchmarks/gpu_check.sh"
        else:
            assert argv[1] == "benchmarks/tensorrt_fp16.py" and (ROOT / argv[1]).is_file(), argv
    assert subcommands == {"train", "val", "predict", "export", "benchmark"}
    torchrun = [argv for argv in commands if "torch.distributed.run" in argv]
    assert len(torchrun) == 2 and "--device" not in torchrun[0] and "0,1" in torchrun[1]  # default, then a list
    assert "summary" in result.stdout and "step" in result.stdout


@pytest.mark.usefixtures("one_thread")
def test_summary_reads_the_targets_from_benchmark_json(tmp_path):
    sys.path.insert(0, str(BENCHMARKS))
    try:
        from gpu_part_b_summary import summarize, target_figures
    finally:
        sys.path.remove(str(BENCHMARKS))
    folder = tmp_path / "gpu_check"
    fast = {"model": "yolorep-n.yaml", "imgsz": 64, "batch": 2, "iters": 2, "warmup": 0, "device": "cpu"}
    inference = benchmark(**fast, json=str(folder / "yolorep-n_b32_fp16.json"))
    benchmark(**fast, json=str(folder / "yolorep-n_b1_fp32.json"))
    training = benchmark(**fast, train=True, json=str(folder / "yolorep-n_train_b64_amp.json"))
    figures = target_figures(folder)
    assert figures == {"speedup_b32": inference["speedup"], "images_b32": inference["images_per_s_fused"],
                       "graph_b1_ms": None, "train_b64": training["train_images_per_s"]}  # fmt: skip
    steps = [{"step": "a", "status": "ok", "seconds": 1.0, "note": ""}]
    assert summarize(tmp_path, steps, 3.0) == 0
    text = (tmp_path / "summary.txt").read_text()
    assert "fused batch 1 CUDA graph, ms" in text and "not measured" in text
    assert "yolorep-n_b1_fp32" in text and "unfused vs fused, fp32" in text
    assert summarize(tmp_path, [*steps, {"step": "b", "status": "FAIL", "seconds": 0.0, "note": "x"}], 3.0) == 1
