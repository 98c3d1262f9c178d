"""``yolorep.YOLO`` end to end on the tiny set: train, val (data from the checkpoint), predict on every input kind,
the Results API, export, fuse, info, benchmark, and what it prints."""

from __future__ import annotations

import json
import logging

import cv2
import numpy as np
import pytest
import torch
from helpers import TINY_HYP, write_video
from PIL import Image

import yolorep
from yolorep.api import Metrics
from yolorep.engine.deploy import load_backend
from yolorep.engine.predict.results import Boxes, Results
from yolorep.logs import configure_logging

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def trained(tiny_shapes_yaml, tmp_path_factory):
    model = yolorep.YOLO("yolorep-n.yaml", verbose=False)
    project = tmp_path_factory.mktemp("api")
    metrics = model.train(data=str(tiny_shapes_yaml), epochs=1, imgsz=64, batch=4, workers=0, device="cpu",
                          project=str(project), name="run", **TINY_HYP)  # fmt: skip
    return model, metrics


def test_train_returns_metrics_and_holds_best(trained):
    model, metrics = trained
    assert isinstance(metrics, Metrics) and metrics.source == "pycocotools"
    assert metrics.map50_95 == metrics["map50_95"] and set(metrics) >= {"map50", "coco_stats", "save_dir"}
    assert model.checkpoint.name == "best.pt" and str(model.checkpoint).startswith(metrics.save_dir)
    assert model.names == ["circle", "rectangle", "triangle", "ellipse", "star", "cross"]
    stored = json.loads((model.checkpoint.parent.parent / "metrics.json").read_text())
    assert stored["map50_95"] == metrics.map50_95


def test_val_takes_the_data_set_and_size_from_the_checkpoint(trained, tmp_path):
    model, trained_metrics = trained
    metrics = model.val(batch=4, workers=0, project=str(tmp_path))
    assert metrics.images == 6 and metrics.settings["conf"] == 0.001
    stored = json.loads((tmp_path / "exp" / "metrics.json").read_text())
    assert metrics.save_dir == str(tmp_path / "exp") and stored["map50_95"] == metrics.map50_95
    assert metrics.map50_95 == pytest.approx(trained_metrics.map50_95, abs=1e-9)


@pytest.fixture
def sources(tiny_shapes_yaml, tmp_path):
    images = sorted((tiny_shapes_yaml.parent / "shapes" / "images" / "val").glob("*.jpg"))
    bgr = cv2.imread(str(images[0]))
    rgb_tensor = torch.from_numpy(bgr[:, :, ::-1].copy()).permute(2, 0, 1).float() / 255
    video = write_video(tmp_path / "clip.mp4", frames=3)
    return {
        "path": (str(images[0]), 1),
        "folder": (str(images[0].parent), 6),
        "glob": (str(images[0].parent / "00000[01].jpg"), 2),
        "video": (str(video), 3),
        "numpy": (bgr, 1),
        "pil": (Image.open(images[0]), 1),
        "tensor": (rgb_tensor, 1),
        "batched tensor": (torch.stack([rgb_tensor, rgb_tensor]), 2),
        "list": ([str(images[0]), bgr, Image.open(images[0])], 3),
    }


@pytest.mark.parametrize(
    "kind", ["path", "folder", "glob", "video", "numpy", "pil", "tensor", "batched tensor", "list"]
)
def test_predict_on_every_input_kind(trained, sources, kind):
    model, _ = trained
    source, count = sources[kind]
    results = model.predict(source, conf=0.0, max_det=3, device="cpu")
    assert len(results) == count and all(isinstance(r, Results) for r in results)
    assert all(r.orig_image is not None and len(r) == 3 for r in results)


def test_in_memory_images_give_the_same_boxes_as_their_file(trained, sources):
    model, _ = trained
    path, _ = sources["path"]
    from_file = model(path, conf=0.0, max_det=5, device="cpu")[0]
    for kind in ("numpy", "pil", "tensor"):
        other = model(sources[kind][0], conf=0.0, max_det=5, device="cpu")[0]
        torch.testing.assert_close(other.boxes.data, from_file.boxes.data, atol=0.05, rtol=0)


