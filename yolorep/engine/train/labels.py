"""``labels.jpg``: the statistics of the labels a run trains on, drawn once when it starts (ultralytics' file)."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from yolorep.engine.train.hooks import Hook

__all__ = ["LABELS_FILE", "LabelStatistics", "label_arrays"]

LOGGER = logging.getLogger(__name__)
LABELS_FILE = "labels.jpg"


def label_arrays(records: list[Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every box of ``records`` (``ImageRecord``s): ``(classes [N], boxes_xyxy [N, 4] pixels, image shapes [N, 2]
    (height, width))``, as ``plot_label_statistics`` takes them."""
    counts = [len(r.classes) for r in records]
    classes = np.concatenate([r.classes for r in records]) if records else np.zeros(0, np.int64)
    boxes = np.concatenate([r.boxes_xyxy for r in records]).reshape(-1, 4) if records else np.zeros((0, 4))
    shapes = np.repeat(np.array([r.shape for r in records]).reshape(-1, 2), counts, axis=0)
    return classes, boxes, shapes


class LabelStatistics(Hook):
    """Draws the training split's labels (classes, box positions, sizes and shapes) as ``labels.jpg`` when the run
    starts; a resumed run that has the file keeps it. One figure, once: its histograms are binned by numpy, so
    the cost hardly grows with the number of boxes."""

    def on_train_start(self, trainer: Any) -> None:
        path = trainer.save_dir / LABELS_FILE
        if path.exists():
            return
        from yolorep.label_plots import plot_label_statistics

        dataset = trainer.train_loader.dataset
        title = f"{dataset.spec.yaml_path.name}: {dataset.split}, {len(dataset.records)} images"
        plot_label_statistics(*label_arrays(dataset.records), dataset.names, path, title)
        LOGGER.debug("label statistics drawn to %s", path)
