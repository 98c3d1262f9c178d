"""ByteTrack and BoT-SORT on constructed sequences with known answers: births, deaths, frames without detections,
crossings, occlusions and a panning camera."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from yolorep.track import BoTSORT, ByteTracker, TrackerConfig, build_tracker
from yolorep.track.gmc import CameraMotion
from yolorep.track.tracklet import TrackState

BYTE = TrackerConfig()
BOT = TrackerConfig(tracker_type="botsort", gmc_method="none")
TRACKERS = [pytest.param(ByteTracker, BYTE, id="bytetrack"), pytest.param(BoTSORT, BOT, id="botsort")]


def _det(x: float, y: float, size: float = 20.0, score: float = 0.9, cls: int = 0) -> list[float]:
    return [x, y, x + size, y + size, score, cls]


def _run(tracker, frames: list[list[list[float]]], images=None) -> list[dict[int, np.ndarray]]:
    """Per frame: {track id: box} of the reported tracks."""
    out = []
    for i, detections in enumerate(frames):
        tracks = tracker.update(
            np.array(detections, dtype=np.float64).reshape(-1, 6), None if images is None else images[i]
        )
        out.append({int(row[4]): row[:4] for row in tracks})
    return out


def _identity_of(reported: list[dict[int, np.ndarray]], frame: int, x: float, y: float) -> int:
    """The id whose box is nearest (x, y) (top-left) in ``frame``."""
    return min(reported[frame], key=lambda i: np.hypot(*(reported[frame][i][:2] - (x, y))))


@pytest.mark.parametrize("kind, config", TRACKERS)
def test_birth_on_first_frame_and_confirmation_later(kind, config):
    frames = [[_det(10 + 2 * t, 10)] + ([_det(100 + 2 * t, 50)] if t >= 3 else []) for t in range(8)]
    reported = _run(kind(config), frames)
    assert list(reported[0]) == [1]  # born on the sequence's first frame: confirmed at once
    assert list(reported[3]) == [1]  # born later: reported from its second detection on
    assert sorted(reported[4]) == [1, 2] and sorted(reported[7]) == [1, 2]


@pytest.mark.parametrize("kind, config", TRACKERS)
def test_a_single_detection_is_never_reported_and_leaves_no_track(kind, config):
    frames = [[_det(10, 10)]] + [[_det(10, 10), _det(200, 200)] if t == 2 else [_det(10, 10)] for t in range(1, 6)]
    tracker = kind(config)
    reported = _run(tracker, frames)
    assert all(list(r) == [1] for r in reported)  # the one-frame blip at (200, 200) never appears
    assert [t.track_id for t in tracker.tracked] == [1] and not tracker.lost


@pytest.mark.parametrize("kind, config", TRACKERS)
def test_frames_without_detections_keep_the_tracks(kind, config):
    positions = [(10 + 3 * t, 20 + t) for t in range(30)]
    frames = [[_det(x, y), _det(150 - 3 * t, 100)] if not 10 <= t < 18 else [] for t, (x, y) in enumerate(positions)]
    tracker = kind(config)
    reported = _run(tracker, frames)
    assert all(not reported[t] for t in range(10, 18))  # nothing reported while nothing is seen ...
    assert {t.track_id for t in tracker.lost} == set()
    assert sorted(reported[9]) == sorted(reported[18]) == sorted(reported[29]) == [1, 2]  # ... and nothing lost
    assert _identity_of(reported, 9, *positions[9]) == _identity_of(reported, 29, *positions[29])


@pytest.mark.parametrize("kind, config", TRACKERS)
def test_death_after_the_buffer(kind, config):
    tracker = kind(config, frame_rate=30)  # buffer: 30 frames
    _run(tracker, [[_det(10 + t, 10)] for t in range(5)])
    _run(tracker, [[]] * 30)
    assert [t.track_id for t in tracker.lost] == [1] and tracker.lost[0].state == TrackState.LOST
    _run(tracker, [[]])
    assert not tracker.lost and not tracker.tracked  # 31 frames unseen: forgotten
    assert list(_run(tracker, [[_det(40, 10)], [_det(41, 10)]])[-1]) == [2]  # a new identity


@pytest.mark.parametrize("kind, config", TRACKERS)
def test_crossing_objects_keep_their_identities(kind, config):
    """Two boxes moving towards each other overlap heavily (IoU up to 1) for several frames and part again."""
    frames = [[_det(20 + 4 * t, 50, score=0.9), _det(180 - 4 * t, 56, score=0.8)] for t in range(41)]
    reported = _run(kind(config), frames)
    left, right = _identity_of(reported, 0, 20, 50), _identity_of(reported, 0, 180, 56)
    assert left != right
    assert _identity_of(reported, 40, 180, 50) == left and _identity_of(reported, 40, 20, 56) == right


@pytest.mark.parametrize("kind, config", TRACKERS)
def test_reidentified_after_occlusion(kind, config):
    """A moves behind B: for 12 frames it is not detected, then reappears further along its path, keeping its id;
    while half hidden its low score still carries the track (ByteTrack's second round)."""
    frames = []
    for t in range(50):
        a = _det(10 + 3 * t, 60, size=24, score=0.2 if 18 <= t < 22 or 34 <= t < 36 else 0.9)
        b = _det(80, 50, size=50)  # a parked occluder
        frames.append([b] if 22 <= t < 34 else [a, b])
    reported = _run(kind(config), frames)
    a_id = _identity_of(reported, 5, 25, 60)
    assert a_id in reported[20]  # low-score detection, same track
    assert a_id not in reported[28]  # hidden: lost, not reported
    assert all(_identity_of(reported, t, 10 + 3 * t, 60) == a_id for t in range(36, 50))
    assert max(max(r) for r in reported if r) == 2  # no identity was ever created for A again


def test_camera_motion_is_recovered():
    rng = np.random.default_rng(0)
    world = (rng.uniform(0, 255, (300, 400)) > 128).astype(np.uint8) * 200
    world = np.repeat(world[:, :, None], 3, axis=2)
    world = cv2.GaussianBlur(world, (5, 5), 0)
    camera = CameraMotion("sparseOptFlow", downscale=1)
    assert np.allclose(camera.apply(world[50:250, 50:350]), np.eye(2, 3))  # first frame: no motion
    affine = camera.apply(world[53:253, 42:342])  # the view moved 8 px left, 3 px down: the content +8, -3
    np.testing.assert_allclose(affine, [[1, 0, 8], [0, 1, -3]], atol=0.2)
    smooth = cv2.GaussianBlur(world, (0, 0), 6)  # ECC descends the image gradient: it needs a smooth picture
    ecc = CameraMotion("ecc", downscale=2)
    ecc.apply(smooth[50:250, 50:350])
    np.testing.assert_allclose(ecc.apply(smooth[53:253, 42:342]), [[1, 0, 8], [0, 1, -3]], atol=0.3)


def test_botsort_follows_objects_through_a_camera_jump_bytetrack_does_not():
    """The camera pans 25 px per frame; small objects then move 25 px per frame in the image, beyond any overlap
    with where a motionless-camera model expects them. Compensation keeps every identity."""
    rng = np.random.default_rng(1)
    world = cv2.GaussianBlur(rng.integers(0, 255, (400, 1200, 3), dtype=np.uint8), (3, 3), 0)
    objects = np.array([[300.0, 100.0], [500.0, 200.0], [700.0, 150.0]])  # world positions, parked
    images, frames = [], []
    for t in range(12):
        left = 25 * t
        images.append(np.ascontiguousarray(world[:, left : left + 640]))
        frames.append([_det(x - left, y, size=16) for x, y in objects])
    bot = _run(BoTSORT(TrackerConfig(tracker_type="botsort", gmc_method="sparseOptFlow")), frames, images)
    byte = _run(ByteTracker(BYTE), frames, images)
    assert all(sorted(r) == [1, 2, 3] for r in bot)
    assert sorted(byte[0]) == [1, 2, 3] and not any(byte[1:])  # without it, every match fails and nothing confirms


def test_build_tracker_reads_the_yaml():
    assert isinstance(build_tracker("botsort.yaml"), BoTSORT)
    assert type(build_tracker("bytetrack")) is ByteTracker
    assert build_tracker({"tracker_type": "bytetrack", "track_buffer": 60}, frame_rate=15).max_time_lost == 30


@pytest.mark.parametrize("kind", [ByteTracker, BoTSORT])
def test_recovery_round_finds_an_object_that_stopped_while_hidden(kind):
    """A 20 px box moving 2 px a frame is hidden for 8 frames, during which it stops: its prediction overshoots by
    16 px, where plain boxes overlap at IoU 0.11 (too little for the first round) and boxes grown by 0.3 at 0.33."""
    frames = [[_det(10 + 2 * t, 50)] for t in range(10)] + [[]] * 8 + [[_det(28, 50)] for _ in range(5)]
    config = {"tracker_type": "botsort", "gmc_method": "none"} if kind is BoTSORT else {"tracker_type": "bytetrack"}
    recovered = _run(build_tracker({**config, "recover_buffer": 0.3}), frames)
    assert all(list(r) == [1] for r in recovered[19:])  # found again, same identity
    plain = _run(build_tracker({**config, "recover_buffer": 0.0}), frames)
    assert all(1 not in r for r in plain[18:]) and list(plain[-1]) == [2]  # without it: a new identity
