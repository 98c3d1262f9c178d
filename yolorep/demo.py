"""``yolorep demo``: the whole product on the bundled synthetic data in one command.

Generate the shapes set, train yolorep-n with multi-branch blocks, fuse it (check the outputs and the speed),
evaluate the fused model with pycocotools, then predict on validation images and on a short generated video.
"""

from __future__ import annotations

import logging
from pathlib import Path
from time import perf_counter
from typing import Any

import numpy as np

from yolorep.assets import DATA_DIR
from yolorep.datasets.spec import load_data_spec
from yolorep.engine.device import select_device
from yolorep.errors import ArgumentError
from yolorep.options import DemoOptions

__all__ = ["demo", "write_demo_video"]

LOGGER = logging.getLogger(__name__)
SHAPES_YAML = DATA_DIR / "shapes.yaml"
# Image size and batch for 2 CPU cores, and for a GPU (which affords a sharper input); the epochs are fitted to the
# time budget (--time, 9 minutes for the whole demo by default) from the measured epoch times.
CPU_DEFAULTS = {"imgsz": 256, "batch": 8}
GPU_DEFAULTS = {"imgsz": 320, "batch": 32}
DEMO_MINUTES = 9.0
# What the demo does after training (the fuse benchmark, predicting images and a video), reserved from the budget.
AFTER_TRAINING_SECONDS = 45.0
# Tuned on the shapes set for a short schedule: small batches without accumulation (more steps), AdamW at 3e-3,
# half the batches as mosaics, and the last 4 epochs without them.
DEMO_HYP = {"warmup_epochs": 1.0, "close_mosaic": 4, "mosaic": 0.5, "lr0": 0.003, "nbs": 8}
N_PREDICTED_IMAGES = 8
VIDEO_FRAMES = 48


def write_demo_video(image_paths: list[Path], path: Path, frames: int = VIDEO_FRAMES, fps: float = 12.0) -> Path:
    """A short video panning across validation images, so prediction on video can be seen without any download."""
    import cv2

    images = [cv2.imread(str(p)) for p in image_paths]
    images = [im for im in images if im is not None]
    height = min(im.shape[0] for im in images)
    strip = np.concatenate([cv2.resize(im, (round(im.shape[1] * height / im.shape[0]), height)) for im in images], 1)
    width = min(height * 4 // 3, strip.shape[1]) // 2 * 2
    height = height // 2 * 2
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    if not writer.isOpened():
        path = path.with_suffix(".avi")
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (width, height))
    try:
        for i in range(frames):
            left = round(i * (strip.shape[1] - width) / max(frames - 1, 1))
            writer.write(np.ascontiguousarray(strip[:height, left : left + width]))
    finally:
        writer.release()
    return path


