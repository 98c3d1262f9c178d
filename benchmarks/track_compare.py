"""yolorep's trackers beside ultralytics' on the same detections, scored with TrackEval (HOTA, IDF1, MOTA, IDSW).

Our detector runs once over every sequence and its boxes are written to ``OUT/dets/<sequence>.txt``; the same boxes
then feed yolorep's ByteTrack and BoT-SORT and ultralytics' BYTETracker and BOTSORT, each with the same settings
(``cfg/trackers/*.yaml``, which hold ultralytics' default values) and the frames (for camera-motion compensation).
Every tracker's boxes are clipped to the image the same way and scored by the same TrackEval call.

Run it in the ultralytics venv (reference only; ultralytics is never a yolorep dependency), with this tree first:

    PYTHONPATH=$PWD OMP_NUM_THREADS=1 /tmp/anchors/bin/python benchmarks/track_compare.py \\
        --weights shapes_best.pt --gt datasets/shapes-track --out runs/track-compare/shapes
    PYTHONPATH=$PWD OMP_NUM_THREADS=1 /tmp/anchors/bin/python benchmarks/track_compare.py \\
        --weights raccoon_best.pt --raccoon ../shared/data/raccoon --gt runs/track-compare/raccoon-clips \\
        --out runs/track-compare/raccoon

Detections already in ``OUT/dets`` are reused. ``--raccoon DIR`` first builds clips from the raccoon photographs (the
40 of the validation split: names sorted, the last 40), panned and zoomed by a moving camera, with ground truth from
the VOC boxes (see ``raccoon_clips``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, "/work/shared/anchors")

VIEW_WH = (320, 240)
DETECT_CONF = 0.05  # below every tracker's low threshold (0.1), so the second association has boxes to use


def raccoon_clips(raccoon: Path, out: Path, per_clip: int = 4, frames: int = 100, seed: int = 0) -> Path:
    """MOTChallenge sequences from the validation photographs: ``per_clip`` photos side by side (height 300), seen
    through a 320x240 camera that pans across them, bobs up and down and zooms in and out (1.0x-1.3x), with a
    little shake. Ground truth: each VOC box moved with the camera and clipped to the view; one with under half of
    itself in view is a distractor (class 8, not scored), under 4 px it is left out."""
    names = sorted(p.name for p in (raccoon / "images").iterdir())[-40:]
    rng = np.random.default_rng(seed)
    for clip in range(len(names) // per_clip):
        strip, boxes = _strip(raccoon, names[clip * per_clip : (clip + 1) * per_clip], height=300)
        folder = out / f"raccoon-{clip + 1:02d}"
        (folder / "img1").mkdir(parents=True, exist_ok=True)
        rows = []
        for f in range(frames):
            zoom = 1.15 + 0.15 * np.sin(2 * np.pi * f / 70 + clip)
            win_w, win_h = VIEW_WH[0] / zoom * 1.25, VIEW_WH[1] / zoom * 1.25  # strip pixels seen
            x = (strip.shape[1] - win_w) * (0.5 - 0.5 * np.cos(np.pi * f / (frames - 1))) + rng.normal(0, 1.5)
            y = (strip.shape[0] - win_h) * (0.5 + 0.5 * np.sin(2 * np.pi * f / 45)) + rng.normal(0, 1.5)
            x, y = float(np.clip(x, 0, strip.shape[1] - win_w)), float(np.clip(y, 0, strip.shape[0] - win_h))
            scale = VIEW_WH[0] / win_w
            affine = np.array([[scale, 0, -x * scale], [0, scale, -y * scale]])
            view = cv2.warpAffine(strip, affine, VIEW_WH, flags=cv2.INTER_LINEAR)
            cv2.imwrite(str(folder / "img1" / f"{f + 1:06d}.jpg"), view, [cv2.IMWRITE_JPEG_QUALITY, 92])
            for track_id, (x1, y1, x2, y2) in enumerate(boxes, start=1):
                full = np.array([x1 - x, y1 - y, x2 - x, y2 - y]) * scale
                seen = np.clip(full, 0, [VIEW_WH[0], VIEW_WH[1], VIEW_WH[0], VIEW_WH[1]])
                w, h = seen[2] - seen[0], seen[3] - seen[1]
                if w < 4 or h < 4:
                    continue
                share = w * h / ((full[2] - full[0]) * (full[3] - full[1]))
                cls = 1 if share >= 0.5 else 8
                rows.append(f"{f + 1},{track_id},{seen[0]:.1f},{seen[1]:.1f},{w:.1f},{h:.1f},1,{cls},{share:.3f}")
        (folder / "gt").mkdir(exist_ok=True)
        (folder / "gt" / "gt.txt").write_text("".join(f"{r}\n" for r in rows))
        (folder / "seqinfo.ini").write_text(
            f"[Sequence]\nname={folder.name}\nimDir=img1\nframeRate=30\nseqLength={frames}\n"
            f"imWidth={VIEW_WH[0]}\nimHeight={VIEW_WH[1]}\nimExt=.jpg\n"
        )
    return out


def _strip(raccoon: Path, names: list[str], height: int) -> tuple[np.ndarray, list[tuple[float, ...]]]:
    """Photos resized to ``height`` and put side by side; their VOC boxes (1-based corners) in strip pixels."""
    images, boxes, left = [], [], 0
    for name in names:
        image = cv2.imread(str(raccoon / "images" / name))
        scale = height / image.shape[0]
        images.append(cv2.resize(image, (round(image.shape[1] * scale), height)))
        root = ET.parse(raccoon / "annotations" / f"{Path(name).stem}.xml").getroot()
        for obj in root.iter("object"):
            b = obj.find("bndbox")
            x1, y1, x2, y2 = (float(b.find(k).text) for k in ("xmin", "ymin", "xmax", "ymax"))
            boxes.append((left + (x1 - 1) * scale, (y1 - 1) * scale, left + x2 * scale, y2 * scale))
        left += images[-1].shape[1]
    return np.concatenate(images, axis=1), boxes


def sequences_of(gt: Path) -> list[Path]:
    return sorted(p.parent.parent for p in gt.glob("*/gt/gt.txt"))


def detect(weights: str, sequences: list[Path], out: Path, imgsz: int | None) -> dict[str, list[np.ndarray]]:
    """Run our detector once per frame; ``{sequence: [detections [N, 6] per frame]}``, also written to ``out``."""
    from yolorep.engine.predict.predictor import Detector

    found = {}
    out.mkdir(parents=True, exist_ok=True)
    if all((out / f"{folder.name}.txt").is_file() for folder in sequences):  # written by an earlier run: reuse
        for folder in sequences:
            rows = np.loadtxt(out / f"{folder.name}.txt", delimiter=",", ndmin=2).reshape(-1, 8)
            count = len(list((folder / "img1").glob("*.jpg")))
            found[folder.name] = [rows[rows[:, 0] == f][:, 2:8] for f in range(1, count + 1)]
        return found
    detector = Detector(weights, device="cpu", imgsz=imgsz, conf=DETECT_CONF)
    for folder in sequences:
        frames = sorted((folder / "img1").glob("*.jpg"))
        found[folder.name] = [
            r.boxes.data.numpy().astype(np.float64) for r in detector.predict([str(p) for p in frames])
        ]
        rows = [f"{i},-1,{','.join(f'{v:.2f}' for v in d[:4])},{d[4]:.4f},{int(d[5])}"
                for i, dets in enumerate(found[folder.name], 1) for d in dets]  # fmt: skip
        (out / f"{folder.name}.txt").write_text("".join(f"{r}\n" for r in rows))
    return found


def _ours(kind: str, recover_buffer: float = 0.0):
    from yolorep.assets import TRACKERS_DIR
    from yolorep.track import build_tracker
    from yolorep.track.config import _read_yaml

    settings = {**_read_yaml(TRACKERS_DIR / f"{kind}.yaml"), "recover_buffer": recover_buffer}
    return lambda: build_tracker(settings, frame_rate=30)


def _theirs(kind: str):
    import ulenv  # noqa: F401  (offline settings, before ultralytics)
    from ultralytics.engine.results import Boxes
    from ultralytics.trackers.bot_sort import BOTSORT
    from ultralytics.trackers.byte_tracker import BYTETracker
    from ultralytics.utils import IterableSimpleNamespace

    from yolorep.assets import TRACKERS_DIR
    from yolorep.track.config import _read_yaml

    settings = {"with_reid": False, "proximity_thresh": 0.5, "appearance_thresh": 0.8, "model": "auto",
                **_read_yaml(TRACKERS_DIR / f"{kind}.yaml")}  # fmt: skip
    args = IterableSimpleNamespace(**settings)

    class Adapter:
        """ultralytics' tracker behind our ``update(detections [N, 6], image) -> [M, 8]``."""

        def __init__(self) -> None:
            self.tracker = (BOTSORT if kind == "botsort" else BYTETracker)(args)

        def update(self, detections: np.ndarray, image: np.ndarray) -> np.ndarray:
            out = self.tracker.update(Boxes(detections.astype(np.float32), image.shape[:2]), image)
            return np.asarray(out, dtype=np.float64).reshape(-1, 8)

    return Adapter


