"""``Metrics``: what a validation measured, as ``YOLO.val`` and ``YOLO.train`` return it: the ``metrics.json`` keys,
and ultralytics' names for detection (``metrics.box.map``, ``results_dict``, ``fitness`` ...)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["BoxMetrics", "Metrics"]


class BoxMetrics:
    """ultralytics' ``metrics.box`` (its ``Metric``) read from a validation's figures.

    The means (``map``, ``map50``, ``map75``) are the numbers of record: pycocotools' when it scored the run, else
    the internal estimate. Per-class figures (``ap``, ``ap50``, ``p``, ``r``, ``f1``, ``maps``) come from the internal
    metrics, which mirror COCOeval, for the classes with ground truth (``ap_class_index``); ``p`` and ``r`` are read
    at the confidence that maximises the mean F1, as ultralytics does. ultralytics' ``all_ap`` (AP at each IoU
    threshold per class) is not kept.
    """

    def __init__(self, figures: Mapping[str, Any], nc: int) -> None:
        self._figures = figures
        per_class = figures.get("per_class") or []
        self.nc = nc
        self.ap_class_index = [int(row["class"]) for row in per_class]
        self.p = np.array([row["precision"] for row in per_class], dtype=float)
        self.r = np.array([row["recall"] for row in per_class], dtype=float)
        self.f1 = 2 * self.p * self.r / np.maximum(self.p + self.r, 1e-16)
        self.ap50 = np.array([row["map50"] for row in per_class], dtype=float)
        self.ap = np.array([row["map50_95"] for row in per_class], dtype=float)

    @property
    def map(self) -> float:
        """mAP at IoU 0.50:0.95."""
        return float(self._figures["map50_95"])

    @property
    def map50(self) -> float:
        return float(self._figures["map50"])

    @property
    def map75(self) -> float:
        return float(self._figures["map75"])

    @property
    def mp(self) -> float:
        """Mean precision over the classes with ground truth."""
        return float(self._figures.get("precision", 0.0))

    @property
    def mr(self) -> float:
        """Mean recall over the classes with ground truth."""
        return float(self._figures.get("recall", 0.0))

    @property
    def maps(self) -> np.ndarray:
        """[nc] mAP50-95 of each class; a class without ground truth gets the overall ``map``, as in ultralytics."""
        maps = np.full(self.nc, self.map)
        maps[self.ap_class_index] = self.ap
        return maps

    def mean_results(self) -> list[float]:
        """``[mp, mr, map50, map]``."""
        return [self.mp, self.mr, self.map50, self.map]

    def class_result(self, i: int) -> tuple[float, float, float, float]:
        """``(p, r, ap50, ap)`` of the ``i``-th class with ground truth (``ap_class_index[i]``)."""
        return float(self.p[i]), float(self.r[i]), float(self.ap50[i]), float(self.ap[i])

    def fitness(self) -> float:
        """What training calls best (``yolorep.engine.train.trainer.fitness``: 0.9 mAP50-95 + 0.1 mAP50; ultralytics 8.4
        uses mAP50-95 alone)."""
        from yolorep.engine.train.best import fitness

        return fitness(self._figures)


class Metrics(Mapping):
    """What a validation measured: the pycocotools numbers of record as attributes (``map50_95``, ``map50``,
    ``map75``), the internal estimate, precision/recall, ``per_class``, ``coco_stats``, ``speed`` and ``save_dir``.
    It is also a read-only mapping of the ``metrics.json`` keys.

    ultralytics' names work too: ``box`` (``box.map``, ``box.map50``, ``box.maps`` ...; see ``BoxMetrics``),
    ``results_dict``, ``fitness``, ``maps``, ``mean_results()``, ``names``.
    """

    def __init__(self, figures: dict[str, Any], names: Sequence[str] | None = None) -> None:
        self._figures = dict(figures)
        if names is None:
            names = [""] * (1 + max((row["class"] for row in self._figures.get("per_class") or []), default=-1))
        self.names = dict(enumerate(names))
        self.box = BoxMetrics(self._figures, len(self.names))

    def __getitem__(self, key: str) -> Any:
        return self._figures[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._figures)

    def __len__(self) -> int:
        return len(self._figures)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self._figures[name]
        except KeyError:
            raise AttributeError(f"Metrics has no {name!r}; keys: {', '.join(self._figures)}") from None

    @property
    def speed(self) -> dict[str, float]:
        """Milliseconds per image: preprocess, inference, nms (also under ultralytics' name, postprocess)."""
        speed = dict(self._figures.get("speed_ms_per_image", {}))
        if "nms" in speed:
            speed["postprocess"] = speed["nms"]
        return speed

    @property
    def fitness(self) -> float:
        return self.box.fitness()

    @property
    def maps(self) -> np.ndarray:
        return self.box.maps

    def mean_results(self) -> list[float]:
        return self.box.mean_results()

    @property
    def results_dict(self) -> dict[str, float]:
        """ultralytics' keys: ``metrics/precision(B)``, ``metrics/recall(B)``, ``metrics/mAP50(B)``,
        ``metrics/mAP50-95(B)`` and ``fitness``."""
        keys = ("metrics/precision(B)", "metrics/recall(B)", "metrics/mAP50(B)", "metrics/mAP50-95(B)")
        return {**dict(zip(keys, self.mean_results())), "fitness": self.fitness}

    def __repr__(self) -> str:
        shown = {k: self._figures[k] for k in ("source", "map50_95", "map50", "save_dir") if k in self._figures}
        return f"Metrics({shown})"
