"""Fine-tuning from an imported checkpoint against the same training from scratch, on the raccoon photos.

Both runs train the checkpoint's architecture with the same data, epochs, image size, batch and seed; one starts
from the checkpoint's weights (every tensor but the class predictors), the other from random weights. Prints the
wall time of each run and the pycocotools mAP of its best.pt on the 40 validation photos.

    PYTHONPATH=$PWD python3 benchmarks/finetune_raccoon.py CHECKPOINT.pt --data raccoon.yaml --epochs 10

``raccoon.yaml`` is the data set YAML of README.md's "Pascal VOC data" section (160 train / 40 val photos).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from yolorep.engine.checkpoint import read_checkpoint
from yolorep.engine.train.setup import train
from yolorep.logs import configure_logging


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("weights", help="a YOLOv6 / ultralytics checkpoint (or an imported one)")
    parser.add_argument("--data", required=True)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--project", default="runs/finetune")
    args = parser.parse_args()
    configure_logging()
    checkpoint = read_checkpoint(args.weights)
    architecture = checkpoint.get("source", {}).get("architecture") or checkpoint["model_name"]
    common = {"data": args.data, "epochs": args.epochs, "imgsz": args.imgsz, "batch": args.batch, "seed": 0,
              "project": args.project, "device": "cpu"}  # fmt: skip
    rows = []
    for name, options in (
        ("pretrained", {"weights": args.weights}),
        ("scratch", {"model": f"{architecture}.yaml"}),
    ):
        started = time.perf_counter()
        results = train(name=name, **options, **common)
        minutes = (time.perf_counter() - started) / 60
        rows.append((name, minutes, results["map50_95"], results["map50"], results["save_dir"]))
    print(f"\n{architecture} on {Path(args.data).name}: {args.epochs} epochs at {args.imgsz}, batch {args.batch}")
    print("| start | wall time (min) | mAP50-95 | mAP50 | run |")
    print("|---|---|---|---|---|")
    for name, minutes, map50_95, map50, save_dir in rows:
        print(f"| {name} | {minutes:.1f} | {map50_95:.3f} | {map50:.3f} | {save_dir} |")


if __name__ == "__main__":
    main()
