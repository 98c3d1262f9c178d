"""labels.jpg: the training labels' statistics, drawn once per run."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np

from yolorep.datasets.targets import ImageRecord
from yolorep.engine.train.labels import LABELS_FILE, LabelStatistics, label_arrays
from yolorep.label_plots import plot_label_statistics


def _record(shape, boxes, classes) -> ImageRecord:
    return ImageRecord(Path("x.jpg"), 0, shape, np.array(boxes, np.float32).reshape(-1, 4), np.array(classes, np.int64))


def test_label_arrays_pair_each_box_with_its_image_shape():
    records = [_record((40, 60), [[0, 0, 10, 20], [5, 5, 15, 15]], [1, 0]), _record((30, 30), [], []),
               _record((80, 20), [[1, 2, 3, 4]], [2])]  # fmt: skip
    classes, boxes, shapes = label_arrays(records)
    assert classes.tolist() == [1, 0, 2]
    assert boxes.tolist() == [[0, 0, 10, 20], [5, 5, 15, 15], [1, 2, 3, 4]]
    assert shapes.tolist() == [[40, 60], [40, 60], [80, 20]]
    empty = label_arrays([_record((30, 30), [], [])])
    assert [a.shape for a in empty] == [(0,), (0, 4), (0, 2)]


def _ink(path: Path) -> float:
    image = cv2.imread(str(path))
    assert image is not None, path
    return float((image < 200).any(axis=2).mean())


def test_plot_label_statistics(tmp_path):
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 200, (300, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(2, 100, (300, 2))], axis=1)
    classes = rng.integers(0, 3, 300)
    shapes = np.tile([300, 400], (300, 1))
    drawn = _ink(plot_label_statistics(classes, boxes, shapes, ["a", "b", "c"], tmp_path / "labels.jpg", "t"))
    empty = _ink(plot_label_statistics(np.zeros(0), np.zeros((0, 4)), np.zeros((0, 2)), ["a"], tmp_path / "e.png"))
    assert drawn > 2 * empty > 0  # five panels of histograms against five "no boxes"


def test_hook_draws_once_and_a_resumed_run_keeps_the_file(tmp_path):
    dataset = SimpleNamespace(
        records=[_record((40, 60), [[0, 0, 10, 20]], [0])], names=("cat",), split="train",
        spec=SimpleNamespace(yaml_path=Path("data.yaml")),
    )  # fmt: skip
    trainer = SimpleNamespace(save_dir=tmp_path, train_loader=SimpleNamespace(dataset=dataset))
    LabelStatistics().on_train_start(trainer)
    first = (tmp_path / LABELS_FILE).stat()
    LabelStatistics().on_train_start(trainer)
    assert (tmp_path / LABELS_FILE).stat().st_mtime_ns == first.st_mtime_ns


def test_training_writes_labels_jpg(trained_tiny):
    assert _ink(trained_tiny / LABELS_FILE) > 0.01