def test_results_api(trained, sources, tmp_path):
    model, _ = trained
    result = model.predict(sources["path"][0], conf=0.0, max_det=4, device="cpu")[0]
    boxes = result.boxes
    assert isinstance(boxes, Boxes) and len(boxes) == 4 and boxes.data.shape == (4, 6)
    h, w = result.orig_shape
    torch.testing.assert_close(boxes.xywh[:, :2], (boxes.xyxy[:, :2] + boxes.xyxy[:, 2:]) / 2)
    torch.testing.assert_close(boxes.xyxyn, boxes.xyxy / torch.tensor([w, h, w, h]))
    torch.testing.assert_close(boxes.xywhn[:, 2:], (boxes.xyxy[:, 2:] - boxes.xyxy[:, :2]) / torch.tensor([w, h]))
    assert boxes.conf.equal(result.scores) and boxes.cls.dtype == torch.int64 and boxes.cls.equal(result.classes)
    assert len(boxes[:2]) == 2 and len(boxes[boxes.conf > 2]) == 0
    image = result.save(tmp_path / "out.png")
    assert cv2.imread(str(image)).shape == (h, w, 3)
    rows = np.loadtxt(result.save_txt(tmp_path / "out.txt"), ndmin=2)
    np.testing.assert_allclose(rows[:, 1:5], boxes.xywhn.numpy(), atol=1e-5)
    records = json.loads(result.to_json_str())
    assert [r["category_id"] for r in records] == boxes.cls.tolist() and len(records[0]["bbox"]) == 4


def test_export_fuse_info_and_benchmark(trained, tmp_path):
    model, _ = trained
    path = model.export(format="torchscript")  # at the training size, 64, as is the benchmark below
    assert path.suffix == ".torchscript" and path.is_file() and load_backend(path, "cpu").imgsz == 64
    info = model.info(imgsz=64)
    assert info["fused"]["params"] < info["unfused"]["params"]
    figures = model.benchmark(iters=2, warmup=1, device="cpu")
    assert figures["imgsz"] == 64 and figures["speedup"] > 0 and figures["max_abs_diff"] < 1e-2
    fused = yolorep.YOLO(model.checkpoint, verbose=False).fuse()
    assert fused.model.is_fused and "fused" in repr(fused)


def test_verbose_output_and_a_single_handler(trained, capsys, monkeypatch):
    logger = logging.getLogger("yolorep")
    monkeypatch.setattr(logger, "handlers", [])
    monkeypatch.setattr(logging.getLogger(), "handlers", [])
    model = yolorep.YOLO(trained[0].checkpoint)  # verbose by default
    yolorep.YOLO(trained[0].checkpoint)
    assert len(logger.handlers) == 1
    model.info(imgsz=64)
    assert "fused:" in capsys.readouterr().out
    quiet = yolorep.YOLO(trained[0].checkpoint, verbose=False)
    quiet.info(imgsz=64)
    assert capsys.readouterr().out == ""
    monkeypatch.setenv("YOLOREP_VERBOSE", "0")
    yolorep.YOLO(trained[0].checkpoint).info(imgsz=64)
    assert capsys.readouterr().out == ""
    configure_logging(True)


def test_python_training_prints_what_the_cli_prints(tiny_shapes_yaml, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(logging.getLogger("yolorep"), "handlers", [])
    monkeypatch.setattr(logging.getLogger(), "handlers", [])
    yolorep.YOLO("yolorep-n.yaml").train(data=str(tiny_shapes_yaml), epochs=1, imgsz=64, batch=4, workers=0,
                                         device="cpu", project=str(tmp_path), name="run", **TINY_HYP)  # fmt: skip
    out = capsys.readouterr().out
    for line in ("schedule: 1 epochs", "epoch 1/1: mAP50-95", "ground truth scored:", "results saved to"):
        assert line in out, (line, out)


def test_host_logging_is_left_alone(trained, monkeypatch):
    logger = logging.getLogger("yolorep")
    monkeypatch.setattr(logger, "handlers", [])
    host = logging.StreamHandler()
    monkeypatch.setattr(logging.getLogger(), "handlers", [host])
    yolorep.YOLO(trained[0].checkpoint)
    assert logger.handlers == [] and logging.getLogger().handlers == [host]
