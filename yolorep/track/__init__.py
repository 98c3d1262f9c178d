"""Multi-object tracking: ByteTrack and BoT-SORT over a detector's boxes, configured by ``cfg/trackers/*.yaml``,
and their scoring with the MOT metrics (HOTA, IDF1, MOTA) through TrackEval.

    tracker = build_tracker("bytetrack.yaml", frame_rate=30)
    for detections in frames:                   # [N, 6] (x1, y1, x2, y2, score, cls)
        tracks = tracker.update(detections, image)  # [M, 8] (x1, y1, x2, y2, id, score, cls, det_index)
"""

from __future__ import annotations

from yolorep.track.bot_sort import BoTSORT
from yolorep.track.byte_tracker import ByteTracker
from yolorep.track.config import TrackerConfig, TrackerSource, load_tracker_config

__all__ = ["BoTSORT", "ByteTracker", "TrackerConfig", "build_tracker", "load_tracker_config"]


def build_tracker(tracker: TrackerSource = "bytetrack.yaml", frame_rate: float = 30.0) -> ByteTracker:
    """A tracker from a YAML path, built-in name, mapping or ``TrackerConfig``.

    Raises:
        ConfigError: the tracker YAML is missing or malformed.
    """
    config = load_tracker_config(tracker)
    kind = BoTSORT if config.tracker_type == "botsort" else ByteTracker
    return kind(config, frame_rate)
