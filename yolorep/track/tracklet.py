"""``Track``: one object's identity, Kalman state and life cycle (new -> tracked <-> lost -> removed)."""

from __future__ import annotations

from enum import IntEnum

import numpy as np

__all__ = ["Track", "TrackState"]


class TrackState(IntEnum):
    NEW = 0  # born from a detection, not yet confirmed by a second one
    TRACKED = 1  # matched in the last frame
    LOST = 2  # unmatched; kept (predicted forward) for the tracker's buffer to be found again
    REMOVED = 3


class Track:
    """One tracked object, started from a detection row ``(x1, y1, x2, y2, score, cls, det_index)``.

    Its Kalman state is ``mean`` [8] and ``covariance`` [8, 8]; trackers predict and update many tracks at once and
    write the results back here. A track born on a sequence's first frame is confirmed at once; any other waits for
    a second detection.
    """

    __slots__ = ("track_id", "score", "cls", "det_index", "state", "is_activated", "mean", "covariance",
                 "start_frame", "frame_id", "tracklet_len")  # fmt: skip

    def __init__(self, track_id: int, row: np.ndarray, frame_id: int, mean: np.ndarray, covariance: np.ndarray):
        self.track_id = track_id
        self.score, self.cls, self.det_index = float(row[4]), int(row[5]), int(row[6])
        self.mean, self.covariance = mean, covariance
        self.state = TrackState.TRACKED
        self.is_activated = frame_id == 1  # confirmed
        self.start_frame = self.frame_id = frame_id  # first and last frame it was matched in
        self.tracklet_len = 0

    def __repr__(self) -> str:
        return f"Track({self.track_id}, {self.state.name.lower()}, frames {self.start_frame}-{self.frame_id})"

    def take(self, row: np.ndarray, frame_id: int, mean: np.ndarray, covariance: np.ndarray) -> None:
        """Follow the detection ``row`` (already folded into ``mean``/``covariance``): tracked and confirmed."""
        self.mean, self.covariance = mean, covariance
        self.score, self.cls, self.det_index = float(row[4]), int(row[5]), int(row[6])
        self.tracklet_len = 0 if self.state == TrackState.LOST else self.tracklet_len + 1
        self.state, self.is_activated, self.frame_id = TrackState.TRACKED, True, frame_id
