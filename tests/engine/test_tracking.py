"""``yolorep track`` and ``ObjectTracker`` end to end: a stand-in detector with known boxes on generated videos and
frames, the files a run writes, bad input, and the real model through its exports."""

from __future__ import annotations

import json
import logging

import cv2
import numpy as np
import pytest
import torch
from torch import nn

import yolorep
from yolorep import YOLO
from yolorep.cli import main
from yolorep.engine.deploy import export
from yolorep.engine.predict.predictor import Detector
from yolorep.engine.predict.tracking import ObjectTracker, track
from yolorep.errors import ConfigError

pytestmark = pytest.mark.usefixtures("one_thread")
SIZE = 96  # frames are SIZE x SIZE and run at imgsz SIZE: input pixels are image pixels


class ScriptedDetector(nn.Module):
    """Returns, call after call, the next frame's boxes: a detector whose answers are known.

    Args:
        frames: per frame, rows (x1, y1, x2, y2, score) in pixels.
    """

    def __init__(self, frames: list[list[list[float]]]) -> None:
        super().__init__()
        self.names, self.stride, self.frames, self.calls = ["shape"], 32, frames, 0

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(images.shape[0], 16, 5)  # [B, N, 4 + nc]
        for b in range(images.shape[0]):
            rows = torch.tensor(self.frames[self.calls], dtype=torch.float32).reshape(-1, 5)
            out[b, : len(rows)] = rows
            self.calls += 1
        return out


def _two_objects(n: int, empty: range = range(0)) -> list[list[list[float]]]:
    """Two squares moving in opposite directions (they cross), none detected in the frames of ``empty``."""
    frames = []
    for t in range(n):
        a, b = 5 + 3 * t, 70 - 3 * t
        frames.append([] if t in empty else [[a, 20, a + 16, 36, 0.9], [b, 26, b + 16, 42, 0.8]])
    return frames


def _write_video(path, frames: int, fourcc: str = "mp4v"):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 10.0, (SIZE, SIZE))
    rng = np.random.default_rng(0)
    for _ in range(frames):
        writer.write(rng.integers(0, 255, (SIZE, SIZE, 3), dtype=np.uint8))
    writer.release()
    return path


def _mot_rows(path) -> np.ndarray:
    return np.array([[float(v) for v in line.split(",")] for line in path.read_text().splitlines()]).reshape(-1, 10)


def test_track_writes_mot_rows_tracks_json_and_an_annotated_video(tmp_path):
    video = _write_video(tmp_path / "clip.mp4", 20)
    model = ScriptedDetector(_two_objects(20, empty=range(8, 11)))
    run = track(model, video, imgsz=SIZE, save_txt=True, save_json=True, device="cpu", project=tmp_path / "runs")
    rows = _mot_rows(run / "labels" / "clip.txt")
    assert sorted(set(rows[:, 1].astype(int))) == [1, 2]  # two identities, kept through the gap and the crossing
    assert sorted(set(rows[:, 0].astype(int))) == [f for f in range(1, 21) if f not in (9, 10, 11)]  # 1-based
    first = rows[rows[:, 0] == 1]
    np.testing.assert_allclose(first[first[:, 1] == 1, 2:6], [[5, 20, 16, 16]], atol=1e-3)  # left, top, w, h
    assert (rows[:, 7:] == -1).all()
    records = json.loads((run / "tracks.json").read_text())
    assert [r["frame"] for r in records] == list(range(1, 21)) and records[0]["sequence"] == "clip"
    assert {o["id"] for o in records[0]["objects"]} == {1, 2} and records[9]["objects"] == []
    capture = cv2.VideoCapture(str(run / "clip.mp4"))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 20
    capture.release()


def test_folders_of_frames_are_sequences_named_after_them(tmp_path):
    for name in ("seq-a", "seq-b"):
        (tmp_path / name / "img1").mkdir(parents=True)
        for i in range(1, 7):
            cv2.imwrite(str(tmp_path / name / "img1" / f"{i:06d}.jpg"), np.full((SIZE, SIZE, 3), 20 * i, np.uint8))
    sources = sorted(str(p) for p in tmp_path.glob("seq-*/img1/*.jpg"))
    model = ScriptedDetector(_two_objects(6) + _two_objects(6))
    run = track(model, sources, imgsz=SIZE, save_txt=True, no_save=True, device="cpu", project=tmp_path / "runs")
    for name in ("seq-a", "seq-b"):  # each sequence starts afresh: ids 1 and 2 again, frames 1..6
        rows = _mot_rows(run / "labels" / f"{name}.txt")
        assert sorted(set(rows[:, 1].astype(int))) == [1, 2] and sorted(set(rows[:, 0])) == list(range(1, 7))


