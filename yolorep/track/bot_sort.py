"""BoT-SORT (Aharon et al., "BoT-SORT: Robust Associations Multi-Pedestrian Tracking", 2022), without its
appearance model: ByteTrack's association, a Kalman filter over ``(x, y, w, h)`` instead of ``(x, y, w/h, h)``, and
camera-motion compensation, which moves every track by the camera's motion before it is matched."""

from __future__ import annotations

import numpy as np

from yolorep.track.byte_tracker import ByteTracker
from yolorep.track.config import TrackerConfig
from yolorep.track.gmc import CameraMotion
from yolorep.track.kalman import KalmanBoxFilter

__all__ = ["BoTSORT"]


class BoTSORT(ByteTracker):
    """ByteTrack with a width-and-height Kalman filter and camera-motion compensation (``gmc_method``).

    Args:
        config: ``cfg/trackers/botsort.yaml``.
        frame_rate: frames per second of the sequence.
    """

    def __init__(self, config: TrackerConfig | None = None, frame_rate: float = 30.0) -> None:
        config = config or TrackerConfig(tracker_type="botsort", gmc_method="sparseOptFlow")
        self.camera = CameraMotion(config.gmc_method)
        super().__init__(config, frame_rate)

    def _make_filter(self) -> KalmanBoxFilter:
        return KalmanBoxFilter(aspect=False)

    def reset(self) -> None:
        super().reset()
        self.camera.reset()

    def _frozen_velocities(self) -> slice:
        return slice(6, 8)  # the width's and height's velocities (x, y, w, h state)

    def _compensate(
        self, mean: np.ndarray, covariance: np.ndarray, image: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        affine = self.camera.apply(image)  # called on every frame, so its previous frame is always the last one
        if not len(mean) or np.allclose(affine, np.eye(2, 3)):
            return mean, covariance
        return self.filter.warp(mean, covariance, affine)
