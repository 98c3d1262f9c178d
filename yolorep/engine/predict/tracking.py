"""Tracking: ``ObjectTracker`` (Python API) and ``track`` (the ``yolorep track`` command).

The detector (a fused checkpoint or any export, see ``Detector``) runs frame by frame; its boxes feed a tracker
(``yolorep.track``: ByteTrack or BoT-SORT, from ``cfg/trackers/*.yaml``), which gives each box an identity kept
across frames. Each sequence (a video, a webcam, a folder of frames) gets a fresh tracker.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import numpy as np
import torch

from yolorep.assets import datasets_root
from yolorep.checks import check_batch
from yolorep.datasets.shapes_track import SHAPES_TRACK, generate_shapes_track
from yolorep.engine.predict.predictor import Detector
from yolorep.engine.predict.results import Boxes, Results
from yolorep.engine.predict.sources import Source, load_source
from yolorep.engine.predict.track_writer import SequenceCounter, TrackWriter
from yolorep.engine.run_dir import increment_run_dir
from yolorep.errors import YolorepError
from yolorep.logs import progress
from yolorep.options import TrackOptions
from yolorep.track import ByteTracker, build_tracker, load_tracker_config
from yolorep.track.config import TrackerSource

__all__ = ["ObjectTracker", "resolve_track_source", "track"]

LOGGER = logging.getLogger(__name__)


def resolve_track_source(source: Any) -> Any:
    """``shapes-track`` (when no such file exists) names the bundled synthetic tracking set: its frames, generated
    under ``datasets/`` (or ``$YOLOREP_DATASETS``) when absent. Anything else is returned as it is."""
    if isinstance(source, (str, Path)) and str(source) == SHAPES_TRACK and not Path(source).exists():
        root = generate_shapes_track(datasets_root() / SHAPES_TRACK)
        return sorted(str(p) for p in root.glob("*/img1/*.jpg"))
    return source


class ObjectTracker:
    """A detector followed by a tracker: results whose ``boxes.id`` are identities kept across frames.

    Args:
        detector: the ``Detector`` to run (any backend).
        tracker: a tracker YAML path, built-in name (``bytetrack.yaml``, ``botsort.yaml``), mapping or
            ``TrackerConfig``.
    """

    def __init__(self, detector: Detector, tracker: TrackerSource = "bytetrack.yaml") -> None:
        self.detector = detector
        self.config = load_tracker_config(tracker)  # a wrong YAML or a missing scipy fails here, before any frame
        self.tracker: ByteTracker = build_tracker(self.config)
        self.sequences = SequenceCounter()
        self.seconds = 0.0  # spent in the tracker since the last track() call
        self.frames = 0

    @property
    def speed_ms(self) -> float:
        """Milliseconds per frame spent in the tracker since the last ``track`` call."""
        return 1000 * self.seconds / max(self.frames, 1)

    def track(
        self, source: Any, stream: bool = False, batch: int = 1, vid_stride: int = 1, persist: bool = False
    ) -> list[Results] | Iterator[Results]:
        """Detect and track objects in ``source`` (anything ``predict`` takes).

        Args:
            stream: return a generator (constant memory on long videos) instead of a list.
            batch: frames per forward pass.
            vid_stride: keep every n-th video frame.
            persist: keep the tracks of the previous call, so frames passed one call at a time (``model.track(frame,
                persist=True)`` in a loop) form one sequence.

        Returns:
            One ``Results`` per frame, with ``boxes.id``.
        """
        check_batch(batch)
        source = load_source(resolve_track_source(source), vid_stride)
        if not persist:
            self.sequences = SequenceCounter()  # the first frame then starts a new tracker
        self.seconds, self.frames = 0.0, 0
        results = self._stream(source, batch)
        return results if stream else list(results)

    def _stream(self, source: Source, batch: int) -> Iterator[Results]:
        with closing(self.detector.predict(source, stream=True, batch=batch)) as results:
            for result in results:
                place = self.sequences.place(result)
                if place.is_first:
                    self.tracker = build_tracker(self.config, place.fps)
                yield self.update(result)

    def update(self, result: Results) -> Results:
        """Give ``result``'s boxes identities (one tracker step); returns ``result`` with tracked boxes."""
        start = time.perf_counter()
        tracks = self.tracker.update(result.boxes.data.numpy(), result.orig_image)  # [M, 8]
        height, width = result.orig_shape
        boxes = np.clip(tracks[:, :4], 0, [width, height, width, height])  # the Kalman box may overhang the image
        data = torch.from_numpy(np.concatenate([boxes, tracks[:, 5:7]], axis=1)).float()
        result.boxes = Boxes(data, result.orig_shape, torch.from_numpy(tracks[:, 4]).long())
        self.seconds += time.perf_counter() - start
        self.frames += 1
        return result


