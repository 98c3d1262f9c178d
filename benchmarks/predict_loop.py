"""Per-image cost of ``YOLO(...)(image)`` called once per image in a loop, against the command line's predictor
running over the same images in one call, side by side (alternating rounds, medians).

    python benchmarks/predict_loop.py --weights runs/train/exp/weights/best.pt \
        --source /work/shared/data/raccoon/images --imgsz 320 --images 40 --rounds 3 [--fresh 5]

``--fresh N`` also times N calls that each build a new predictor (load and fuse the checkpoint again), which is
what ``YOLO.predict`` did before it kept one. Without ``--weights`` an untrained yolorep-n is used (its cost per
image is the same; only NMS sees more boxes). Prints milliseconds per image and the ratio loop / CLI.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import yolorep  # noqa: E402
from yolorep.engine.predict.predictor import Detector  # noqa: E402
from yolorep.engine.predict.sources import IMAGE_SUFFIXES  # noqa: E402
from yolorep.logs import configure_logging  # noqa: E402


def per_image_ms(run, n: int) -> float:
    start = time.perf_counter()
    run()
    return 1000 * (time.perf_counter() - start) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", help="a .pt checkpoint (default: an untrained yolorep-n, 1 class)")
    parser.add_argument("--source", default="/work/shared/data/raccoon/images", help="a folder of images")
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--images", type=int, default=40, help="images per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--fresh", type=int, default=0, help="also time N calls that each reload the checkpoint")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    configure_logging(False)
    weights = args.weights
    if weights is None:
        weights = yolorep.save(yolorep.build_model("yolorep-n.yaml", nc=1), Path(tempfile.mkdtemp()) / "n.pt")
    files = sorted(str(p) for p in Path(args.source).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    files = files[: args.images]
    settings = {"imgsz": args.imgsz, "device": args.device}

    cli = Detector(weights, **settings)  # what `yolorep predict` builds once and runs over the source
    model = yolorep.YOLO(weights, verbose=False)
    model(files[0], **settings)  # first call builds the kept predictor; warm both up alike
    list(cli.predict(files[:1]))
    timings: dict[str, list[float]] = {"cli": [], "loop": []}
    for _ in range(args.rounds):
        timings["cli"].append(per_image_ms(lambda: list(cli.predict(files)), len(files)))
        timings["loop"].append(per_image_ms(lambda: [model(f, **settings) for f in files], len(files)))
    if args.fresh:
        fresh = files[: args.fresh]
        timings["fresh"] = [per_image_ms(lambda: [Detector(weights, **settings).predict(f) for f in fresh], len(fresh))]
    medians = {k: statistics.median(v) for k, v in timings.items()}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {len(files)} images at {args.imgsz}, "
          f"{args.rounds} alternating rounds (median ms per image)")  # fmt: skip
    print(f"  CLI predictor over the folder : {medians['cli']:8.1f} ms  (rounds {timings['cli']})")
    print(f"  YOLO(...)(image) in a loop    : {medians['loop']:8.1f} ms  (rounds {timings['loop']})")
    if "fresh" in medians:
        print(f"  a new predictor per call      : {medians['fresh']:8.1f} ms")
    print(f"  ratio loop / CLI              : {medians['loop'] / medians['cli']:8.2f}")


if __name__ == "__main__":
    main()
