"""The shapes-track set: MOTChallenge layout, deterministic, boxes on the visible pixels, and the events a tracker
is tested on (occlusions, objects leaving and coming back, a moving camera)."""

from __future__ import annotations

import configparser

import cv2
import numpy as np
import pytest

from yolorep.datasets.shapes_track import DISTRACTOR_CLASS, TRACK_CLASS, generate_shapes_track
from yolorep.errors import DatasetError

ARGS = {"sequences": 2, "frames": 60, "size_wh": (128, 96), "objects": 10, "seed": 3}


@pytest.fixture(scope="module")
def track_set(tmp_path_factory):
    return generate_shapes_track(tmp_path_factory.mktemp("st") / "shapes-track", **ARGS)


def _gt(folder) -> np.ndarray:
    return np.loadtxt(folder / "gt" / "gt.txt", delimiter=",", ndmin=2)


def test_layout_and_rows(track_set):
    sequences = sorted(p.name for p in track_set.iterdir())
    assert sequences == ["shapes-01", "shapes-02"]
    for name in sequences:
        folder = track_set / name
        info = configparser.ConfigParser()
        info.read(folder / "seqinfo.ini")
        assert info["Sequence"]["seqLength"] == "60" and info["Sequence"]["imWidth"] == "128"
        assert len(list((folder / "img1").glob("*.jpg"))) == 60
        assert cv2.imread(str(folder / "img1" / "000060.jpg")).shape == (96, 128, 3)
        gt = _gt(folder)
        frame, ids, x, y, w, h = (gt[:, i] for i in range(6))
        assert frame.min() >= 1 and frame.max() <= 60 and set(ids) <= set(range(1, 11))
        assert (x >= 0).all() and (y >= 0).all() and (x + w <= 128).all() and (y + h <= 96).all() and (w >= 1).all()
        assert set(gt[:, 7]) <= {TRACK_CLASS, DISTRACTOR_CLASS} and ((gt[:, 8] >= 0) & (gt[:, 8] <= 1)).all()
        assert (gt[gt[:, 7] == TRACK_CLASS, 8] >= 0.5).all() and (gt[gt[:, 7] == DISTRACTOR_CLASS, 8] < 0.5).all()
        pairs = {(int(f), int(i)) for f, i in zip(frame, ids)}
        assert len(pairs) == len(gt)  # one row per object per frame


def test_it_has_occlusions_exits_and_reentries(track_set):
    gt = np.concatenate([_gt(track_set / s) for s in ("shapes-01", "shapes-02")])
    assert (gt[:, 7] == DISTRACTOR_CLASS).any()  # hidden behind others
    reentries = 0
    for sequence in ("shapes-01", "shapes-02"):
        rows = _gt(track_set / sequence)
        for track_id in set(rows[:, 1]):
            frames = np.sort(rows[rows[:, 1] == track_id, 0])
            reentries += int((np.diff(frames) > 1).sum())
    assert reentries > 0  # identities that leave the view (or are fully hidden) and come back


def test_the_camera_moves(track_set):
    first = cv2.imread(str(track_set / "shapes-01" / "img1" / "000001.jpg"), cv2.IMREAD_GRAYSCALE)
    later = cv2.imread(str(track_set / "shapes-01" / "img1" / "000015.jpg"), cv2.IMREAD_GRAYSCALE)
    (dx, dy), _ = cv2.phaseCorrelate(first.astype(np.float64), later.astype(np.float64))
    assert np.hypot(dx, dy) > 2  # the background shifted


def test_deterministic_and_kept(track_set, tmp_path):
    again = generate_shapes_track(tmp_path / "again", **ARGS)
    for sequence in ("shapes-01", "shapes-02"):
        assert (again / sequence / "gt" / "gt.txt").read_bytes() == (
            track_set / sequence / "gt" / "gt.txt"
        ).read_bytes()
    stamp = (again / "shapes-01" / "gt" / "gt.txt").stat().st_mtime_ns
    assert generate_shapes_track(again, **ARGS) == again
    assert (again / "shapes-01" / "gt" / "gt.txt").stat().st_mtime_ns == stamp  # a complete set is not rewritten
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(DatasetError, match="holds no shapes-track sequences"):
        generate_shapes_track(tmp_path / "other", **ARGS)
