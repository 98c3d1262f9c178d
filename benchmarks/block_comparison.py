"""Which re-parameterizable block to pick: yolorep-n with RepVGG, QARepVGG, ACB, DBB and MobileOne blocks in the
same places, trained, scored and timed side by side in one run.

For each data set (the bundled shapes set; the raccoon photographs, split as their README says: sorted names,
first 160 train, last 40 val), each model is trained by the ordinary ``yolorep train`` command in a subprocess,
one after the other in the order given. Its wall time is the whole command, start-up and the final validation of
``best.pt`` (pycocotools mAP50-95, the column of record) included. Then every ``best.pt`` is fused, and exported
to OpenVINO INT8 (NNCF, calibrated on the train split) at the training image size, batch 1; all fused PyTorch
models and all INT8 models are timed in the same interleaved rounds, so that background load falls on every
model alike, and each INT8 model is scored by pycocotools on square batches at its export size.

    python benchmarks/block_comparison.py --out runs/blocks            # the comparison (see docs/BENCHMARKS.md)
    python benchmarks/block_comparison.py --dry-run --out /tmp/blocks  # tiny data, 1 epoch: proves the pipeline

A run folder already holding ``wall.json`` (a finished training of an earlier invocation with the same --out) is
reused, so an interrupted comparison continues where it stopped. Writes ``blocks.json`` and ``blocks.md``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

import torch

from yolorep.benchmark.report import environment, environment_line
from yolorep.benchmark.timing import default_iters, time_calls, time_interleaved
from yolorep.engine.checkpoint import load_checkpoint
from yolorep.engine.deploy import export, load_backend
from yolorep.engine.val.validator import val
from yolorep.logs import configure_logging

MODELS = {  # block -> model YAML: the same network, that block in every RepVGGBlock place
    "RepVGG": "yolorep-n.yaml",
    "QARepVGG": "yolorep-qa-n.yaml",
    "ACB": "yolorep-acb-n.yaml",
    "DBB": "yolorep-dbb-n.yaml",
    "MobileOne": "yolorep-mobileone-n.yaml",
}
SCHEDULES = {  # data set -> (epochs, imgsz, batch): the schedules of the training table in docs/BENCHMARKS.md
    "shapes": (10, 256, 16),
    "raccoon": (30, 320, 16),
}
DRY_RUN = (1, 64, 8)
ROUNDS = 10


def raccoon_yaml(images_root: Path, out: Path, dry_run: bool) -> Path:
    """A VOC data YAML for the raccoon folder (read-only), its split lists written under ``out``."""
    names = sorted(p.name for p in (images_root / "images").glob("*.jpg"))
    if len(names) < 2:
        raise SystemExit(f"--raccoon {images_root}: no images/*.jpg; give the raccoon folder (../shared/data/raccoon)")
    out.mkdir(parents=True, exist_ok=True)
    cut = len(names) * 4 // 5  # 160 / 40 for the 200 photographs
    train, val = (names[:16], names[cut : cut + 8]) if dry_run else (names[:cut], names[cut:])
    (out / "train.txt").write_text("\n".join(train) + "\n")
    (out / "val.txt").write_text("\n".join(val) + "\n")
    path = out / "raccoon.yaml"
    path.write_text(
        f"path: {images_root.resolve()}\nlayout: voc\nimages: images\nannotations: annotations\n"
        f"train: {(out / 'train.txt').resolve()}\nval: {(out / 'val.txt').resolve()}\n"
    )
    return path


def tiny_shapes_yaml(out: Path) -> Path:
    """For --dry-run: a 16 / 8 image synthetic shapes set, generated under ``out`` on first use."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / "shapes.yaml"
    path.write_text(
        "path: shapes\ntrain: images/train\nval: images/val\ntrain_json: annotations/instances_train.json\n"
        "val_json: annotations/instances_val.json\nsynthetic: {n_train: 16, n_val: 8, imgsz: 96, seed: 5}\n"
    )
    return path


def data_yaml(name: str, args: argparse.Namespace) -> str:
    if name == "raccoon":
        return str(raccoon_yaml(args.raccoon, args.out / "raccoon_split", args.dry_run))
    return str(tiny_shapes_yaml(args.out / "tiny_shapes")) if args.dry_run else "shapes.yaml"


def train_one(model: str, data: str, schedule: tuple[int, int, int], run: Path) -> dict[str, Any]:
    """Train with the CLI in a subprocess, timed from launch to exit; reuse a finished run."""
    record = run / "wall.json"
    if record.exists():
        return json.loads(record.read_text())
    epochs, imgsz, batch = schedule
    command = [
        sys.executable, "-m", "yolorep", "train", "--model", model, "--data", data, "--epochs", str(epochs),
        "--imgsz", str(imgsz), "--batch", str(batch), "--device", "cpu", "--project", str(run.parent),
        "--name", run.name,
    ]  # fmt: skip
    if run.exists():
        raise SystemExit(f"{run}: an unfinished run (no wall.json); delete it to train it again")
    print("training:", " ".join(command), flush=True)
    start = time.perf_counter()
    subprocess.run(command, check=True)
    wall = time.perf_counter() - start
    metrics = json.loads((run / "metrics.json").read_text())
    best = str(run / "weights" / "best.pt")
    result = {"wall_s": wall, "map50_95": metrics["map50_95"], "map50": metrics["map50"], "best": best}
    record.write_text(json.dumps(result, indent=2) + "\n")
    return result


