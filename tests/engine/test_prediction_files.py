"""Prediction files that join: ``val`` writes beside predictions.json the image id -> file map of the images it
scored, for data sets whose ids are positions (VOC, YOLO layouts)."""

import json

import pytest
from voc_files import coloured_voc_set

import yolorep
from yolorep.engine.val.validator import val

pytestmark = pytest.mark.usefixtures("one_thread")


def test_val_writes_the_image_id_to_file_map(tmp_path):
    data = coloured_voc_set(tmp_path / "voc", n_train=2, n_val=4)
    model = yolorep.build_model("yolorep-n.yaml", nc=2)
    model.names = ["green", "red"]
    weights = yolorep.save(model, tmp_path / "m.pt")
    metrics = val(weights, data, imgsz=64, batch=2, workers=0, device="cpu", project=tmp_path / "runs")
    run = tmp_path / "runs" / "exp"
    images = json.loads((run / "images.json").read_text())
    assert [image["file_name"] for image in images] == [f"JPEGImages/{i:04d}.jpg" for i in range(2, 6)]
    assert all((tmp_path / "voc" / image["file_name"]).is_file() for image in images)
    assert {(image["width"], image["height"]) for image in images} == {(80, 64)}
    predictions = json.loads((run / "predictions.json").read_text())
    assert predictions and {p["image_id"] for p in predictions} <= {image["id"] for image in images}
    assert metrics["images"] == len(images) == 4
