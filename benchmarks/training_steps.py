"""Record every loss a tiny seeded training run computes, and its final weights, to compare two versions of the
trainer bit for bit (issue 24: the trainer split into a loop and hooks must train exactly as before).

    # the code before the change, unpacked without git metadata:
    mkdir /tmp/base && git archive f8fdbdc | tar -x -C /tmp/base
    PYTHONPATH=/tmp/base python benchmarks/training_steps.py record /tmp/before.pt
    PYTHONPATH=$PWD python benchmarks/training_steps.py record /tmp/after.pt
    python benchmarks/training_steps.py compare /tmp/before.pt /tmp/after.pt

The run exercises warm-up, gradient accumulation, mosaic closing, the EMA, validation every second epoch (and the
last) and a resume: it is killed after its second epoch and resumed to the end. Every call of the loss (training
steps and validation) is recorded in order, with the weights of last.pt and best.pt and the rows of results.csv
without their timings.
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

TIMED = ("time", "_per_s")  # results.csv columns that hold wall times, which differ between any two runs
HYP = {"warmup_epochs": 1.0, "close_mosaic": 1, "mosaic": 1.0, "nbs": 8, "scale": 0.2, "translate": 0.05}
RUN = dict(model="yolorep-n.yaml", epochs=4, imgsz=64, batch=4, workers=0, val_period=2, seed=3)


class Stop(BaseException):
    """Ends the first process after its second epoch, as a kill would."""


def record(out: Path, device: str) -> None:
    import yolorep
    from yolorep.engine.train.setup import train
    from yolorep.loss import DetectionLoss

    torch.set_num_threads(1)
    calls: list[torch.Tensor] = []
    original = DetectionLoss.forward

    def recorded(self, preds, strides, targets):
        total, items = original(self, preds, strides, targets)
        calls.append(torch.cat([total.detach().reshape(-1), items.detach().reshape(-1)]).cpu().clone())
        return total, items

    def stop_after_second_epoch(trainer: Any) -> None:
        if trainer.epoch == 1:
            raise Stop

    DetectionLoss.forward = recorded
    with tempfile.TemporaryDirectory() as folder:
        data = _tiny_data(Path(folder))
        try:
            train(data=str(data), project=folder, name="run", hyp=dict(HYP), device=device, **RUN,
                  callbacks={"on_model_save": [stop_after_second_epoch]})  # fmt: skip
        except Stop:
            pass
        last = Path(folder) / "run" / "weights" / "last.pt"
        results = train(resume=str(last))
        weights = {name: torch.load(last.parent / name, weights_only=True) for name in ("last.pt", "best.pt")}
        with open(Path(folder) / "run" / "results.csv") as f:
            rows = [{k: v for k, v in row.items() if not any(t in k for t in TIMED)} for row in csv.DictReader(f)]
    torch.save(
        {
            "yolorep": yolorep.__file__,
            "losses": calls,
            "last": weights["last.pt"]["state_dict"],
            "last_train_model": weights["last.pt"]["train_state"]["model"],
            "best": weights["best.pt"]["state_dict"],
            "best_epoch": weights["best.pt"]["epoch"],
            "rows": rows,
            "map50_95": results["map50_95"],
        },
        out,
    )
    print(f"{len(calls)} loss calls recorded with {yolorep.__file__} -> {out}")


def _tiny_data(folder: Path) -> Path:
    path = folder / "shapes.yaml"
    path.write_text(
        "path: shapes\ntrain: images/train\nval: images/val\ntrain_json: annotations/instances_train.json\n"
        "val_json: annotations/instances_val.json\n"
        "synthetic: {n_train: 20, n_val: 6, imgsz: 96, seed: 5, max_objects: 3}\n"
    )
    return path


def compare(before: Path, after: Path) -> int:
    a, b = (torch.load(p, weights_only=True) for p in (before, after))
    print(f"before: {a['yolorep']}\nafter:  {b['yolorep']}")
    problems = []
    if len(a["losses"]) != len(b["losses"]):
        problems.append(f"loss calls: {len(a['losses'])} vs {len(b['losses'])}")
    differing = [i for i, (x, y) in enumerate(zip(a["losses"], b["losses"])) if not torch.equal(x, y)]
    if differing:
        problems.append(f"loss calls differ from call {differing[0]} on ({len(differing)} in all)")
    for key in ("last", "last_train_model", "best"):
        if a[key].keys() != b[key].keys() or any(not torch.equal(a[key][k], b[key][k]) for k in a[key]):
            problems.append(f"{key} weights differ")
    for key in ("best_epoch", "rows", "map50_95"):
        if a[key] != b[key]:
            problems.append(f"{key}: {a[key]} vs {b[key]}")
    print(f"{len(a['losses'])} loss calls, {len(a['last'])} tensors in last.pt and best.pt, {len(a['rows'])} rows")
    print("\n".join(problems) if problems else "identical bit for bit")
    return 1 if problems else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    recording = sub.add_parser("record")
    recording.add_argument("out", type=Path)
    recording.add_argument("--device", default="cpu", help="cpu, or cuda (AMP; kernels may not repeat bit for bit)")
    pair = sub.add_parser("compare")
    pair.add_argument("before", type=Path)
    pair.add_argument("after", type=Path)
    args = parser.parse_args()
    if args.command == "record":
        record(args.out, args.device)
        return 0
    return compare(args.before, args.after)


if __name__ == "__main__":
    sys.exit(main())