def run_tracker(make, detections: dict, sequences: list[Path], out: Path) -> dict[str, float]:
    """Track every sequence with a fresh tracker; write ``out/<sequence>.txt``; per-frame time in the tracker."""
    out.mkdir(parents=True, exist_ok=True)
    seconds, frames, objects = 0.0, 0, 0
    for folder in sequences:
        tracker, rows = make(), []
        for number, (path, dets) in enumerate(zip(sorted((folder / "img1").glob("*.jpg")), detections[folder.name]), 1):
            image = cv2.imread(str(path))
            cv2.setRNGSeed(number)  # RANSAC in camera-motion compensation draws from it: the same draws for all
            start = time.process_time()
            tracks = tracker.update(dets, image)
            seconds += time.process_time() - start
            frames, objects = frames + 1, objects + len(dets)
            h, w = image.shape[:2]
            boxes = np.clip(tracks[:, :4], 0, [w, h, w, h])  # the same clipping for every tracker
            for (x1, y1, x2, y2), (track_id, score) in zip(boxes, tracks[:, 4:6]):
                rows.append(
                    f"{number},{int(track_id)},{x1:.2f},{y1:.2f},{x2 - x1:.2f},{y2 - y1:.2f},{score:.4f},-1,-1,-1"
                )
        (out / f"{folder.name}.txt").write_text("".join(f"{r}\n" for r in rows))
    return {"ms_per_frame": 1000 * seconds / max(frames, 1), "detections_per_frame": objects / max(frames, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", required=True, help="our detector (.pt or an export)")
    parser.add_argument("--gt", required=True, help="MOTChallenge folder (shapes-track, or where --raccoon writes)")
    parser.add_argument("--raccoon", default=None, help="build raccoon clips into --gt first from this folder")
    parser.add_argument("--imgsz", type=int, default=None, help="detector input size (default: its training size)")
    parser.add_argument("--out", required=True, help="folder for detections, track files and results.json")
    args = parser.parse_args()
    from yolorep.track.metrics import find_sequences, score_tracks

    gt, out = Path(args.gt), Path(args.out)
    if args.raccoon:
        raccoon_clips(Path(args.raccoon), gt)
    sequences = sequences_of(gt)
    detections = detect(args.weights, sequences, out / "dets", args.imgsz)
    trackers = {
        "yolorep ByteTrack": _ours("bytetrack"), "ultralytics ByteTrack": _theirs("bytetrack"),
        "yolorep ByteTrack, recover_buffer 0.3": _ours("bytetrack", 0.3),
        "yolorep BoT-SORT": _ours("botsort"), "ultralytics BoT-SORT": _theirs("botsort"),
        "yolorep BoT-SORT, recover_buffer 0.3": _ours("botsort", 0.3),
    }  # fmt: skip
    results = {}
    for name, make in trackers.items():
        folder = out / name.replace(" ", "-").replace(",", "")
        timing = run_tracker(make, detections, sequences, folder)
        scores = score_tracks(gt, folder, find_sequences(gt))["COMBINED"]
        results[name] = {**scores, **timing}
        print(f"{name:38s} " + " ".join(f"{k} {results[name][k]:.3f}" for k in ("HOTA", "IDF1", "MOTA", "AssA", "DetA"))
              + f" IDSW {scores['IDSW']} tracker {timing['ms_per_frame']:.2f} ms/frame", flush=True)  # fmt: skip
    (out / "results.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
