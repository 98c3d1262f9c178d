"""The batched Kalman filter: known answers on constant motion, agreement with OpenCV's single-object filter, and
batched calls equal to one track at a time."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from yolorep.track.kalman import KalmanBoxFilter


def _boxes(n: int, rng: np.random.Generator) -> np.ndarray:
    xy = rng.uniform(0, 300, (n, 2))
    return np.concatenate([xy, xy + rng.uniform(10, 80, (n, 2))], axis=1)


@pytest.mark.parametrize("aspect", [True, False])
def test_constant_velocity_is_learned_and_predicted(aspect):
    kf = KalmanBoxFilter(aspect=aspect)
    box, step = np.array([[100.0, 50.0, 140.0, 110.0]]), np.array([3.0, -2.0, 3.0, -2.0])
    mean, cov = kf.initiate(kf.boxes_to_measurements(box))
    for _ in range(40):
        box = box + step
        mean, cov = kf.predict(mean, cov)
        mean, cov = kf.update(mean, cov, kf.boxes_to_measurements(box))
    mean, cov = kf.predict(mean, cov)
    np.testing.assert_allclose(kf.means_to_boxes(mean), box + step, atol=0.05)
    np.testing.assert_allclose(mean[0, 4:6], [3.0, -2.0], atol=0.02)  # the centre's velocity


@pytest.mark.parametrize("aspect", [True, False])
def test_matches_opencv_kalman_filter_step_by_step(aspect):
    """cv2.KalmanFilter with the same matrices, noise reset before each step as the box-scaled noise requires."""
    rng = np.random.default_rng(0)
    kf = KalmanBoxFilter(aspect=aspect)
    box = _boxes(1, rng)
    mean, cov = kf.initiate(kf.boxes_to_measurements(box))
    cv = cv2.KalmanFilter(8, 4)
    cv.transitionMatrix, cv.measurementMatrix = kf.motion.copy(), kf.observe.copy()
    cv.statePost, cv.errorCovPost = mean[0].reshape(8, 1).copy(), cov[0].copy()
    for _ in range(6):
        predicted_mean, predicted_cov = kf.predict(mean, cov)
        cv.processNoiseCov = predicted_cov[0] - kf.motion @ cov[0] @ kf.motion.T  # the same Q
        cv.predict()
        np.testing.assert_allclose(cv.statePre.ravel(), predicted_mean[0], rtol=1e-9, atol=1e-9)
        _, s = kf.project(predicted_mean, predicted_cov)
        cv.measurementNoiseCov = s[0] - kf.observe @ predicted_cov[0] @ kf.observe.T  # the same R
        box = box + rng.normal(0, 2, (1, 4))
        z = kf.boxes_to_measurements(box)
        mean, cov = kf.update(predicted_mean, predicted_cov, z)
        cv.correct(z[0].reshape(4, 1))
        np.testing.assert_allclose(cv.statePost.ravel(), mean[0], rtol=1e-7, atol=1e-7)
        np.testing.assert_allclose(cv.errorCovPost, cov[0], rtol=1e-6, atol=1e-7)


def test_batched_calls_equal_one_track_at_a_time():
    rng = np.random.default_rng(1)
    kf = KalmanBoxFilter(aspect=False)
    boxes = _boxes(5, rng)
    mean, cov = kf.initiate(kf.boxes_to_measurements(boxes))
    mean, cov = kf.predict(mean, cov)
    measured = kf.boxes_to_measurements(boxes + rng.normal(0, 3, boxes.shape))
    batched = kf.update(mean, cov, measured)
    for i in range(5):
        single = kf.update(mean[i : i + 1], cov[i : i + 1], measured[i : i + 1])
        np.testing.assert_allclose(single[0][0], batched[0][i])
        np.testing.assert_allclose(single[1][0], batched[1][i])
    assert np.allclose(batched[1], np.swapaxes(batched[1], 1, 2))  # covariances stay symmetric
    assert (np.linalg.eigvalsh(batched[1]) > 0).all()  # and positive definite


def test_warp_moves_centres_and_turns_velocities():
    kf = KalmanBoxFilter(aspect=False)
    mean = np.array([[10.0, 20.0, 30.0, 40.0, 1.0, 0.0, 0.0, 0.0]])
    cov = np.tile(np.eye(8), (1, 1, 1))
    shift = np.array([[1.0, 0.0, 5.0], [0.0, 1.0, -3.0]])
    moved, moved_cov = kf.warp(mean, cov, shift)
    np.testing.assert_allclose(moved[0], [15, 17, 30, 40, 1, 0, 0, 0])
    np.testing.assert_allclose(moved_cov, cov)
    quarter_turn = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0]])
    turned, _ = kf.warp(mean, cov, quarter_turn)
    np.testing.assert_allclose(turned[0, :2], [-20, 10])
    np.testing.assert_allclose(turned[0, 2:4], [40, 30])  # a 30 x 40 box turned a quarter is 40 x 30
    np.testing.assert_allclose(turned[0, 4:6], [0, 1], atol=1e-12)  # the velocity turns with the image
