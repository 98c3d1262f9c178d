"""``yolorep val --protocol``: the evaluation settings behind a project's published numbers, as named settings."""

from __future__ import annotations

from yolorep.cli import main
from yolorep.engine.val import validator
from yolorep.engine.val.validator import val


def test_protocols_set_thresholds_detections_and_batches(trained_tiny, tmp_path, caplog, monkeypatch):
    weights = trained_tiny / "weights" / "best.pt"
    caplog.set_level("INFO", logger="yolorep")
    rect, build = [], validator.build_eval_loader
    monkeypatch.setattr(validator, "build_eval_loader", lambda *a, **k: rect.append(k["rect"]) or build(*a, **k))
    results = val(weights, imgsz=64, batch=4, device="cpu", workers=0, project=tmp_path, protocol="yolov6")
    assert results["settings"]["conf"] == 0.03 and results["settings"]["iou"] == 0.65
    assert "protocol yolov6: imgsz 640, conf 0.03, iou 0.65, max_det 300" in caplog.text
    mine = val(weights, imgsz=64, batch=4, device="cpu", workers=0, project=tmp_path, protocol="ultralytics", conf=0.2)
    assert mine["settings"]["conf"] == 0.2 and mine["settings"]["iou"] == 0.7  # a flag beside it still wins
    assert rect == [False, True]  # square letterboxed batches for yolov6's protocol, rectangular for ultralytics'


def test_unknown_protocol_is_one_line(trained_tiny, caplog):
    assert main(["val", "--weights", str(trained_tiny / "weights" / "best.pt"), "--protocol", "yolov5"]) == 2
    assert "--protocol yolov5: unknown; use one of yolov6, ultralytics" in caplog.text
