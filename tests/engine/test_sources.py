import math
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers import write_video

from yolorep.engine.predict import sources
from yolorep.engine.predict.sources import Source, load_source, to_bgr
from yolorep.errors import YolorepError


@pytest.fixture
def folder(tmp_path):
    rng = np.random.default_rng(0)
    cv2.imwrite(str(tmp_path / "a.jpg"), rng.integers(0, 255, (40, 60, 3), dtype=np.uint8))
    cv2.imwrite(str(tmp_path / "gray.png"), rng.integers(0, 255, (30, 20), dtype=np.uint8))
    cv2.imwrite(str(tmp_path / "alpha.png"), rng.integers(0, 255, (20, 30, 4), dtype=np.uint8))
    (tmp_path / "corrupt.jpg").write_bytes(rng.bytes(200))
    (tmp_path / "notes.txt").write_text("not an image\n")
    return tmp_path


@pytest.mark.parametrize(
    "shape, dtype", [((8, 6), np.uint8), ((8, 6, 1), np.uint8), ((8, 6, 4), np.uint8), ((8, 6, 3), np.uint16)]
)
def test_to_bgr(shape, dtype):
    out = to_bgr(np.zeros(shape, dtype))
    assert out.shape == (8, 6, 3) and out.dtype == np.uint8


def test_to_bgr_rejects_non_images():
    with pytest.raises(ValueError, match="shape"):
        to_bgr(np.zeros((2, 3, 5), np.uint8))


def test_folder_reads_gray_and_alpha_skips_corrupt(folder, caplog):
    source = load_source(folder)
    assert [Path(item[1]).name for item in source.items] == ["a.jpg", "alpha.png", "corrupt.jpg", "gray.png"]
    frames = list(source)
    assert [Path(f.path).name for f in frames] == ["a.jpg", "alpha.png", "gray.png"]
    assert all(f.image.ndim == 3 and f.image.shape[2] == 3 and f.index is None for f in frames)
    assert frames[2].image.shape == (30, 20, 3)
    assert source.skipped == 1 and "corrupt.jpg" in caplog.text


def test_glob_and_list_file(folder):
    assert len(load_source(str(folder / "*.png")).items) == 2
    (folder / "sub").mkdir()
    listing = folder / "sub" / "list.txt"
    listing.write_text(f"../a.jpg\n\n# comment\n{folder / 'gray.png'}\n")
    frames = list(load_source(listing))
    assert [f.image.shape[:2] for f in frames] == [(40, 60), (30, 20)]


@pytest.mark.parametrize("bad", ["missing.jpg", "missing_dir/*.jpg", "empty"])
def test_missing_source_names_the_path(tmp_path, bad):
    (tmp_path / "empty").mkdir()
    with pytest.raises(YolorepError, match="--source .*" + bad.replace("*", r"\*")):
        load_source(str(tmp_path / bad))


def test_webcam_and_arrays_resolve_without_opening():
    assert load_source("0").items == [("webcam", 0)]
    assert load_source(1).items == [("webcam", 1)]
    assert load_source(0).count_frames() is None
    gray = np.zeros((5, 7), np.uint8)
    frames = list(load_source([gray, np.zeros((5, 7, 4), np.uint8)]))
    assert [f.path for f in frames] == ["image0", "image1"] and frames[0].image.shape == (5, 7, 3)
    with pytest.raises(YolorepError, match="unsupported"):
        load_source(3.5)


@pytest.mark.parametrize("stride", [1, 2, 5])
def test_video_stride(tmp_path, stride):
    source = load_source(write_video(tmp_path / "v.mp4"), vid_stride=stride)
    frames = list(source)
    assert source.count_frames() == len(frames) == math.ceil(12 / stride)
    assert [f.index for f in frames] == list(range(0, 12, stride))
    info = frames[0].video
    assert (info.width, info.height, info.fps, info.frame_count) == (96, 64, 10.0, 12)


def test_vid_stride_must_be_positive():
    with pytest.raises(YolorepError, match="--vid-stride 0"):
        Source([], vid_stride=0)


class FakeCapture:
    """A capture of ``count`` frames whose reads fail at ``bad`` indices; reports ``reported`` frames."""

    def __init__(self, count, bad, reported):
        self.count, self.bad, self.reported, self.position = count, set(bad), reported, 0
        self.released = False

    def isOpened(self):  # noqa: N802 (cv2's name)
        return True

    def get(self, prop):
        return {cv2.CAP_PROP_FPS: 25.0, cv2.CAP_PROP_FRAME_COUNT: self.reported}.get(prop, 8.0)

    def grab(self):
        ok = self.position < self.count and self.position not in self.bad
        self.position += 1
        return ok

    def read(self):
        ok = self.grab()
        return ok, np.zeros((8, 8, 3), np.uint8) if ok else None

    def release(self):
        self.released = True


@pytest.mark.parametrize(
    "count, bad, reported, expected, skipped",
    [
        (10, {3, 4}, 10, [0, 1, 2, 5, 6, 7, 8, 9], 2),  # corrupt frames mid-video: go on
        (10, {9}, 10, list(range(9)), 0),  # unreadable last frame is the end, not a missing frame
        (6, set(), 10, list(range(6)), 0),  # container over-reports its length: stop after a few retries
        (6, {2}, 0, [0, 1, 3, 4, 5], 1),  # unknown length (webcam): a failed read is retried too
    ],
)
def test_video_read_failures(monkeypatch, count, bad, reported, expected, skipped):
    capture = FakeCapture(count, bad, reported)
    monkeypatch.setattr(sources.cv2, "VideoCapture", lambda target: capture)
    source = Source([("video", "fake.mp4")])
    assert [f.index for f in source] == expected
    assert source.skipped == skipped and capture.released


def test_capture_released_when_iteration_stops_early(monkeypatch):
    capture = FakeCapture(10, set(), 10)
    monkeypatch.setattr(sources.cv2, "VideoCapture", lambda target: capture)
    frames = iter(Source([("webcam", 0)]))
    assert next(frames).path == "webcam0"
    frames.close()
    assert capture.released
