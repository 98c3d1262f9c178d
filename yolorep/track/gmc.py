"""Camera-motion compensation: the affine motion of the whole image between consecutive frames, with OpenCV.

BoT-SORT (Aharon et al., 2022) moves every track's Kalman state by this motion before association, so a camera pan
is not mistaken for every object moving at once. Two estimators:

* ``sparseOptFlow``: corners (``cv2.goodFeaturesToTrack``) of the previous frame followed into this one by
  pyramidal Lucas-Kanade flow (``cv2.calcOpticalFlowPyrLK``), then a rotation + scale + translation fitted with
  RANSAC (``cv2.estimateAffinePartial2D``), which ignores the points on moving objects;
* ``ecc``: ``cv2.findTransformECC`` (Evangelidis and Psarakis, 2008), a direct rigid (Euclidean) alignment of the
  two images; slower, and needs no corners.

Both run on a downscaled grey copy of the frame; the translation is scaled back to full-size pixels.
"""

from __future__ import annotations

import logging

import cv2
import numpy as np

__all__ = ["CameraMotion"]

LOGGER = logging.getLogger(__name__)

_MIN_POINTS = 5  # fewer followed corners than this cannot fit a motion reliably: assume none
_ECC_CRITERIA = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 100, 1e-5)


class CameraMotion:
    """Estimate the camera's motion frame to frame.

    Args:
        method: ``sparseOptFlow``, ``ecc`` or ``none`` (always the identity).
        downscale: shrink frames by this factor before estimating (speed; the motion is returned in full pixels).
    """

    def __init__(self, method: str = "sparseOptFlow", downscale: int = 2) -> None:
        if method not in ("sparseOptFlow", "ecc", "none"):
            raise ValueError(f"gmc_method {method!r}: expected sparseOptFlow, ecc or none")
        self.method, self.downscale = method, max(int(downscale), 1)
        self._previous: np.ndarray | None = None  # the last frame, grey and downscaled

    def reset(self) -> None:
        """Forget the previous frame (a new sequence starts)."""
        self._previous = None

    def apply(self, frame_bgr: np.ndarray | None) -> np.ndarray:
        """The motion from the previous frame to ``frame_bgr`` [H, W, 3] as a [2, 3] affine matrix mapping previous
        pixel coordinates to current ones; the identity for the first frame, a frame of another size, no frame, or
        when the estimate fails."""
        identity = np.eye(2, 3)
        if self.method == "none" or frame_bgr is None:
            return identity
        grey = cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2GRAY) if frame_bgr.ndim == 3 else frame_bgr
        if self.downscale > 1:
            h, w = grey.shape[:2]
            grey = cv2.resize(grey, (max(w // self.downscale, 1), max(h // self.downscale, 1)))
        previous, self._previous = self._previous, grey
        if previous is None or previous.shape != grey.shape:
            return identity
        affine = self._flow(previous, grey) if self.method == "sparseOptFlow" else self._ecc(previous, grey)
        if affine is None:
            return identity
        affine[:, 2] *= self.downscale
        return affine

    @staticmethod
    def _flow(previous: np.ndarray, current: np.ndarray) -> np.ndarray | None:
        corners = cv2.goodFeaturesToTrack(previous, maxCorners=1000, qualityLevel=0.01, minDistance=1, blockSize=3)
        if corners is None or len(corners) < _MIN_POINTS:
            return None
        followed, status, _ = cv2.calcOpticalFlowPyrLK(previous, current, corners, None)
        ok = status.reshape(-1) == 1
        if ok.sum() < _MIN_POINTS:
            return None
        affine, _ = cv2.estimateAffinePartial2D(corners[ok], followed[ok], method=cv2.RANSAC)
        return None if affine is None else affine.astype(np.float64)

    @staticmethod
    def _ecc(previous: np.ndarray, current: np.ndarray) -> np.ndarray | None:
        warp = np.eye(2, 3, dtype=np.float32)
        try:
            # maps template (previous) coordinates to input (current) coordinates
            _, warp = cv2.findTransformECC(previous, current, warp, cv2.MOTION_EUCLIDEAN, _ECC_CRITERIA, None, 1)
        except cv2.error as err:  # did not converge (flat or changed scene): no compensation for this frame
            LOGGER.debug("ECC camera motion failed: %s", str(err).splitlines()[-1])
            return None
        return warp.astype(np.float64)
