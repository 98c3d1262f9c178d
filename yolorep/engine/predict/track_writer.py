"""Sequences of frames, and what ``yolorep track`` writes: annotated frames with identity colours and trails,
MOTChallenge rows (``labels/<sequence>.txt``) and per-frame records (``tracks.json``)."""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from yolorep.atomic import write_text_atomic
from yolorep.engine.predict.results import Results
from yolorep.engine.predict.writer import Outputs, PredictionWriter
from yolorep.ops import xyxy_to_ltwh
from yolorep.plots import draw_trails

__all__ = ["FramePlace", "SequenceCounter", "TrackWriter", "mot_rows"]

TRAIL_FRAMES = 30  # positions drawn behind each identity


@dataclass(frozen=True)
class FramePlace:
    """Where a frame sits: its sequence and its MOTChallenge frame number."""

    sequence: str  # the video's stem; for still images their folder's name (its parent's for MOTChallenge 'img1')
    number: int  # from 1: the video frame index + 1, the image's number (+ 1 if they start at 0), or its position
    is_first: bool  # the first frame of a new sequence (trackers start afresh)
    fps: float


def _sequence_key(result: Results) -> str:
    return result.path if result.video is not None else str(Path(result.path).parent)


def _sequence_name(result: Results) -> str:
    path = Path(result.path)
    if result.video is not None:
        return path.stem
    folder = path.parent
    if folder.name == "img1" and folder.parent.name:  # MOTChallenge: <sequence>/img1/000001.jpg
        return folder.parent.name
    return folder.name or "images"


class SequenceCounter:
    """Splits a stream of results into sequences: each video (or webcam) is one, and so is each run of still
    images from one folder (in-memory images, too, form one)."""

    def __init__(self) -> None:
        self._key: str | None = None
        self._position = 0
        self._offset = 0  # 1 for images numbered from 0 (000000.jpg), 0 for MOTChallenge's numbering from 1

    def place(self, result: Results) -> FramePlace:
        key = _sequence_key(result)
        is_first = key != self._key
        self._key, self._position = key, (1 if is_first else self._position + 1)
        stem = Path(result.path).stem
        if result.frame is not None:
            number = result.frame + 1
        elif stem.isdigit():  # numbered frames keep their numbers, so a skipped unreadable one leaves a gap
            self._offset = int(int(stem) == 0) if is_first else self._offset
            number = int(stem) + self._offset
        else:
            number = self._position
        return FramePlace(_sequence_name(result), number, is_first, result.video.fps if result.video else 30.0)


def mot_rows(result: Results, frame_number: int) -> list[str]:
    """MOTChallenge rows ``frame,id,left,top,width,height,score,-1,-1,-1`` for a tracked result."""
    if result.boxes.id is None:
        return []
    boxes = xyxy_to_ltwh(result.boxes.xyxy).tolist()
    rows = zip(result.boxes.id.tolist(), boxes, result.boxes.conf.tolist())
    return [f"{frame_number},{i},{x:.2f},{y:.2f},{w:.2f},{h:.2f},{s:.4f},-1,-1,-1" for i, (x, y, w, h), s in rows]


class TrackWriter(PredictionWriter):
    """What a tracking run writes, per sequence: annotated images or video (identity colours, a trail of the last
    ``TRAIL_FRAMES`` centres), ``labels/<sequence>.txt`` in MOTChallenge format (``--save-txt``), and
    ``tracks.json`` (``--save-json``): one record per frame, ``{"sequence", "frame", "path", "objects": [...]}``.

    A sequence's label file is written (atomically) when the sequence ends, so a file is either complete or absent.
    """

    def __init__(self, run_dir: Path, save_media: bool = True, save_txt: bool = False, save_json: bool = False):
        super().__init__(run_dir, Outputs(media=save_media))
        self.save_mot, self.save_tracks = save_txt, save_json
        self.sequences = SequenceCounter()
        self.records: list[dict[str, Any]] = []
        self.label_files: list[Path] = []
        self._sequence: str | None = None
        self._rows: list[str] = []
        self._trails: dict[int, deque] = {}

    def add(self, result: Results) -> None:
        place = self.sequences.place(result)
        if place.is_first:
            self._end_sequence()
            self._sequence = place.sequence
        self._extend_trails(result)
        if self.outputs.media:
            self.write_media(result)
        if self.save_mot:
            self._rows.extend(mot_rows(result, place.number))
        if self.save_tracks:
            objects = [{k: v for k, v in r.items() if k not in ("image", "frame")} for r in result.records()]
            self.records.append(
                {"sequence": place.sequence, "frame": place.number, "path": result.path, "objects": objects}
            )

    def _extend_trails(self, result: Results) -> None:
        ids = result.boxes.id
        if ids is None:
            return
        centres = ((result.boxes.xyxy[:, :2] + result.boxes.xyxy[:, 2:]) / 2).tolist()
        for track_id, centre in zip(ids.tolist(), centres):
            self._trails.setdefault(track_id, deque(maxlen=TRAIL_FRAMES)).append(centre)
        seen = set(ids.tolist())
        for track_id in [t for t in self._trails if t not in seen]:
            del self._trails[track_id]  # a lost identity's trail goes with it; it starts again when found

    def render(self, result: Results) -> np.ndarray:
        return draw_trails(super().render(result), self._trails)

    def _end_sequence(self) -> None:
        self._trails.clear()
        if self._sequence is None or not self.save_mot:
            return
        path = self.run_dir / "labels" / f"{self._sequence}.txt"
        taken = {p.name for p in self.label_files}
        for n in range(2, 10_000):  # two sequences of one name (same stem, other folders): name2, name3 ...
            if path.name not in taken:
                break
            path = path.with_name(f"{self._sequence}{n}.txt")
        self.label_files.append(write_text_atomic(path, "".join(f"{row}\n" for row in self._rows)))
        self._rows = []

    def close(self) -> None:
        self._end_sequence()
        self._sequence = None
        super().close()
        if self.save_tracks:
            write_text_atomic(self.run_dir / "tracks.json", json.dumps(self.records, indent=1))