def track(*args: Any, **kwargs: Any) -> Path | None:
    """``yolorep track``: detect and track, then write annotated frames or videos (identity colours and trails),
    MOTChallenge label files (``--save-txt``) and ``tracks.json`` (``--save-json``) to a run folder.

    The options are ``TrackOptions``, or its fields as keywords (``track("best.pt", "video.mp4")``): predict's
    (see ``yolorep predict --help``), with ``conf`` 0.1 (the tracker's own thresholds decide which boxes make
    tracks; ByteTrack's second round uses those from 0.1 up), and ``tracker``, a YAML.

    Returns:
        The run folder, or None when nothing was to be saved.

    Raises:
        YolorepError: a wrong tracker YAML or source, or nothing in ``source`` could be read.
    """
    o = TrackOptions.build(args, kwargs)
    tracker, source, vid_stride, no_save = o.tracker, o.source, o.vid_stride, o.no_save
    save_txt, save_json, project, name, batch = o.save_txt, o.save_json, o.project, o.name, o.batch
    config = load_tracker_config(tracker)  # before the model and the source: a wrong YAML fails at once
    build_tracker(config)  # and so does a missing scipy
    src = load_source(resolve_track_source(source), vid_stride)
    detector = Detector(o.weights, o.device, o.imgsz, o.conf, o.iou, o.half, o.classes, o.max_det)
    tracking = ObjectTracker(detector, config)
    run_dir = increment_run_dir(project, name) if (not no_save or save_txt or save_json) else None
    LOGGER.info("track: %s (%s)", config.tracker_type, config.source)
    start, count = time.perf_counter(), 0
    writer = TrackWriter(run_dir, save_media=not no_save, save_txt=save_txt, save_json=save_json)
    with writer, progress(total=src.count_frames(), unit="frame", desc="track") as bar:
        with closing(tracking.track(src, stream=True, batch=batch)) as results:
            for result in results:
                writer.add(result)
                count += 1
                bar.update()
    if count == 0:
        if run_dir is not None and not any(run_dir.iterdir()):
            run_dir.rmdir()
        raise YolorepError(
            f"--source {source}: no image or video frame could be read ({src.skipped} unreadable, see the warnings "
            "above); check the files or pass other ones"
        )
    _log_summary(tracking, count, time.perf_counter() - start, src, run_dir, writer)
    return run_dir


def _log_summary(
    tracking: ObjectTracker, count: int, elapsed: float, src: Source, run_dir: Path | None, writer: TrackWriter
) -> None:
    speed = tracking.detector.speed
    LOGGER.info(
        "Speed: %.1f ms preprocess, %.1f ms inference, %.1f ms NMS, %.2f ms tracking per frame at shape %s; "
        "%.1f frames/s overall",
        speed["preprocess"], speed["inference"], speed["nms"], tracking.speed_ms, tracking.detector.last_shape,
        count / max(elapsed, 1e-9),
    )  # fmt: skip
    labels = f", {len(writer.label_files)} MOTChallenge label file(s)" if writer.label_files else ""
    LOGGER.info(
        "%d frame(s) tracked, %d unreadable skipped; %s%s", count, src.skipped,
        f"results saved to {run_dir}" if run_dir else "nothing saved (--no-save)", labels,
    )  # fmt: skip
