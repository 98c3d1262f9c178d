"""What tracking costs, measured side by side in one process.

1. Tracker overhead: ``update`` per frame with N objects (default 50) moving over a textured, panning 640x480
   scene, for yolorep's ByteTrack, BoT-SORT without camera-motion compensation, and BoT-SORT with sparse optical
   flow and with ECC; ultralytics' BYTETracker and BOTSORT beside them when ultralytics imports (run it in the
   ultralytics venv for that). Median and 90th percentile of per-frame times, and the 1 ms target.
2. End to end: ``yolorep predict`` and ``yolorep track`` (ByteTrack, BoT-SORT) on the same video, nothing saved,
   alternated ``--repeats`` times; frames per second and the ratio to predict.

    PYTHONPATH=$PWD python benchmarks/track_speed.py --weights best.pt --threads 2
    PYTHONPATH=$PWD /tmp/anchors/bin/python benchmarks/track_speed.py --weights best.pt --threads 2  # + ultralytics

Without ``--video`` a shapes-track sequence (320x256, 150 frames) is written to an mp4 and used.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, "/work/shared/anchors")


def scene(n_objects: int, frames: int, seed: int = 0) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """``frames`` detections [n, 6] of n boxes moving at constant velocity (scores 0.3-1, a few dropped per frame)
    and the 640x480 frames of a textured world panning 3 px per frame."""
    rng = np.random.default_rng(seed)
    world = cv2.GaussianBlur(rng.integers(0, 255, (520, 640 + 3 * frames, 3), dtype=np.uint8), (5, 5), 0)
    position = rng.uniform([0, 0], [600, 440], (n_objects, 2))
    velocity = rng.uniform(-2, 2, (n_objects, 2))
    sizes = rng.uniform(20, 60, (n_objects, 2))
    detections, images = [], []
    for t in range(frames):
        position = position + velocity
        shown = rng.uniform(size=n_objects) > 0.05
        boxes = np.concatenate([position, position + sizes], axis=1)[shown] - [3 * t, 0, 3 * t, 0]
        scores = rng.uniform(0.3, 1.0, (len(boxes), 1))
        detections.append(np.concatenate([boxes, scores, np.zeros_like(scores)], axis=1))
        images.append(np.ascontiguousarray(world[:480, 3 * t : 3 * t + 640]))
    return detections, images


def time_tracker(make, detections: list[np.ndarray], images: list[np.ndarray], repeats: int = 3) -> list[float]:
    """Per-frame milliseconds of ``update`` (best of ``repeats`` runs of the whole scene, frame by frame)."""
    best = None
    for _ in range(repeats):
        tracker, times = make(), []
        for dets, image in zip(detections, images):
            start = time.perf_counter()
            tracker.update(dets, image)
            times.append(1000 * (time.perf_counter() - start))
        best = times if best is None or sum(times) < sum(best) else best
    return best


def trackers() -> dict:
    from yolorep.track import build_tracker

    made = {
        "yolorep ByteTrack": lambda: build_tracker("bytetrack.yaml"),
        "yolorep BoT-SORT (no GMC)": lambda: build_tracker({"tracker_type": "botsort", "gmc_method": "none"}),
        "yolorep BoT-SORT (sparseOptFlow)": lambda: build_tracker("botsort.yaml"),
        "yolorep BoT-SORT (ecc)": lambda: build_tracker({"tracker_type": "botsort", "gmc_method": "ecc"}),
    }
    try:
        import ulenv  # noqa: F401  (offline settings, before ultralytics)
        from ultralytics.engine.results import Boxes
        from ultralytics.trackers.bot_sort import BOTSORT
        from ultralytics.trackers.byte_tracker import BYTETracker
        from ultralytics.utils import IterableSimpleNamespace
    except ImportError:
        return made
    base = {"track_high_thresh": 0.25, "track_low_thresh": 0.1, "new_track_thresh": 0.25, "track_buffer": 30,
            "match_thresh": 0.8, "fuse_score": True, "proximity_thresh": 0.5, "appearance_thresh": 0.8,
            "with_reid": False, "model": "auto"}  # fmt: skip

    class Theirs:
        def __init__(self, kind, gmc: str = "sparseOptFlow") -> None:
            args = IterableSimpleNamespace(**base, tracker_type=kind, gmc_method=gmc)
            self.tracker = BOTSORT(args) if kind == "botsort" else BYTETracker(args)

        def update(self, dets, image):
            return self.tracker.update(Boxes(dets.astype(np.float32), image.shape[:2]), image)

    made["ultralytics ByteTrack"] = lambda: Theirs("bytetrack")
    made["ultralytics BoT-SORT (no GMC)"] = lambda: Theirs("botsort", "none")
    made["ultralytics BoT-SORT (sparseOptFlow)"] = lambda: Theirs("botsort")
    return made


def overhead(n_objects: int, frames: int) -> None:
    detections, images = scene(n_objects, frames)
    print(f"\ntracker update per frame, {n_objects} objects, {frames} frames of 640x480 (ms):")
    for name, make in trackers().items():
        times = time_tracker(make, detections, images)
        p90 = float(np.percentile(times, 90))
        verdict = "under 1 ms" if statistics.median(times) < 1.0 else "over 1 ms"
        print(f"  {name:38s} median {statistics.median(times):7.3f}  p90 {p90:7.3f}  ({verdict})", flush=True)


def demo_video(folder: Path) -> Path:
    from yolorep.datasets.shapes_track import generate_shapes_track

    root = generate_shapes_track(folder / "st", sequences=1, frames=150)
    frames = sorted((root / "shapes-01" / "img1").glob("*.jpg"))
    first = cv2.imread(str(frames[0]))
    path = folder / "shapes-01.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (first.shape[1], first.shape[0]))
    for frame in frames:
        writer.write(cv2.imread(str(frame)))
    writer.release()
    return path


def end_to_end(weights: str, video: Path, repeats: int, imgsz: int | None) -> None:
    from yolorep.engine.predict.predictor import predict
    from yolorep.engine.predict.tracking import track

    capture = cv2.VideoCapture(str(video))
    frames = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    capture.release()
    runs = {
        "predict": lambda: predict(weights, video, conf=0.1, no_save=True, imgsz=imgsz, device="cpu"),
        "track bytetrack": lambda: track(weights, video, no_save=True, imgsz=imgsz, device="cpu"),
        "track botsort": lambda: track(weights, video, tracker="botsort.yaml", no_save=True, imgsz=imgsz, device="cpu"),
    }  # both at conf 0.1, so the detector returns the same boxes
    seconds = {name: [] for name in runs}
    for _ in range(repeats):  # alternated, so a change of load hits every command alike
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            seconds[name].append(time.perf_counter() - start)
    base = frames / min(seconds["predict"])
    print(f"\nend to end on {video} ({frames} frames), best of {repeats}, nothing saved:")
    for name, times in seconds.items():
        fps = frames / min(times)
        print(f"  {name:16s} {fps:7.1f} frames/s  ({fps / base:.3f}x predict)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", help="a trained checkpoint for the end-to-end part (skipped without it)")
    parser.add_argument("--video", default=None, help="video for the end-to-end part (default: a shapes-track one)")
    parser.add_argument("--objects", type=int, default=50)
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--imgsz", type=int, default=None)
    parser.add_argument("--threads", type=int, default=2, help="torch and OpenCV threads")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    overhead(args.objects, args.frames)
    if args.weights:
        with tempfile.TemporaryDirectory() as tmp:
            video = Path(args.video) if args.video else demo_video(Path(tmp))
            end_to_end(args.weights, video, args.repeats, args.imgsz)


if __name__ == "__main__":
    main()
