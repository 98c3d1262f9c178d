"""Run ``tests/ultralytics_script.py`` (the script written against ultralytics' detection API that the test suite runs
on yolorep) on ultralytics itself, to show that it checks ultralytics' own meanings.

    /tmp/anchors/bin/python benchmarks/ultralytics_script_check.py [--out /tmp/ulcheck]

It builds an untrained YOLOv8n (offline; nothing is downloaded), saves it as a .pt, draws a tiny data set in YOLO
layout (rectangles of two classes) and calls ``exercise`` exactly as the test does. Prints what was checked.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, "/work/shared/anchors")

import ulenv  # noqa: E402,F401  (offline settings; before ultralytics)
from ultralytics import YOLO  # noqa: E402
from ultralytics_script import exercise  # noqa: E402


def tiny_yolo_dataset(folder: Path, n: int = 8, size: int = 96) -> Path:
    """``n`` images per split of ``size`` px with 1-3 filled rectangles of classes 0/1, YOLO labels, and its YAML."""
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        (folder / "images" / split).mkdir(parents=True, exist_ok=True)
        (folder / "labels" / split).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            image = np.full((size, size, 3), 40, np.uint8)
            lines = []
            for _ in range(rng.integers(1, 4)):
                w, h = rng.integers(16, 48, 2)
                x, y = rng.integers(0, size - w), rng.integers(0, size - h)
                c = int(rng.integers(0, 2))
                cv2.rectangle(image, (int(x), int(y)), (int(x + w), int(y + h)), (200, 60 + 120 * c, 30), -1)
                lines.append(f"{c} {(x + w / 2) / size} {(y + h / 2) / size} {w / size} {h / size}")
            cv2.imwrite(str(folder / "images" / split / f"{i:03d}.jpg"), image)
            (folder / "labels" / split / f"{i:03d}.txt").write_text("\n".join(lines) + "\n")
    yaml = folder / "data.yaml"
    yaml.write_text(f"path: {folder}\ntrain: images/train\nval: images/val\nnames: {{0: red, 1: green}}\n")
    return yaml


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="/tmp/ultralytics_script_check")
    out = Path(parser.parse_args().out)
    data = tiny_yolo_dataset(out / "data")
    weights = out / "yolov8n_untrained.pt"
    model = YOLO("yolov8n.yaml")
    model.model.names = {0: "red", 1: "green"}
    model.save(str(weights))
    image = sorted((out / "data" / "images" / "val").glob("*.jpg"))[0]
    checked = exercise(YOLO, str(weights), str(image), data, out / "run")
    print(f"ultralytics: the script ran; {checked}")


if __name__ == "__main__":
    main()