def demo(options: DemoOptions | None = None, /, **kwargs: Any) -> dict[str, Any]:
    """Run the demo; returns a summary dict (metrics, fuse check, speed ratio, files written).

    The options are ``DemoOptions`` (or its fields as keywords): ``time``, minutes for the whole demo (default 9):
    training gets what the data generation and the steps after it leave, and its epochs are fitted to that from
    measured epoch times; ``epochs`` trains exactly this many epochs instead; ``speed_iters`` sets the timed calls
    per model of the fused/unfused speed check (default: about 10 s).
    """
    o = options if options is not None else DemoOptions.from_kwargs(kwargs)
    time, epochs, project, data = o.time, o.epochs, o.project, o.data or SHAPES_YAML
    from yolorep.benchmark import benchmark
    from yolorep.engine.train.setup import train

    started = perf_counter()
    dev = select_device(o.device)
    defaults = GPU_DEFAULTS if dev.type == "cuda" else CPU_DEFAULTS
    imgsz, batch = o.imgsz or defaults["imgsz"], o.batch or defaults["batch"]
    minutes = DEMO_MINUTES if time is None else time
    plan = f"{epochs} epochs" if epochs is not None else f"a {minutes:g}-minute budget"
    LOGGER.info("yolorep demo on %s: yolorep-n at %d px for %s, synthetic shapes (generated if absent)", dev, imgsz,
                plan)  # fmt: skip
    spec = load_data_spec(data)

    LOGGER.info("\n[1/4] training yolorep-n with multi-branch RepVGG blocks")
    budget = {"epochs": epochs} if epochs is not None else {"time": _training_hours(minutes, perf_counter() - started)}
    results = train(
        model="yolorep-n.yaml", data=data, imgsz=imgsz, batch=batch, device=str(dev), workers=o.workers,
        project=project, name="exp", hyp=dict(DEMO_HYP), optimizer="AdamW", **budget,
    )  # fmt: skip
    run = Path(results["save_dir"])
    best = run / "weights" / "best.pt"

    LOGGER.info("\n[2/4] fusing: every RepVGGBlock becomes one 3x3 conv, every Conv+BN one conv")
    report = str(run / "fuse_benchmark.json")
    speed = benchmark(weights=str(best), imgsz=imgsz, batch=1, device=str(dev), iters=o.speed_iters, json=report)

    LOGGER.info("\n[3/4] the fused best.pt scored by pycocotools on the validation split (see above)")
    LOGGER.info("mAP50-95 %.3f, mAP50 %.3f (pycocotools)", results["map50_95"], results["map50"])

    LOGGER.info("\n[4/4] predicting with the fused model on validation images and a generated video")
    predict_dirs = _predict_samples(best, sorted(spec.split_dir("val").glob("*.jpg")), imgsz, str(dev))

    summary = {
        "save_dir": str(run),
        "map50_95": results["map50_95"],
        "map50": results["map50"],
        "fuse_max_abs_diff": speed["max_abs_diff"],
        "fused_speedup": speed["speedup"],
        "files": sorted(str(p) for p in run.rglob("*") if p.is_file()),
        "predict_dirs": [str(d) for d in predict_dirs],
        "epochs": len((run / "results.csv").read_text().splitlines()) - 1,
        "seconds": perf_counter() - started,
    }
    _log_summary(summary)
    return summary


def _predict_samples(best: Path, val_images: list[Path], imgsz: int, device: str) -> tuple[Path, Path]:
    """Predict a few validation images, listed in a text file, and a video panned across others; returns the two
    predict folders inside the run."""
    from yolorep.engine.predict.predictor import predict

    run = best.parents[1]
    listing = run / "demo_images.txt"
    listing.write_text("\n".join(str(p) for p in val_images[:N_PREDICTED_IMAGES]) + "\n")
    image_dir = predict(weights=best, source=str(listing), imgsz=imgsz, device=device, project=run, name="predict")
    video = write_demo_video(val_images[-6:], run / "shapes_pan.mp4", frames=VIDEO_FRAMES)
    video_dir = predict(  # its frames without a line each: the images above showed what a line says
        weights=best, source=str(video), imgsz=imgsz, device=device, project=run, name="predict_video", verbose=False
    )
    return image_dir, video_dir


def _training_hours(minutes: float, spent_seconds: float) -> float:
    """The training budget: the demo's minutes less what is spent already and what the later steps need."""
    seconds = minutes * 60 - spent_seconds - AFTER_TRAINING_SECONDS
    if seconds <= 0:
        raise ArgumentError(
            f"--time {minutes:g}: too short for the demo; give at least {AFTER_TRAINING_SECONDS / 30:g}"
        )
    return seconds / 3600


def _log_summary(summary: dict[str, Any]) -> None:
    LOGGER.info("\n=== yolorep demo summary ===")
    LOGGER.info("%d epochs trained; the demo took %.0f s", summary["epochs"], summary["seconds"])
    LOGGER.info(
        "fused model: mAP50-95 %.3f, mAP50 %.3f (pycocotools); fused vs unfused: largest output difference %.2e, "
        "%.2fx faster",
        summary["map50_95"], summary["map50"], summary["fuse_max_abs_diff"], summary["fused_speedup"],
    )  # fmt: skip
    LOGGER.info("files written under %s:", summary["save_dir"])
    root = Path(summary["save_dir"])
    for name in summary["files"]:
        path = Path(name)
        LOGGER.info("  %-48s %8.1f kB", path.relative_to(root), path.stat().st_size / 1024)