def deploy(best: str, data: str, imgsz: int, calib: int, out: Path) -> dict[str, Any]:
    """The fused model's size, its INT8 OpenVINO export, and that export's mAP at the export size."""
    info = load_checkpoint(best).fuse().info(imgsz, verbose=False)
    int8 = export(best, format="openvino", imgsz=imgsz, batch=1, int8=True, data=data, calib=calib)
    scored = val(int8, data=data, imgsz=imgsz, batch=1, device="cpu", workers=0, project=out, name=Path(best).parts[-3])
    return {"params": info["params"], "gflops": info["gflops"], "int8": str(int8), "int8_map50_95": scored["map50_95"]}


def time_models(paths: dict[str, tuple[str, str]], imgsz: int, iters: int | None) -> dict[str, dict[str, float]]:
    """Median ms per image (batch 1) of every fused model and every INT8 export, in one set of interleaved rounds."""
    host = torch.device("cpu")
    calls, keys = [], []
    x = torch.rand(1, 3, imgsz, imgsz, generator=torch.Generator().manual_seed(1))
    for block, (best, int8) in paths.items():
        for kind, path in (("fused_ms", best), ("int8_ms", int8)):
            backend = load_backend(path, host)
            calls.append(partial(backend, x))
            keys.append((block, kind))
    warm = [time_calls(call, 3, host) for call in calls]
    iters = iters or default_iters(sum(w[-1] for w in warm), host)
    times = time_interleaved(calls, iters, ROUNDS, host)
    result: dict[str, dict[str, float]] = {block: {} for block in paths}
    for (block, kind), ms in zip(keys, times):
        result[block][kind] = statistics.median(ms)
    return result


def compare_on(name: str, data: str, schedule: tuple[int, int, int], args: argparse.Namespace) -> list[dict]:
    out = args.out / name
    rows = []
    for block in args.blocks:
        trained = train_one(MODELS[block], data, schedule, out / "train" / block)
        rows.append({"data": name, "block": block, "model": MODELS[block], "schedule": schedule, **trained})
    for row in rows:
        row.update(deploy(row["best"], data, schedule[1], args.calib, out / "int8_val"))
    timing = time_models({r["block"]: (r["best"], r["int8"]) for r in rows}, schedule[1], args.iters)
    for row in rows:
        row.update(timing[row["block"]])
    return rows


def markdown(rows: list[dict], env: str) -> str:
    lines = [f"`{env}`", ""]
    for data in dict.fromkeys(r["data"] for r in rows):
        epochs, imgsz, batch = next(r["schedule"] for r in rows if r["data"] == data)
        lines += [
            f"{data}: {epochs} epochs, {imgsz} px, batch {batch}; latency batch 1 at {imgsz} px",
            "",
            "| block | params (fused) | GFLOPs (fused) | train wall | mAP50-95 | mAP50 | fused CPU ms | INT8 ms "
            "| INT8 mAP50-95 |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for r in (r for r in rows if r["data"] == data):
            lines.append(
                f"| {r['block']} | {r['params']:,} | {r['gflops']:.2f} | {r['wall_s']:.1f} s | {r['map50_95']:.3f} "
                f"| {r['map50']:.3f} | {r['fused_ms']:.2f} | {r['int8_ms']:.2f} | {r['int8_map50_95']:.3f} |"
            )
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/blocks"), help="folder for runs, exports, tables")
    parser.add_argument("--blocks", default=",".join(MODELS), help=f"comma-separated, of {', '.join(MODELS)}")
    parser.add_argument("--data", default="shapes,raccoon", help="comma-separated: shapes, raccoon")
    parser.add_argument("--raccoon", type=Path, default=Path("../shared/data/raccoon"), help="the raccoon folder")
    parser.add_argument("--calib", type=int, default=64, help="INT8 calibration images")
    parser.add_argument("--iters", type=int, help="timed calls per model (default: about 10 s in all)")
    parser.add_argument(
        "--dry-run", action="store_true", help="16 / 8 images per data set, 1 epoch at 64 px, 8 calibration images"
    )
    args = parser.parse_args()
    args.blocks = [b.strip() for b in args.blocks.split(",") if b.strip()]
    unknown = [b for b in args.blocks if b not in MODELS]
    if unknown:
        raise SystemExit(f"--blocks: unknown {unknown}; use some of {', '.join(MODELS)}")
    if args.dry_run:
        args.calib, args.iters = 8, args.iters or 5
    configure_logging(True)
    rows = []
    for name in [d.strip() for d in args.data.split(",") if d.strip()]:
        if name not in SCHEDULES:
            raise SystemExit(f"--data: unknown {name!r}; use shapes and/or raccoon")
        rows += compare_on(name, data_yaml(name, args), DRY_RUN if args.dry_run else SCHEDULES[name], args)
    env = environment_line(environment(torch.device("cpu")))
    (args.out / "blocks.json").write_text(json.dumps({"environment": env, "rows": rows}, indent=2) + "\n")
    table = markdown(rows, env)
    (args.out / "blocks.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
