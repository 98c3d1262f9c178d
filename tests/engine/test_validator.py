import json
import sys

import pytest
import torch

import yolorep
from yolorep.datasets.spec import load_data_spec
from yolorep.engine.validator import build_eval_loader, build_validator, default_eval_settings, val
from yolorep.errors import CheckpointError, DatasetError
from yolorep.nn import fused_copy


def test_val_writes_run_folder_with_pycocotools_and_internal(trained_tiny, tiny_shapes_yaml, tmp_path):
    metrics = val(weights=trained_tiny / "weights" / "best.pt", data=tiny_shapes_yaml, batch=4, workers=0,
                  project=tmp_path, name="v")  # fmt: skip
    run = tmp_path / "v"
    stored = json.loads((run / "metrics.json").read_text())
    assert stored["source"] == "pycocotools" and stored["fused"] is True
    for key in ("map50_95", "map50", "map50_95_internal", "map50_internal", "coco_stats", "speed_ms_per_image"):
        assert key in stored
    assert len(stored["coco_stats"]) == 12
    assert stored["map50_95"] == pytest.approx(metrics["map50_95"])
    assert abs(stored["map50_95"] - stored["map50_95_internal"]) <= 0.01
    assert abs(stored["map50"] - stored["map50_internal"]) <= 0.01
    predictions = json.loads((run / "predictions.json").read_text())
    gt = json.loads((tiny_shapes_yaml.parent / "shapes" / "annotations" / "instances_val.json").read_text())
    assert {p["category_id"] for p in predictions} <= {c["id"] for c in gt["categories"]}
    assert {p["image_id"] for p in predictions} <= {i["id"] for i in gt["images"]}
    assert all(len(p["bbox"]) == 4 for p in predictions)
    for name in ("confusion_matrix.png", "pr_curve.png", "val_image0_labels_vs_pred.jpg"):
        assert (run / name).stat().st_size > 0
    assert (tmp_path / "v").is_dir() and not (tmp_path / "v2").exists()


def test_fused_and_unfused_models_score_the_same(trained_tiny, tiny_shapes_yaml):
    unfused = yolorep.load(trained_tiny / "weights" / "best.pt")
    fused = fused_copy(unfused)
    dataset, loader = build_eval_loader(load_data_spec(tiny_shapes_yaml), "val", 64, 4, 32)
    settings = default_eval_settings()
    a = build_validator(dataset, loader, settings)(unfused)
    b = build_validator(dataset, loader, settings)(fused)
    assert not a["fused"] and b["fused"] and a["source"] == "pycocotools"
    for key in ("map50_95", "map50", "map50_95_internal", "precision", "recall"):
        assert a[key] == pytest.approx(b[key], abs=1e-6), key


def test_class_count_mismatch_is_a_clear_error(trained_tiny, tmp_path):
    data = tmp_path / "two.yaml"
    (tmp_path / "images" / "val").mkdir(parents=True)
    (tmp_path / "labels" / "val").mkdir(parents=True)
    data.write_text("path: .\ntrain: images/val\nval: images/val\nnames: [a, b]\n")
    with pytest.raises(CheckpointError, match="predicts 6 classes .* has 2"):
        val(weights=trained_tiny / "weights" / "best.pt", data=data, project=tmp_path)


def test_missing_annotation_file_is_a_clear_error(trained_tiny, tmp_path):
    (tmp_path / "images" / "val").mkdir(parents=True)
    data = tmp_path / "coco.yaml"
    data.write_text("path: .\ntrain: images/val\nval: images/val\nval_json: annotations/missing.json\n"
                    "train_json: annotations/missing.json\n")  # fmt: skip
    with pytest.raises(DatasetError, match="missing.json"):
        val(weights=trained_tiny / "weights" / "best.pt", data=data, project=tmp_path)


def test_eval_settings_come_from_the_checkpoint(trained_tiny, tiny_shapes_yaml, tmp_path, caplog):
    weights = trained_tiny / "weights" / "best.pt"
    assert torch.load(weights, weights_only=True)["eval_args"]["imgsz"] == 64
    with caplog.at_level("WARNING"):
        metrics = val(weights=weights, data=tiny_shapes_yaml, imgsz=96, conf=0.01, batch=4, workers=0,
                      project=tmp_path)  # fmt: skip
    assert "imgsz=96 overrides the checkpoint's evaluation setting imgsz=64" in caplog.text
    assert metrics["settings"]["conf"] == 0.01


def test_without_pycocotools_val_reports_the_internal_estimate(trained_tiny, tiny_shapes_yaml, tmp_path, monkeypatch,
                                                               caplog):  # fmt: skip
    for module in ("pycocotools", "pycocotools.coco", "pycocotools.cocoeval"):
        monkeypatch.setitem(sys.modules, module, None)  # import fails, as where it is not installed
    metrics = val(weights=trained_tiny / "weights" / "best.pt", data=tiny_shapes_yaml, batch=4, workers=0,
                  project=tmp_path, name="v")  # fmt: skip
    stored = json.loads((tmp_path / "v" / "metrics.json").read_text())
    assert stored["source"] == metrics["source"] == "internal estimate" and stored["coco_stats"] == []
    assert stored["map50_95"] == stored["map50_95_internal"] and not (tmp_path / "v" / "predictions.json").exists()
    assert "pycocotools is not installed: mAP is yolorep's internal estimate" in caplog.text
