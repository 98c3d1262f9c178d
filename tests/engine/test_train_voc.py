"""A VOC data set trains and is scored by pycocotools end to end."""

from __future__ import annotations

import json

from helpers import TINY_HYP
from voc_files import coloured_voc_set

import yolorep
from yolorep.engine.train.setup import train


def test_one_epoch_on_a_tiny_voc_set_gives_pycocotools_metrics(tmp_path, one_thread):
    data = coloured_voc_set(tmp_path / "VOC", n_train=8, n_val=4)  # names collected: green, red
    results = train(
        model="yolorep-n.yaml", data=data, epochs=1, imgsz=64, batch=4, device="cpu", workers=0,
        project=tmp_path / "runs", name="voc", hyp=dict(TINY_HYP), optimizer="auto",
    )  # fmt: skip
    assert results["source"] == "pycocotools" and results["images"] == 4
    assert len(results["coco_stats"]) == 12 and 0.0 <= results["map50_95"] <= 1.0
    run = tmp_path / "runs" / "voc"
    assert json.loads((run / "metrics.json").read_text())["map50_95"] == results["map50_95"]
    assert yolorep.load(run / "weights" / "best.pt").names == ["green", "red"]
