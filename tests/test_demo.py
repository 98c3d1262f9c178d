"""The demo path end to end on a very small setting: every promised output exists and parses."""

import csv
import json

import cv2
import torch

import yolorep
from yolorep import demo as demo_module
from yolorep.demo import demo


def test_demo_writes_every_promised_output(tiny_shapes_yaml, tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(demo_module, "DEMO_HYP", {"warmup_epochs": 0.0, "close_mosaic": 0, "mosaic": 0.0})
    monkeypatch.setattr(demo_module, "VIDEO_FRAMES", 6)
    with caplog.at_level("INFO"):
        summary = demo(epochs=1, imgsz=64, device="cpu", project=tmp_path / "demo", data=tiny_shapes_yaml, batch=4,
                       workers=0, speed_iters=2)  # fmt: skip
    run = tmp_path / "demo" / "exp"
    assert summary["save_dir"] == str(run)
    model = yolorep.load(run / "weights" / "best.pt")
    assert not model.is_fused and torch.load(run / "weights" / "last.pt", weights_only=True)["epoch"] == 0
    with open(run / "results.csv") as f:
        assert len(list(csv.DictReader(f))) == 1
    assert cv2.imread(str(run / "results.png")) is not None
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["source"] == "pycocotools" and summary["map50_95"] == metrics["map50_95"]
    assert isinstance(json.loads((run / "predictions.json").read_text()), list)
    speed = json.loads((run / "fuse_benchmark.json").read_text())
    assert speed["speedup"] > 0 and speed["max_abs_diff"] < 1e-2
    images = sorted((run / "predict").glob("*.jpg"))
    assert len(images) == 6 and all(cv2.imread(str(p)) is not None for p in images)  # the tiny set has 6 val images
    videos = list((run / "predict_video").glob("shapes_pan.*"))
    assert len(videos) == 1
    capture = cv2.VideoCapture(str(videos[0]))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 6
    capture.release()
    for path in summary["files"]:
        assert path.split(str(run) + "/")[1] in caplog.text  # the summary names every file written
