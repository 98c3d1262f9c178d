"""Frames/s of video prediction with the fused and the unfused model, measured in one run.

``yolorep predict`` always fuses; this script swaps the unfused model into the same ``Detector`` to show what
fusing buys end to end (decode, letterbox, forward, NMS) on a generated video.

    python benchmarks/video_fps.py --model yolorep-s.yaml --imgsz 640 --frames 60
"""

from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path

import cv2
import numpy as np
import torch

import yolorep
from yolorep.engine.predict.predictor import Detector
from yolorep.nn import DecodedModel


def write_video(path: Path, frames: int, size: tuple[int, int] = (640, 480), fps: float = 30.0) -> Path:
    rng = np.random.default_rng(0)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    for _frame in range(frames):
        image = np.full((size[1], size[0], 3), 90, np.uint8)
        for _ in range(6):
            x, y = int(rng.integers(0, size[0] - 60)), int(rng.integers(0, size[1] - 60))
            cv2.circle(image, (x + 30, y + 30), 25, tuple(int(c) for c in rng.integers(0, 255, 3)), -1)
        writer.write(image)
    writer.release()
    return path


def frames_per_second(detector: Detector, video: Path) -> float:
    start = time.perf_counter()
    count = sum(1 for _ in detector.predict(str(video), stream=True))
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="yolorep-s.yaml")
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", default="runs/benchmark")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    video = write_video(out / "fps_video.mp4", args.frames)
    torch.manual_seed(0)
    unfused = DecodedModel(yolorep.build_model(args.model).eval())
    detector = Detector(copy.deepcopy(unfused.model), device="cpu", imgsz=args.imgsz, conf=0.25)
    fused_model = detector.model
    results = {"fused": [], "unfused": []}
    for _ in range(args.rounds):  # interleaved, so background load falls on both alike
        for name, model in (("unfused", unfused), ("fused", fused_model)):
            detector.model = model
            results[name].append(frames_per_second(detector, video))
    fused, unfused_fps = float(np.median(results["fused"])), float(np.median(results["unfused"]))
    print(
        f"{args.model} at {args.imgsz}, {args.frames} frames, {torch.get_num_threads()} threads: "
        f"unfused {unfused_fps:.2f} frames/s, fused {fused:.2f} frames/s, ratio {fused / unfused_fps:.2f}x"
    )


if __name__ == "__main__":
    main()
