"""ByteTrack (Zhang et al., "ByteTrack: Multi-Object Tracking by Associating Every Detection Box", ECCV 2022).

Per frame: predict every track with its Kalman filter; match confident detections to tracked and lost tracks by
IoU (optionally weighted by the detection score); match the low-scoring detections, which are mostly occluded
objects, to the tracks still unmatched; optionally (``recover_buffer``) match lost tracks to the confident
detections left by the IoU of enlarged boxes; confirm or drop the tracks born last frame; start tracks from confident
detections left over; forget tracks lost for longer than the buffer. Only confirmed, currently matched tracks are
reported.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from yolorep.track.config import TrackerConfig
from yolorep.track.kalman import KalmanBoxFilter
from yolorep.track.matching import assignment_solver, fuse_scores, iou_cost, linear_assignment
from yolorep.track.tracklet import Track, TrackState

__all__ = ["ByteTracker"]

# Thresholds of the second round (low-score detections) and of confirming new tracks, as in the paper's code.
SECOND_MATCH_THRESH = 0.5
UNCONFIRMED_MATCH_THRESH = 0.7
RECOVER_MATCH_THRESH = 0.7  # enlarged boxes of a lost track and a detection must overlap at IoU 0.3
DUPLICATE_IOU_COST = 0.15  # a tracked and a lost track overlapping more than IoU 0.85 are one object twice


class ByteTracker:
    """Multi-object tracker over one sequence of frames; call ``update`` once per frame, in order.

    Args:
        config: thresholds and buffer (``cfg/trackers/bytetrack.yaml``).
        frame_rate: frames per second of the sequence; the lost-track buffer is ``track_buffer`` at 30 fps.
    """

    def __init__(self, config: TrackerConfig | None = None, frame_rate: float = 30.0) -> None:
        assignment_solver()  # a missing scipy fails here, before any frame
        self.config = config or TrackerConfig()
        self.filter = self._make_filter()
        self.max_time_lost = max(int(frame_rate / 30.0 * self.config.track_buffer), 1)
        self.reset()

    def _make_filter(self) -> KalmanBoxFilter:
        return KalmanBoxFilter(aspect=True)

    def reset(self) -> None:
        """Forget every track and restart identities at 1 (a new sequence)."""
        self.tracked: list[Track] = []  # confirmed and unconfirmed tracks matched in the last frame
        self.lost: list[Track] = []
        self.frame_id = 0
        self.next_id = 1

    def update(self, detections: np.ndarray, image: np.ndarray | None = None) -> np.ndarray:
        """Advance one frame.

        Args:
            detections: [N, 6] rows ``(x1, y1, x2, y2, score, cls)`` in pixels (N may be 0: tracks are predicted
                forward and kept as lost).
            image: the frame [H, W, 3] BGR (used by camera-motion compensation).

        Returns:
            [M, 8] rows ``(x1, y1, x2, y2, track_id, score, cls, det_index)`` for the confirmed tracks matched in
            this frame; the box is the track's Kalman estimate, ``det_index`` the row of the detection it took.
        """
        self.frame_id += 1
        detections = np.asarray(detections, dtype=np.float64).reshape(-1, 6)
        # [N, 7] rows (x1, y1, x2, y2, score, cls, det_index)
        rows = np.concatenate([detections, np.arange(len(detections), dtype=np.float64)[:, None]], axis=1)
        is_high = rows[:, 4] >= self.config.track_high_thresh
        high, low = rows[is_high], rows[~is_high & (rows[:, 4] > self.config.track_low_thresh)]

        unconfirmed = [t for t in self.tracked if not t.is_activated]
        pool = [t for t in self.tracked if t.is_activated] + self.lost
        pool_boxes, unconfirmed_boxes = self._advance(pool, unconfirmed, image)

        # 1: confident detections against every tracked and lost track
        matches, free_pool, free_high = linear_assignment(self._cost(pool_boxes, high), self.config.match_thresh)
        self._follow(pool, high, matches)
        # 2: low-scoring detections against the tracks that were tracked until now
        waiting_rows = [i for i in free_pool if pool[i].state == TrackState.TRACKED]
        waiting = [pool[i] for i in waiting_rows]
        matches, free_waiting, _ = linear_assignment(
            iou_cost(pool_boxes[waiting_rows], low[:, :4]), SECOND_MATCH_THRESH
        )
        self._follow(waiting, low, matches)
        for i in free_waiting:
            waiting[i].state = TrackState.LOST
        # 2b: lost tracks against the confident detections left, with enlarged boxes
        lost_rows = [i for i in free_pool if pool[i].state == TrackState.LOST and pool[i].frame_id < self.frame_id - 1]
        high = self._recover([pool[i] for i in lost_rows], pool_boxes[lost_rows], high[free_high])
        # 3: tracks born last frame are confirmed by a confident detection, or dropped
        matches, free_new, free_high = linear_assignment(self._cost(unconfirmed_boxes, high), UNCONFIRMED_MATCH_THRESH)
        self._follow(unconfirmed, high, matches)
        for i in free_new:
            unconfirmed[i].state = TrackState.REMOVED
        # 4: births
        high = high[free_high]
        born = self._start(high[high[:, 4] >= self.config.new_track_thresh])

        tracks = self.tracked + self.lost + born
        self.tracked = [t for t in tracks if t.state == TrackState.TRACKED]
        self.lost = [
            t for t in tracks if t.state == TrackState.LOST and self.frame_id - t.frame_id <= self.max_time_lost
        ]
        self._remove_duplicates()
        return self._report([t for t in self.tracked if t.is_activated])

    def _recover(self, lost: list[Track], lost_boxes: np.ndarray, detections: np.ndarray) -> np.ndarray:
        """Match lost tracks to detection rows by the IoU of their boxes enlarged by ``recover_buffer`` of their
        width and height on every side (C-BIoU, Yang et al., WACV 2023): after an occlusion the prediction has
        drifted, and plain boxes of small or fast objects no longer overlap. Returns the detections left."""
        scale = self.config.recover_buffer
        if scale <= 0 or not lost or not len(detections):
            return detections
        cost = iou_cost(_buffered(lost_boxes, scale), _buffered(detections[:, :4], scale))
        matches, _, free = linear_assignment(cost, RECOVER_MATCH_THRESH)
        self._follow(lost, detections, matches)
        return detections[free]

    def _cost(self, track_boxes: np.ndarray, detections: np.ndarray) -> np.ndarray:
        """[T, D] association cost of T track boxes [T, 4] against detection rows [D, 7]."""
        cost = iou_cost(track_boxes, detections[:, :4])
        return fuse_scores(cost, detections[:, 4]) if self.config.fuse_score else cost

    def _track_boxes(self, tracks: Sequence[Track]) -> np.ndarray:
        if not tracks:
            return np.empty((0, 4))
        return self.filter.means_to_boxes(np.stack([t.mean for t in tracks]))

    def _advance(
        self, pool: Sequence[Track], unconfirmed: Sequence[Track], image: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Predict the confirmed and lost tracks one frame ahead (tracks born last frame have no velocity yet and
        are not), compensate the camera's motion, and return the boxes [len(pool), 4], [len(unconfirmed), 4]."""
        tracks = [*pool, *unconfirmed]
        mean, covariance = np.empty((len(tracks), 8)), np.empty((len(tracks), 8, 8))
        for i, track in enumerate(tracks):
            mean[i], covariance[i] = track.mean, track.covariance
        n = len(pool)
        if n:
            lost = np.array([t.state != TrackState.TRACKED for t in pool])
            mean[:n][lost, self._frozen_velocities()] = 0.0  # a lost track keeps moving but stops growing
            mean[:n], covariance[:n] = self.filter.predict(mean[:n], covariance[:n])
        mean, covariance = self._compensate(mean, covariance, image)
        for track, m, c in zip(tracks, mean, covariance):
            track.mean, track.covariance = m, c
        boxes = self.filter.means_to_boxes(mean)
        return boxes[:n], boxes[n:]

    def _frozen_velocities(self) -> slice:
        return slice(7, 8)  # the height's velocity (x, y, a, h state)

    def _compensate(
        self, mean: np.ndarray, covariance: np.ndarray, image: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Camera-motion compensation of stacked states (BoT-SORT); ByteTrack assumes a static camera."""
        return mean, covariance

    def _follow(self, tracks: Sequence[Track], detections: np.ndarray, matches: np.ndarray) -> None:
        """Fold each matched detection row into its track (one batched Kalman update)."""
        if not len(matches):
            return
        chosen = [tracks[i] for i in matches[:, 0]]
        taken = detections[matches[:, 1]]
        mean, covariance = self.filter.update(
            np.stack([t.mean for t in chosen]),
            np.stack([t.covariance for t in chosen]),
            self.filter.boxes_to_measurements(taken[:, :4]),
        )
        for track, row, m, c in zip(chosen, taken, mean, covariance):
            track.take(row, self.frame_id, m, c)

    def _start(self, detections: np.ndarray) -> list[Track]:
        """New (unconfirmed) tracks from detection rows [B, 7]."""
        mean, covariance = self.filter.initiate(self.filter.boxes_to_measurements(detections[:, :4]))
        born = []
        for row, m, c in zip(detections, mean, covariance):
            born.append(Track(self.next_id, row, self.frame_id, m, c))
            self.next_id += 1
        return born

    def _remove_duplicates(self) -> None:
        """A tracked and a lost track on the same spot: keep whichever has been followed longer."""
        if not self.tracked or not self.lost:
            return
        cost = iou_cost(self._track_boxes(self.tracked), self._track_boxes(self.lost))
        drop_tracked, drop_lost = set(), set()
        for i, j in zip(*np.nonzero(cost < DUPLICATE_IOU_COST)):
            a, b = self.tracked[i], self.lost[j]
            if a.frame_id - a.start_frame > b.frame_id - b.start_frame:
                drop_lost.add(j)
            else:
                drop_tracked.add(i)
        self.tracked = [t for i, t in enumerate(self.tracked) if i not in drop_tracked]
        self.lost = [t for j, t in enumerate(self.lost) if j not in drop_lost]

    def _report(self, tracks: Sequence[Track]) -> np.ndarray:
        if not tracks:
            return np.empty((0, 8))
        rows = [(t.track_id, t.score, t.cls, t.det_index) for t in tracks]
        return np.concatenate([self._track_boxes(tracks), np.array(rows, dtype=np.float64)], axis=1)


def _buffered(boxes_xyxy: np.ndarray, scale: float) -> np.ndarray:
    """[N, 4] boxes grown by ``scale`` times their width and height on each side."""
    wh = boxes_xyxy[:, 2:] - boxes_xyxy[:, :2]
    return np.concatenate([boxes_xyxy[:, :2] - scale * wh, boxes_xyxy[:, 2:] + scale * wh], axis=1)