def test_stream_and_persist_keep_identities_across_calls():
    frames = _two_objects(13)
    tracking = ObjectTracker(Detector(ScriptedDetector(frames), device="cpu", imgsz=SIZE), "botsort.yaml")
    image = np.zeros((SIZE, SIZE, 3), np.uint8)
    lefts = {}
    for _ in range(12):  # one call per frame, as a webcam loop does
        (result,) = tracking.track(image, persist=True)
        assert result.boxes.xyxy.shape == (2, 4) and result.boxes.cls.tolist() == [0, 0]
        for track_id, box in zip(result.boxes.id.tolist(), result.boxes.xyxy.tolist()):
            lefts.setdefault(track_id, []).append(box[0])
    assert sorted(lefts) == [1, 2]  # two identities over twelve calls
    steps = {track_id: np.diff(x) for track_id, x in lefts.items()}
    assert sorted(round(float(np.median(s))) for s in steps.values()) == [-3, 3]  # each follows one object
    (result,) = tracking.track(image)  # without persist: a new sequence, identities from 1 again
    assert sorted(result.boxes.id.tolist()) == [1, 2] and tracking.tracker.next_id == 3


def test_a_video_that_ends_early_keeps_what_was_read(tmp_path):
    video = _write_video(tmp_path / "cut.avi", 30, fourcc="MJPG")
    data = video.read_bytes()
    video.write_bytes(data[: len(data) // 2])  # the file stops mid-frame
    model = ScriptedDetector(_two_objects(30))
    run = track(model, video, imgsz=SIZE, save_txt=True, device="cpu", project=tmp_path / "runs")
    rows = _mot_rows(run / "labels" / "cut.txt")
    frames = sorted(set(rows[:, 0].astype(int)))
    assert 5 < len(frames) < 30 and frames == list(range(1, len(frames) + 1))
    assert sorted(set(rows[:, 1].astype(int))) == [1, 2]


@pytest.mark.parametrize(
    "text, message",
    [
        ("tracker_type: sort\n", "tracker_type: 'sort' is not one of bytetrack, botsort"),
        ("tracker_type: bytetrack\nmatch_tresh: 0.5\n", "unknown key 'match_tresh'; did you mean match_thresh?"),
        ("tracker_type: bytetrack\ntrack_buffer: -3\n", "track_buffer: -3 is not a whole number of frames"),
        ("tracker_type: botsort\nwith_reid: true\n", "with_reid: True: appearance re-identification"),
        ("tracker_type: [bytetrack\n", "not valid YAML"),
    ],
)
def test_a_wrong_tracker_yaml_is_one_line_and_exit_2(tmp_path, caplog, text, message):
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    code = main(["track", "--weights", str(tmp_path / "missing.pt"), "--source", str(tmp_path), "--tracker", str(bad)])
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert code == 2 and len(errors) == 1 and str(bad) in errors[0] and message in errors[0]
    assert not (tmp_path / "runs").exists()


def test_partial_yaml_takes_the_builtin_values_and_ultralytics_files_are_read(tmp_path):
    from yolorep.track import load_tracker_config

    mine = tmp_path / "mine.yaml"
    mine.write_text("tracker_type: botsort\ntrack_buffer: 60\n")
    config = load_tracker_config(mine)
    assert config.track_buffer == 60 and config.gmc_method == "sparseOptFlow" and config.match_thresh == 0.8
    theirs = tmp_path / "theirs.yaml"
    theirs.write_text("tracker_type: botsort\nproximity_thresh: 0.5\nappearance_thresh: 0.8\nwith_reid: False\n"
                      "model: auto\ngmc_method: ecc\n")  # fmt: skip
    assert load_tracker_config(theirs).gmc_method == "ecc"
    with pytest.raises(ConfigError, match="no such file"):
        load_tracker_config("strongsort.yaml")


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    model = yolorep.build_model("yolorep-n.yaml", nc=2)
    model.names = ["a", "b"]
    return yolorep.save(model, tmp_path_factory.mktemp("track_weights") / "w.pt")


# thresholds at 0: a random model's weak boxes become tracks, so every backend has identities to give
OPEN = {"tracker_type": "bytetrack", "track_high_thresh": 0.0, "track_low_thresh": 0.0, "new_track_thresh": 0.0}


@pytest.mark.parametrize("fmt", ["pt", "onnx", "torchscript", pytest.param("openvino", marks=pytest.mark.slow)])
def test_every_backend_runs_underneath(weights, tmp_path, fmt):
    model = weights if fmt == "pt" else export(weights, format=fmt, imgsz=64, dynamic=fmt != "openvino")
    video = _write_video(tmp_path / "v.mp4", 4)
    tracking = ObjectTracker(Detector(model, device="cpu", imgsz=64, conf=0.0, max_det=5), OPEN)
    results = tracking.track(video)
    assert len(results) == 4 and all(r.boxes.id is not None for r in results)
    assert sum(len(r.boxes) for r in results) > 0 and tracking.speed_ms > 0


def test_yolo_track_streams_ids_and_predict_has_none(weights, tmp_path):
    video = _write_video(tmp_path / "v.mp4", 3)
    model = YOLO(weights, verbose=False)
    tracked = list(model.track(video, stream=True, tracker=OPEN, device="cpu", imgsz=64, conf=0.0, max_det=3))
    assert len(tracked) == 3 and all(r.boxes.id is not None and r.boxes.id.dtype == torch.int64 for r in tracked)
    assert all(r.boxes.id is None for r in model.predict(video, device="cpu", imgsz=64))


@pytest.mark.parametrize("tracker", ["bytetrack.yaml", "botsort.yaml"])
def test_end_to_end_on_a_generated_sequence_scored_by_track_eval(tmp_path, caplog, tracker):
    """Track the frames of a tiny shapes-track sequence with a detector that sees exactly the ground truth, then
    score the run with the CLI: the tracker alone loses little."""
    pytest.importorskip("trackeval")
    from yolorep.datasets.shapes_track import generate_shapes_track

    root = generate_shapes_track(tmp_path / "st", sequences=1, frames=40, size_wh=(256, 192), objects=8, seed=1)
    gt = np.loadtxt(root / "shapes-01" / "gt" / "gt.txt", delimiter=",", ndmin=2)
    frames = [[[x, y, x + w, y + h, 0.9] for _, _, x, y, w, h, *_ in gt[gt[:, 0] == f]] for f in range(1, 41)]
    source = str(root / "shapes-01" / "img1")
    run = track(ScriptedDetector(frames), source, tracker=tracker, imgsz=256, save_txt=True, no_save=True,
                device="cpu", project=tmp_path / "runs")  # fmt: skip
    assert (run / "labels" / "shapes-01.txt").is_file()
    caplog.set_level(logging.INFO)
    assert main(["track-eval", "--gt", str(root), "--pred", str(run), "--project", str(tmp_path / "eval")]) == 0
    combined = json.loads((tmp_path / "eval" / "exp" / "metrics.json").read_text())["combined"]
    assert combined["HOTA"] > 0.8 and combined["IDF1"] > 0.8 and combined["MOTA"] > 0.8, combined
    assert any("shapes-01" in r.getMessage() and "HOTA" not in r.getMessage() for r in caplog.records)


def test_missing_scipy_or_trackeval_is_one_line(tmp_path, caplog, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "scipy.optimize", None)  # import fails as if scipy were not installed
    assert main(["track", "--weights", "w.pt", "--source", str(tmp_path)]) == 2
    monkeypatch.setitem(sys.modules, "trackeval", None)
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "s.txt").write_text("1,1,1,1,2,2,1,-1,-1,-1\n")
    (tmp_path / "g" / "s" / "gt").mkdir(parents=True)
    (tmp_path / "g" / "s" / "gt" / "gt.txt").write_text("1,1,1,1,2,2,1,1,1\n")
    assert main(["track-eval", "--gt", str(tmp_path / "g"), "--pred", str(tmp_path / "p")]) == 2
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert "pip install 'yolorep[track]'" in errors[0] and "pip install 'yolorep[track-eval]'" in errors[1]
