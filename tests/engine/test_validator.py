import json
import sys

import pytest
import torch

import yolorep
from yolorep.datasets.spec import load_data_spec
from yolorep.engine.val.validator import build_eval_loader, build_validator, default_eval_settings, val
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


def test_val_plots_off_writes_the_metrics_and_predictions_only(trained_tiny, tiny_shapes_yaml, tmp_path):
    metrics = val(weights=trained_tiny / "weights" / "best.pt", data=tiny_shapes_yaml, batch=4, workers=0,
                  project=tmp_path, name="quiet", plots=False)  # fmt: skip
    run = tmp_path / "quiet"
    assert json.loads((run / "metrics.json").read_text())["map50_95"] == pytest.approx(metrics["map50_95"])
    assert (run / "predictions.json").stat().st_size > 0
    assert not [p.name for p in run.iterdir() if p.suffix in (".png", ".jpg")]


def _decoded_outputs(model, loader) -> torch.Tensor:
    """Every decoded candidate of the evaluation batches: [images, anchors, 4 + nc] (boxes xyxy in input pixels)."""
    with torch.no_grad():
        return torch.cat([model.decode(model(images.float() / 255)) for images, _, _ in loader])


def _grid_clear_of(values: torch.Tensor, step: float) -> tuple[float, float]:
    """A grid (cell edges at ``(k + offset) * step``) whose edges lie as far as possible from every value; returns
    the offset and that distance. Snapping two runs to it gives bit-identical values wherever they differ by less
    than the distance."""
    phases = torch.sort(torch.frac(values.double().flatten() / step) % 1).values
    gaps = torch.diff(torch.cat([phases, phases[:1] + 1]))
    widest = int(gaps.argmax())
    return float((phases[widest] + gaps[widest] / 2) % 1), float(gaps[widest] / 2 * step)


class _Snapped(torch.nn.Module):
    """A model whose decoded boxes and scores are snapped to the centres of grid cells."""

    def __init__(self, model, box_grid: tuple[float, float], score_grid: tuple[float, float]):
        super().__init__()
        self.model, self.box_grid, self.score_grid = model, box_grid, score_grid

    @staticmethod
    def _snap(values: torch.Tensor, step: float, offset: float) -> torch.Tensor:
        return ((torch.floor(values.double() / step - offset) + 0.5 + offset) * step).to(values.dtype)

    def forward(self, x):
        raw = self.model.decode(self.model(x))
        boxes = self._snap(raw[..., :4], self.box_grid[0], self.box_grid[1])
        scores = self._snap(raw[..., 4:], self.score_grid[0], self.score_grid[1])
        return torch.cat([boxes, scores], -1)


def test_fused_and_unfused_models_score_the_same(trained_tiny, tiny_shapes_yaml):
    """What the fuse promises, on the validator's own batches: decoded outputs equal within float tolerance, and
    identical detections and metrics wherever scores are not tied.

    A barely trained model scores most anchors alike (the fixture's top score is about 0.002), so differences of
    1e-9 in a score can reorder two near-equal detections and move mAP (seen on AMX CPUs: 0.0083 vs 0.0042). The
    metric comparison therefore feeds both models through a grid snapped clear of every unfused value: wherever
    the fused model is within the grid's margin, both give bit-identical candidates, so any difference left in
    the metrics is a validator difference between fused and unfused models."""
    unfused = yolorep.load(trained_tiny / "weights" / "best.pt").eval()
    fused = fused_copy(unfused)
    dataset, loader = build_eval_loader(load_data_spec(tiny_shapes_yaml), "val", 64, 4, 32)
    reference, candidate = _decoded_outputs(unfused, loader), _decoded_outputs(fused, loader)
    box_difference = float((reference[..., :4] - candidate[..., :4]).abs().max())
    score_difference = float((reference[..., 4:] - candidate[..., 4:]).abs().max())
    assert box_difference <= 1e-3 and score_difference <= 1e-5, (box_difference, score_difference)

    box_offset, box_margin = _grid_clear_of(reference[..., :4], 1.0)  # 1 px cells
    score_offset, score_margin = _grid_clear_of(reference[..., 4:], 1e-3)
    assert box_difference < box_margin and score_difference < score_margin, "grid too fine for this fixture"
    grids = {"box_grid": (1.0, box_offset), "score_grid": (1e-3, score_offset)}
    settings = default_eval_settings()
    a = build_validator(dataset, loader, settings)(_Snapped(unfused, **grids))
    b = build_validator(dataset, loader, settings)(_Snapped(fused, **grids))
    assert a["source"] == "pycocotools" and a["images"] == len(dataset) > 0
    assert a["map50"] > 0, "the fixture finds nothing: the comparison would be vacuous"
    for key in ("map50_95", "map50", "map50_95_internal", "precision", "recall", "coco_stats"):
        assert a[key] == b[key], key
    assert not unfused.is_fused and fused.is_fused


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
