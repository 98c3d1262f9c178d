"""Each tool's own default OpenVINO export, then its own predict on the same video, as their users meet them
(issue 30): ``yolorep export --format openvino`` + ``yolorep.YOLO(...).predict``, and ultralytics'
``export(format="openvino")`` + ``YOLO(...).predict``, both streamed without saving, each run in a process of its own,
with the mean inference time per image each reports. Alternated ``--repeats`` times, so that a change in background
load falls on both.

Run in the ultralytics venv (``/work/shared/anchors/README.md``), from the repository root, on a quiet machine:

    PYTHONPATH=$PWD /tmp/anchors/bin/python benchmarks/default_deploy.py --out /tmp/default_deploy

Both models have random weights (no download); the video is ``--frames`` 640x480 frames of the raccoon photographs.
``--export-args`` adds options to ``yolorep export`` (``"--precision int8 --data DATA.yaml"``: the INT8 path that
``--precision auto --data`` picks where it is faster and within 0.005 mAP50-95; its accuracy is measured by
``yolorep benchmark --formats auto`` on trained weights, not here).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import statistics
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

ANCHORS = Path("/work/shared/anchors")


def write_video(images: Path, path: Path, frames: int) -> Path:
    """``frames`` 640x480 frames, each a photograph of ``images`` letterboxed onto gray (cycling through them)."""
    files = sorted(images.glob("*.jpg"))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (640, 480))
    for i in range(frames):
        image = cv2.imread(str(files[i % len(files)]))
        ratio = min(640 / image.shape[1], 480 / image.shape[0])
        image = cv2.resize(image, (round(image.shape[1] * ratio), round(image.shape[0] * ratio)))
        canvas = np.full((480, 640, 3), 114, np.uint8)
        top, left = (480 - image.shape[0]) // 2, (640 - image.shape[1]) // 2
        canvas[top : top + image.shape[0], left : left + image.shape[1]] = image
        writer.write(canvas)
    writer.release()
    return path


def yolorep_cli(*args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "yolorep", *args], capture_output=True, text=True, check=True)
    return done.stdout + done.stderr


# each tool's Python predict, streamed and saving nothing, in a process of its own (ultralytics sets torch's thread
# count to one less than the CPU count when it selects a device; a process per run keeps that out of the other's)
ENVIRONMENT = dict(os.environ)  # as it was before ultralytics, which sets OMP_NUM_THREADS when it is imported
PREDICT = {
    "yolorep": "import yolorep\nresults = yolorep.YOLO({model!r}).predict({video!r}, stream=True, imgsz=640)\n",
    "ultralytics": f"import sys; sys.path.insert(0, {str(ANCHORS)!r}); import ulenv\n"
    "from ultralytics import YOLO\n"
    "results = YOLO({model!r}, task='detect').predict({video!r}, stream=True, imgsz=640, verbose=False)\n",
}
REPORT = "import statistics; print(statistics.mean(r.speed['inference'] for r in results))\n"


def predict_ms(tool: str, model: Path, video: Path) -> float:
    """The mean inference time per image that ``tool``'s own predict reports on ``video``."""
    code = PREDICT[tool].format(model=str(model), video=str(video)) + REPORT
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=ENVIRONMENT)
    return float(done.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="/tmp/default_deploy")
    ap.add_argument("--images", default="/work/shared/data/raccoon/images")
    ap.add_argument("--frames", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--export-args", default="", help="more yolorep export options, e.g. '--precision int8 --data D'")
    args = ap.parse_args()
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    video = write_video(Path(args.images), out / "raccoon.mp4", args.frames)

    import yolorep

    weights = yolorep.save(yolorep.build_model("yolorep-n.yaml", nc=80).eval(), out / "yolorep-n.pt")
    export_log = yolorep_cli(
        "export", "--weights", str(weights), "--format", "openvino", "--imgsz", "640", *shlex.split(args.export_args)
    )
    ours = max(out.glob("yolorep-n*_openvino_model"), key=lambda path: path.stat().st_mtime)  # the one just written
    precision = re.search(r"precision (\w+: [^\n]*)", export_log).group(1)

    sys.path.insert(0, str(ANCHORS))
    import ulenv  # noqa: F401  (offline ultralytics settings, before ultralytics is imported)
    from ultralytics import YOLO

    os.chdir(out)  # ultralytics writes a YAML-built model's export into the working folder
    theirs = out / YOLO("yolov8n.yaml").export(format="openvino", imgsz=640)
    runs: dict[str, list[float]] = {"yolorep-n (yolorep export + predict)": [], "YOLOv8n (ultralytics)": []}
    for _ in range(args.repeats):
        runs["yolorep-n (yolorep export + predict)"].append(predict_ms("yolorep", ours, video))
        runs["YOLOv8n (ultralytics)"].append(predict_ms("ultralytics", theirs, video))
    print(f"yolorep-n export: {precision}")
    for name, ms in runs.items():
        print(f"{name:40s} inference ms/image, each run: {', '.join(f'{m:.1f}' for m in ms)}")
    ratio = statistics.median(runs["YOLOv8n (ultralytics)"]) / statistics.median(runs[next(iter(runs))])
    print(f"yolorep-n speed / YOLOv8n speed (median runs): {ratio:.2f}x")
    (out / "default_deploy.json").write_text(json.dumps({"precision": precision, "ms": runs, "ratio": ratio}, indent=1))


if __name__ == "__main__":
    main()
