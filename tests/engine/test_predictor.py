import json
import logging
import math
import types
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from helpers import write_video

import yolorep
from yolorep.cli import main
from yolorep.engine.predict import writer as prediction_writer
from yolorep.engine.predict.predictor import Detector, predict
from yolorep.engine.predict.results import Results
from yolorep.engine.run_dir import increment_run_dir
from yolorep.errors import YolorepError

IMGSZ = 64


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    model = yolorep.build_model("yolorep-n.yaml", nc=3)
    model.names = ["circle", "square", "triangle"]
    return yolorep.save(model, tmp_path_factory.mktemp("weights") / "w.pt")


@pytest.fixture(scope="module")
def detector(weights):
    # conf 0 keeps the top boxes of a random model, so there is something to save and compare
    return Detector(weights, device="cpu", imgsz=IMGSZ, conf=0.0, max_det=5)


@pytest.fixture(scope="module")
def fused(detector):
    """The fused model: ``predict`` takes it in place of a checkpoint path, which saves loading it per test."""
    return detector.model


@pytest.fixture
def images(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    color = rng.integers(0, 255, (48, 80, 3), dtype=np.uint8)
    cv2.rectangle(color, (10, 10), (40, 30), (255, 255, 255), -1)
    cv2.imwrite(str(folder / "color.jpg"), color)
    cv2.imwrite(str(folder / "gray.png"), rng.integers(0, 255, (70, 50), dtype=np.uint8))
    cv2.imwrite(str(folder / "alpha.png"), rng.integers(0, 255, (40, 40, 4), dtype=np.uint8))
    (folder / "corrupt.jpg").write_bytes(rng.bytes(256))
    return folder


def read_video(path):
    capture = cv2.VideoCapture(str(path))
    props = (capture.get(cv2.CAP_PROP_FRAME_WIDTH), capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
    fps, frames = capture.get(cv2.CAP_PROP_FPS), 0
    while capture.read()[0]:
        frames += 1
    capture.release()
    return frames, props, fps


def test_increment_run_dir(tmp_path):
    first = increment_run_dir(tmp_path / "runs", "exp")
    (first / "keep.txt").write_text("x")
    assert [increment_run_dir(tmp_path / "runs", "exp").name for _ in range(2)] == ["exp2", "exp3"]
    assert first.name == "exp" and (first / "keep.txt").read_text() == "x"


def test_cli_predict_folder(weights, images, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    code = main(["predict", "--weights", str(weights), "--source", str(images), "--imgsz", str(IMGSZ)]
                + ["--device", "cpu", "--project", str(tmp_path / "runs")])  # fmt: skip
    assert code == 0
    run = tmp_path / "runs" / "exp"
    assert sorted(p.name for p in run.iterdir()) == ["alpha.png", "color.jpg", "gray.png"]
    assert cv2.imread(str(run / "gray.png")).shape == (70, 50, 3)
    assert "corrupt.jpg" in caplog.text and "1 unreadable skipped" in caplog.text
    assert "fused" in caplog.text and "Speed:" in caplog.text


def test_results_in_original_pixels(detector, images):
    results = detector.predict(images)
    assert [Path(r.path).name for r in results] == ["alpha.png", "color.jpg", "gray.png"]
    for r in results:
        h, w = r.orig_shape
        assert r.orig_image.shape == (h, w, 3) and r.frame is None and len(r) == 5
        assert r.boxes.xyxy.dtype == torch.float32 and r.classes.dtype == torch.int64
        boxes = r.boxes.xyxy
        assert (boxes >= 0).all() and (boxes[:, [0, 2]] <= w).all() and (boxes[:, [1, 3]] <= h).all()
        assert r.plot().shape == r.orig_image.shape


class FixedBoxModel(torch.nn.Module):
    """Outputs one box (16, 24, 48, 40) xyxy in letterboxed input pixels, class 1 with score 0.9."""

    names = ["a", "b", "c"]
    stride = torch.tensor([8.0, 16.0, 32.0])

    def forward(self, x):
        self.input_shape = tuple(x.shape)
        out = torch.zeros(x.shape[0], 1, 7)
        out[..., :4] = torch.tensor([16.0, 24.0, 48.0, 40.0])
        out[..., 5] = 0.9
        return out


def test_boxes_map_back_through_letterbox():
    detector = Detector(FixedBoxModel(), device="cpu", imgsz=IMGSZ)
    # 100 x 150 -> longest side 64: 43 x 64, padded to 64 x 64 with 10 rows on top
    (result,) = detector.predict(np.zeros((100, 150, 3), np.uint8))
    assert detector.model.model.input_shape == (1, 3, 64, 64)
    rw, rh = 64 / 150, 43 / 100
    expected = torch.tensor([[16 / rw, (24 - 10) / rh, 48 / rw, (40 - 10) / rh]])
    torch.testing.assert_close(result.boxes.xyxy, expected)
    assert result.classes.tolist() == [1] and result.scores.tolist() == pytest.approx([0.9])


def test_batched_letterbox_shares_the_smallest_stride_multiple_shape(detector):
    x, ratio_pads = detector.preprocess([np.zeros((20, 64, 3), np.uint8), np.zeros((64, 30, 3), np.uint8)])
    assert tuple(x.shape) == (2, 3, 64, 64) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    assert ratio_pads[0] == ((1.0, 1.0), (0, 22))
    x, _ = detector.preprocess([np.zeros((20, 64, 3), np.uint8)])
    assert tuple(x.shape) == (1, 3, 32, 64)


@pytest.mark.parametrize("stride", [1, 2])
def test_video_keeps_size_fps_and_frame_count(fused, tmp_path, stride):
    video = write_video(tmp_path / "clip.mp4", frames=12, size_wh=(96, 64), fps=10.0)
    run = predict(fused, video, imgsz=IMGSZ, vid_stride=stride, device="cpu", project=tmp_path / "runs")
    frames, size, fps = read_video(run / "clip.mp4")
    assert frames == math.ceil(12 / stride) and size == (96, 64) and fps == 10.0


def test_stream_yields_results_one_by_one(detector, tmp_path):
    video = write_video(tmp_path / "clip.avi", frames=7, fourcc="MJPG")
    results = detector.predict(video, stream=True, vid_stride=3)
    assert isinstance(results, types.GeneratorType)
    first = next(results)
    assert first.frame == 0 and first.video.fps == 10.0
    assert [r.frame for r in results] == [3, 6]


def test_save_txt_and_json_agree_with_results(fused, detector, images, tmp_path):
    results = detector.predict(images)
    run = predict(fused, images, conf=0.0, max_det=5, imgsz=IMGSZ, device="cpu", save_txt=True, save_json=True,
                  no_save=True, project=tmp_path / "runs")  # fmt: skip
    assert sorted(p.name for p in run.iterdir()) == ["labels", "predictions.json"]
    predictions = json.loads((run / "predictions.json").read_text())
    assert len(predictions) == sum(len(r) for r in results)
    # a COCO results file: one image_id per image (its position), 1-based category ids, the file name to join on
    assert {p["image_id"]: p["file_name"] for p in predictions} == {i: r.path for i, r in enumerate(results)}
    for r in results:
        h, w = r.orig_shape
        name = Path(r.path).name
        rows = np.loadtxt(run / "labels" / f"{Path(name).stem}.txt", ndmin=2)
        assert rows.shape == (len(r), 6)
        xyxy = r.boxes.xyxy
        cx, cy = (xyxy[:, 0] + xyxy[:, 2]) / 2 / w, (xyxy[:, 1] + xyxy[:, 3]) / 2 / h
        np.testing.assert_allclose(rows[:, 1], cx, atol=1e-5)
        np.testing.assert_allclose(rows[:, 2], cy, atol=1e-5)
        np.testing.assert_allclose(rows[:, [0, 5]], np.stack([r.classes, r.scores], 1), atol=1e-5)
        mine = [p for p in predictions if p["file_name"] == r.path]
        assert set(mine[0]) == {"image_id", "category_id", "bbox", "score", "file_name"}
        ltwh = np.array([p["bbox"] for p in mine])
        np.testing.assert_allclose(ltwh[:, :2] + ltwh[:, 2:], r.boxes.xyxy[:, 2:], atol=2e-3)
        assert [p["category_id"] for p in mine] == (r.classes + 1).tolist()
        np.testing.assert_allclose([p["score"] for p in mine], r.scores, atol=1e-5)


def test_missing_source_is_a_clear_error(fused, detector, tmp_path):
    missing = tmp_path / "nowhere" / "x.jpg"
    with pytest.raises(YolorepError, match=str(missing)):
        detector.predict(missing, stream=True)
    with pytest.raises(YolorepError, match=str(missing)):
        predict(fused, missing, imgsz=IMGSZ, device="cpu", project=tmp_path / "runs")
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    "kwargs, match",
    [({"imgsz": 100}, "--imgsz 100: must be a positive multiple of the model stride 32; use 96 or 128"),
     ({"conf": 1.5}, "--conf 1.5"), ({"classes": [3]}, "--classes")],
)  # fmt: skip
def test_bad_options(fused, kwargs, match):
    with pytest.raises(YolorepError, match=match):
        Detector(fused, device="cpu", **kwargs)


def test_codec_fallback(fused, tmp_path, monkeypatch, caplog):
    monkeypatch.setitem(prediction_writer.VIDEO_CODECS, ".mp4", (("XXXX", ".mp4"), ("MJPG", ".avi")))
    video = write_video(tmp_path / "clip.mp4", frames=4)
    run = predict(fused, video, imgsz=IMGSZ, device="cpu", project=tmp_path / "runs")
    assert [p.name for p in run.iterdir()] == ["clip.avi"] and read_video(run / "clip.avi")[0] == 4
    assert "codec XXXX not available" in caplog.text


def test_partial_video_is_closed_and_plays_after_an_error(fused, tmp_path, monkeypatch):
    plot = Results.plot

    def failing_plot(self, **kwargs):
        if self.frame == 5:
            raise KeyboardInterrupt
        return plot(self, **kwargs)

    monkeypatch.setattr(Results, "plot", failing_plot)
    video = write_video(tmp_path / "clip.mp4", frames=12)
    with pytest.raises(KeyboardInterrupt):
        predict(fused, video, imgsz=IMGSZ, device="cpu", save_json=True, project=tmp_path / "runs")
    run = tmp_path / "runs" / "exp"
    assert read_video(run / "clip.mp4")[0] == 5
    assert json.loads((run / "predictions.json").read_text()) == []


@pytest.mark.parametrize("fmt", ["pt", "onnx"])
def test_a_runtime_with_threads_of_its_own_gets_the_cores_during_its_call(weights, tmp_path, monkeypatch, fmt):
    """Around ONNX Runtime (threads of its own) torch pre- and post-processes on one thread and gives the caller's
    count back for the call and afterwards; a PyTorch backend computes on the caller's count throughout."""
    pytest.importorskip("onnxruntime")
    from yolorep.engine.deploy import export

    model = weights if fmt == "pt" else export(weights, format="onnx", imgsz=IMGSZ, dynamic=True)
    seen = {}

    def recording(name, method):
        def wrapper(self, *args, **kwargs):
            seen.setdefault(name, torch.get_num_threads())
            return method(self, *args, **kwargs)

        return wrapper

    monkeypatch.setattr(Detector, "preprocess", recording("preprocess", Detector.preprocess))
    monkeypatch.setattr(Detector, "_results", recording("results", Detector._results))
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        detector = Detector(model, device="cpu", imgsz=IMGSZ, conf=0.0, max_det=5)
        backend = type(detector.model)
        monkeypatch.setattr(backend, "_forward", recording("call", backend._forward))
        results = detector.predict([np.zeros((48, 64, 3), np.uint8)])
        after = torch.get_num_threads()
    finally:
        torch.set_num_threads(previous)
    host = 1 if fmt == "onnx" else 2
    assert seen == {"preprocess": host, "call": 2, "results": host} and after == 2
    assert len(results) == 1 and len(results[0].boxes) == 5
