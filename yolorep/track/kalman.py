"""A constant-velocity Kalman filter over box states, batched over tracks.

The model is SORT/DeepSORT's (Wojke et al., 2017), as ByteTrack (Zhang et al., ECCV 2022) and BoT-SORT (Aharon et
al., 2022) use it: the state is a box ``(x, y, a, h)`` (centre, aspect ratio w/h, height) or ``(x, y, w, h)``
(BoT-SORT) and its velocities, 8 numbers; process and measurement noise scale with the box size, so a large,
near object may move more pixels per frame than a small, far one.

Every method takes and returns stacked arrays (``mean [N, 8]``, ``covariance [N, 8, 8]``) and does the linear
algebra with batched numpy (``matmul``, ``linalg.solve``): one call per frame for all tracks instead of one call
per track, which is what keeps a frame with 50 objects well under a millisecond. (OpenCV's ``cv2.KalmanFilter``
and filterpy hold one object each, so a frame would cost a Python round trip per track, and their noise would
have to be reset before every step because it depends on the box.)
"""

from __future__ import annotations

import numpy as np

__all__ = ["KalmanBoxFilter"]

_DIM = 4  # measured: a box
# Noise standard deviations relative to the box size (DeepSORT's values).
_STD_POSITION = 1.0 / 20
_STD_VELOCITY = 1.0 / 160


class KalmanBoxFilter:
    """Constant-velocity Kalman filter for boxes, on stacks of tracks.

    Args:
        aspect: True: measure ``(cx, cy, w / h, h)`` (ByteTrack); False: ``(cx, cy, w, h)`` (BoT-SORT, which keeps
            the width's own noise so boxes that change shape follow better).
    """

    def __init__(self, aspect: bool = True) -> None:
        self.aspect = aspect
        self.motion = np.eye(2 * _DIM)  # [8, 8] x' = x + v (one frame)
        self.motion[:_DIM, _DIM:] = np.eye(_DIM)
        self.observe = np.eye(_DIM, 2 * _DIM)  # [4, 8] measures the box, not its velocity

    def boxes_to_measurements(self, boxes_xyxy: np.ndarray) -> np.ndarray:
        """[N, 4] (x1, y1, x2, y2) -> [N, 4] measurements (cx, cy, a or w, h)."""
        boxes_xyxy = np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 4)
        wh = boxes_xyxy[:, 2:] - boxes_xyxy[:, :2]
        z = np.concatenate([boxes_xyxy[:, :2] + wh / 2, wh], axis=1)
        if self.aspect:
            z[:, 2] /= np.maximum(z[:, 3], 1e-9)
        return z

    def means_to_boxes(self, mean: np.ndarray) -> np.ndarray:
        """[N, 8] states -> [N, 4] boxes (x1, y1, x2, y2)."""
        cx, cy, s, h = mean[:, 0], mean[:, 1], mean[:, 2], mean[:, 3]
        w = s * h if self.aspect else s
        return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)

    def _scales(self, z: np.ndarray) -> np.ndarray:
        """[N, 4] what each state component's noise is proportional to: (w or h, h, -, h)."""
        if self.aspect:  # DeepSORT scales every coordinate with the height and keeps the aspect nearly fixed
            return np.repeat(z[:, 3:4], _DIM, axis=1)
        return np.stack([z[:, 2], z[:, 3], z[:, 2], z[:, 3]], axis=1)

    def _aspect_noise(self, std: np.ndarray, value: float) -> np.ndarray:
        if self.aspect:
            std[:, 2] = value
        return std

    def initiate(self, measurements: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """New tracks from [N, 4] measurements: ``mean [N, 8]`` (zero velocity), ``covariance [N, 8, 8]``."""
        z = np.asarray(measurements, dtype=np.float64).reshape(-1, _DIM)
        mean = np.concatenate([z, np.zeros_like(z)], axis=1)
        scales = self._scales(z)
        std = np.concatenate(
            [
                self._aspect_noise(2 * _STD_POSITION * scales, 1e-2),
                self._aspect_noise(10 * _STD_VELOCITY * scales, 1e-5),
            ],
            axis=1,
        )
        return mean, _diagonal(std**2)

    def predict(self, mean: np.ndarray, covariance: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One frame ahead: ``mean [N, 8]``, ``covariance [N, 8, 8]`` -> the same, predicted."""
        scales = self._scales(mean[:, :_DIM])
        std = np.concatenate(
            [self._aspect_noise(_STD_POSITION * scales, 1e-2), self._aspect_noise(_STD_VELOCITY * scales, 1e-5)], axis=1
        )
        mean = mean @ self.motion.T
        covariance = self.motion @ covariance @ self.motion.T + _diagonal(std**2)
        return mean, covariance

    def project(self, mean: np.ndarray, covariance: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The predicted measurement and its covariance: ``[N, 4]``, ``[N, 4, 4]`` (innovation covariance)."""
        std = self._aspect_noise(_STD_POSITION * self._scales(mean[:, :_DIM]), 1e-1)
        projected = self.observe @ covariance @ self.observe.T + _diagonal(std**2)
        return mean[:, :_DIM], projected

    def update(
        self, mean: np.ndarray, covariance: np.ndarray, measurements: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Correct predicted states with [N, 4] measurements (row i measures track i)."""
        z_pred, s = self.project(mean, covariance)
        cross = covariance @ self.observe.T  # [N, 8, 4] P H^T
        # K = P H^T S^-1, solved (S is symmetric positive definite) rather than inverted
        gain = np.linalg.solve(s, np.swapaxes(cross, 1, 2)).swapaxes(1, 2)  # [N, 8, 4]
        innovation = np.asarray(measurements, dtype=np.float64).reshape(-1, _DIM) - z_pred
        mean = mean + np.einsum("nij,nj->ni", gain, innovation)
        covariance = covariance - gain @ s @ np.swapaxes(gain, 1, 2)
        return mean, covariance

    def warp(self, mean: np.ndarray, covariance: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Move (x, y, w, h) states into the next frame's coordinates after the camera moved by ``affine`` [2, 3]
        (BoT-SORT's camera-motion compensation): the linear part ``A`` turns the centre and its velocity, the
        translation moves the centre, and the size and its velocity become those of the box enclosing the turned
        box, ``|A| (w, h)`` (a size never changes sign)."""
        linear = affine[:, :2]
        rotation = np.kron(np.eye(_DIM), linear)  # [8, 8] block-diagonal
        rotation[2:4, 2:4] = rotation[6:8, 6:8] = np.abs(linear)
        mean = mean @ rotation.T
        mean[:, :2] += affine[:, 2]
        return mean, rotation @ covariance @ rotation.T


def _diagonal(values: np.ndarray) -> np.ndarray:
    """[N, D] -> [N, D, D] diagonal matrices."""
    out = np.zeros((*values.shape, values.shape[-1]))
    index = np.arange(values.shape[-1])
    out[:, index, index] = values
    return out
