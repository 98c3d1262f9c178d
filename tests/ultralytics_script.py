"""A script written against ultralytics' detection API (``YOLO``, ``Results``, ``Boxes``, ``DetMetrics``), touching
each field a user reads. ``tests/test_ultralytics_script.py`` runs it unchanged on yolorep; ``benchmarks/
ultralytics_script_check.py`` runs the same function on ultralytics itself, which shows it was written against
ultralytics' meanings (run there: ``/tmp/anchors/bin/python benchmarks/ultralytics_script_check.py``).

Only the ``YOLO`` class, the weights, an image, a data YAML and an output folder are given; everything else is
spelt as ultralytics spells it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch


def check_boxes(boxes, orig_shape):
    n = len(boxes)
    h, w = orig_shape
    assert boxes.shape == (n, 6) and tuple(boxes.data.shape) == (n, 6)
    assert boxes.xyxy.shape == (n, 4) and boxes.xywh.shape == (n, 4)
    assert boxes.conf.shape == (n,) and boxes.cls.shape == (n,)
    assert boxes.id is None and not boxes.is_track  # no tracking
    assert tuple(boxes.orig_shape) == (h, w)
    xyxy, xywh = boxes.xyxy, boxes.xywh
    torch.testing.assert_close(xywh[:, :2], (xyxy[:, :2] + xyxy[:, 2:]) / 2)  # centre
    torch.testing.assert_close(xywh[:, 2:], xyxy[:, 2:] - xyxy[:, :2])  # size
    scale = torch.tensor([w, h, w, h], dtype=xyxy.dtype)
    torch.testing.assert_close(boxes.xyxyn, xyxy / scale)
    torch.testing.assert_close(boxes.xywhn, xywh / scale)
    first = boxes[0]
    assert len(first) == 1 and float(first.conf) == float(boxes.conf[0])
    numpy_boxes = boxes.numpy()
    assert isinstance(numpy_boxes.data, np.ndarray) and isinstance(numpy_boxes.xywhn, np.ndarray)
    np.testing.assert_allclose(numpy_boxes.xyxy, xyxy.numpy(), rtol=1e-6)
    assert boxes.cpu().data.device.type == "cpu"


def check_results(result, image, names, out_dir):
    image_bgr = result.orig_img
    assert isinstance(image_bgr, np.ndarray) and image_bgr.shape == (*result.orig_shape, 3)
    assert Path(result.path).name == Path(image).name
    check_boxes(result.boxes, result.orig_shape)
    for c in result.boxes.cls:
        assert result.names[int(c)] == names[int(c)]
    assert set(result.speed) == {"preprocess", "inference", "postprocess"}
    assert all(isinstance(v, float) and v >= 0 for v in result.speed.values())
    assert len(result[:2]) == min(2, len(result))  # a Results holding the first two detections

    summary = result.summary()
    assert len(summary) == len(result)
    row = summary[0]
    assert row["name"] == names[row["class"]] and isinstance(row["confidence"], float)
    assert set(row["box"]) == {"x1", "y1", "x2", "y2"}
    assert abs(row["box"]["x2"] - float(result.boxes.xyxy[0, 2])) < 1e-3
    normalized = result.summary(normalize=True)[0]["box"]
    assert abs(normalized["x2"] - float(result.boxes.xyxyn[0, 2])) < 1e-4
    assert json.loads(result.to_json())[0]["name"] == row["name"]
    assert result.verbose().endswith(", ") and names[row["class"]] in result.verbose()

    plotted = result.plot()
    assert plotted.shape == image_bgr.shape and plotted.dtype == np.uint8
    saved = result.save(filename=str(out_dir / "annotated.jpg"))
    assert Path(saved).is_file()
    assert Path(result.save()).is_file()  # results_<name> in the working directory
    txt = result.save_txt(str(out_dir / "labels.txt"), save_conf=True)
    rows = np.loadtxt(txt, ndmin=2)
    assert rows.shape == (len(result), 6)
    np.testing.assert_allclose(rows[:, 1:5], result.boxes.xywhn.numpy(), atol=1e-3)
    np.testing.assert_allclose(rows[:, 5], result.boxes.conf.numpy(), atol=1e-3)
    result.save_crop(save_dir=str(out_dir / "crops"), file_name="crop")
    crops = [p for p in (out_dir / "crops").rglob("*.jpg")]
    assert 0 < len(crops) <= len(result) and {p.parent.name for p in crops} <= set(names.values())
    assert isinstance(result.cpu().boxes.data, torch.Tensor)
    assert isinstance(result.numpy().boxes.data, np.ndarray)


def check_metrics(metrics, nc):
    box = metrics.box
    for value in (box.map, box.map50, box.map75, box.mp, box.mr, metrics.fitness):
        assert 0.0 <= float(value) <= 1.0
    assert box.map <= box.map50 + 1e-9
    assert len(box.maps) == nc
    assert set(metrics.results_dict) == {
        "metrics/precision(B)", "metrics/recall(B)", "metrics/mAP50(B)", "metrics/mAP50-95(B)", "fitness"
    }  # fmt: skip
    assert metrics.results_dict["metrics/mAP50-95(B)"] == box.map
    assert metrics.results_dict["metrics/mAP50(B)"] == box.map50
    assert metrics.results_dict["fitness"] == metrics.fitness
    assert list(metrics.box.mean_results()) == [box.mp, box.mr, box.map50, box.map]
    assert {"preprocess", "inference", "postprocess"} <= set(metrics.speed)


def exercise(YOLO, weights, image, data, out_dir, device="cpu", imgsz=64):
    """Predict on ``image`` and validate on ``data`` with ``YOLO`` (ultralytics' or yolorep's), checking every
    field; returns what was checked, for the caller to print."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model = YOLO(weights)
    assert model.task == "detect"
    assert model.ckpt_path is None or Path(model.ckpt_path).name == Path(weights).name
    names = model.names
    assert isinstance(names[0], str) and dict(names.items())[0] == names[0]

    results = model(image, conf=0.0, max_det=5, imgsz=imgsz, device=device, verbose=False)
    assert len(results) == 1 and len(results[0]) == 5
    results = model.predict(
        image, conf=0.0, max_det=5, imgsz=imgsz, device=device, verbose=False, save=True,
        project=str(out_dir / "runs"), name="predict",
    )  # fmt: skip
    result = results[0]
    assert result.save_dir is not None and Path(result.save_dir).is_dir()
    assert any(Path(result.save_dir).iterdir())  # the annotated image
    cwd = os.getcwd()
    os.chdir(out_dir)
    try:
        check_results(result, image, names, out_dir)
    finally:
        os.chdir(cwd)

    metrics = model.val(data=str(data), imgsz=imgsz, batch=4, device=device, workers=0,
                        project=str(out_dir / "runs"), name="val")  # fmt: skip
    check_metrics(metrics, len(names))
    return {"detections": len(result), "map50-95": float(metrics.box.map), "fitness": float(metrics.fitness)}
