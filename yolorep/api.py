"""``YOLO``: one Python entry point for a model YAML or a checkpoint, with the commands as methods.

    from yolorep import YOLO

    model = YOLO("yolorep-n.yaml")                  # or YOLO("runs/train/exp/weights/best.pt")
    metrics = model.train(data="shapes.yaml", epochs=10, imgsz=320)
    print(metrics.map50_95, metrics.save_dir)
    for result in model.predict("image.jpg"):      # paths, folders, globs, videos, numpy, PIL, tensors, lists
        print(result.boxes.xyxy, result.boxes.conf, result.boxes.cls)
    for result in model.track("video.mp4", stream=True):  # identities across frames: result.boxes.id
        print(result.boxes.id, result.boxes.xyxy)
    model.export(format="onnx")

The methods call the same functions as the command line (``yolorep.engine``), print the same progress and
summaries (``verbose=False`` keeps only warnings) and return objects instead of dicts.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from yolorep.errors import YolorepError
from yolorep.logs import configure_logging

__all__ = ["YOLO", "Metrics"]

LOGGER = logging.getLogger(__name__)


class Metrics(Mapping):
    """What a validation measured: the pycocotools numbers of record as attributes (``map50_95``, ``map50``,
    ``map75``), the internal estimate, precision/recall, ``per_class``, ``coco_stats``, ``speed`` and ``save_dir``.
    It is also a read-only mapping of the ``metrics.json`` keys."""

    def __init__(self, figures: dict[str, Any]) -> None:
        self._figures = dict(figures)

    def __getitem__(self, key: str) -> Any:
        return self._figures[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._figures)

    def __len__(self) -> int:
        return len(self._figures)

    def __getattr__(self, name: str) -> Any:
        try:
            return self._figures[name]
        except KeyError:
            raise AttributeError(f"Metrics has no {name!r}; keys: {', '.join(self._figures)}") from None

    @property
    def speed(self) -> dict[str, float]:
        """Milliseconds per image: preprocess, inference, NMS."""
        return self._figures.get("speed_ms_per_image", {})

    def __repr__(self) -> str:
        shown = {k: self._figures[k] for k in ("source", "map50_95", "map50", "save_dir") if k in self._figures}
        return f"Metrics({shown})"


class YOLO:
    """A detector: built from a model YAML (random weights, to train) or loaded from a checkpoint.

    Args:
        model: a model YAML path or name (``yolorep-s.yaml``), a ``.pt`` checkpoint, or a ``DetectionModel``.
        verbose: print progress and summaries as the CLI does (a handler is attached only if the application
            configured no logging); False keeps only warnings; None (the default) reads ``$YOLOREP_VERBOSE``.
    """

    def __init__(self, model: Any = "yolorep-n.yaml", verbose: bool | None = None) -> None:
        from yolorep.engine.checkpoint import load_checkpoint
        from yolorep.nn.model import DetectionModel, build_model

        configure_logging(verbose)
        self.checkpoint: Path | None = None
        self.source = model
        if isinstance(model, DetectionModel):
            self.model = model
        elif Path(str(model)).suffix == ".pt":
            self.checkpoint = Path(model)
            self.model = load_checkpoint(model)
        else:
            self.model = build_model(model)

    @property
    def names(self) -> list[str]:
        return self.model.names

    def __repr__(self) -> str:
        state = "fused" if self.model.is_fused else "unfused"
        return f"YOLO({self.checkpoint or self.source!s}, {state}, {len(self.names)} classes)"

    def train(self, **kwargs: Any) -> Metrics:
        """Train (see ``yolorep.engine.train_setup.train`` for the options; any cfg/default.yaml key works too).

        From a YAML the model trains from scratch; from a checkpoint its weights seed the run. Afterwards this
        object holds the run's ``best.pt``.
        """
        from yolorep.engine.checkpoint import load_checkpoint
        from yolorep.engine.train_setup import train

        if "model" not in kwargs and "resume" not in kwargs:
            if self.checkpoint is None and not isinstance(self.source, (str, Path)):
                raise YolorepError("train: needs a model YAML or a checkpoint file; this model was given in memory")
            kwargs["model"] = str(self.checkpoint or self.source)
        results = train(**kwargs)
        self.checkpoint = Path(results["save_dir"]) / "weights" / "best.pt"
        self.model = load_checkpoint(self.checkpoint)
        return Metrics(results)

    def val(self, **kwargs: Any) -> Metrics:
        """Evaluate (fused) with pycocotools; ``data`` defaults to the data set the checkpoint was trained on."""
        from yolorep.engine.validator import val

        return Metrics(val(weights=self.checkpoint or self.model, **kwargs))

    def predict(self, source: Any, stream: bool = False, **kwargs: Any) -> list | Iterator:
        """Detect objects in ``source``; returns one ``Results`` per image or frame (a generator with ``stream``).

        ``kwargs`` are ``Detector``'s (``conf``, ``iou``, ``imgsz``, ``device``, ``classes``, ``max_det``, ``half``)
        and ``batch``, ``vid_stride``. Save with ``result.save(path)``, ``result.save_txt(path)``.
        """
        from yolorep.engine.predictor import Detector

        run_kwargs = {k: kwargs.pop(k) for k in ("batch", "vid_stride") if k in kwargs}
        detector = Detector(self.checkpoint or self.model, **kwargs)
        return detector.predict(source, stream=stream, **run_kwargs)

    __call__ = predict

    def track(
        self, source: Any, stream: bool = False, tracker: Any = "bytetrack.yaml", persist: bool = False, **kwargs: Any
    ) -> list | Iterator:
        """Detect and track objects in ``source``: one ``Results`` per frame whose ``boxes.id`` are identities kept
        across frames (ByteTrack or BoT-SORT: ``tracker="botsort.yaml"``, a YAML path or a mapping of its keys).

        ``kwargs`` are ``predict``'s (``conf`` defaults to 0.1: the tracker's thresholds decide which boxes make
        tracks). With ``persist=True`` the tracks (and the detector and tracker settings) of
        the previous call carry over, so frames fed one call at a time (``model.track(frame, persist=True)`` in a
        loop) keep their identities.
        """
        from yolorep.engine.predictor import Detector
        from yolorep.engine.tracking import ObjectTracker

        run_kwargs = {k: kwargs.pop(k) for k in ("batch", "vid_stride") if k in kwargs}
        kwargs.setdefault("conf", 0.1)
        session = getattr(self, "_tracking", None)
        if not persist or session is None:
            session = self._tracking = ObjectTracker(Detector(self.checkpoint or self.model, **kwargs), tracker)
        return session.track(source, stream=stream, persist=persist, **run_kwargs)

    def export(self, **kwargs: Any) -> Path:
        """Export the fused model (``format="onnx"`` or ``"torchscript"``) beside the checkpoint."""
        from yolorep.engine.deploy import export

        if self.checkpoint is None:
            raise YolorepError(
                "export: this model has no checkpoint file to export beside; train it, or save it first with "
                "yolorep.save(model.model, 'model.pt') and export YOLO('model.pt')"
            )
        return export(weights=str(self.checkpoint), **kwargs)

    def fuse(self) -> YOLO:
        """Fuse in place (for inference: the model then refuses training); returns self."""
        self.model.fuse()
        LOGGER.info("%s: %s", self.model.spec.name, self.model.fuse_report)
        return self

    def info(self, imgsz: int = 640) -> dict[str, Any]:
        """Layers, parameters and GFLOPs, unfused and fused."""
        from yolorep.engine.summary import info

        return info(self.model, imgsz=imgsz)

    def benchmark(self, **kwargs: Any) -> dict[str, Any]:
        """Fused vs unfused latency and agreement, side by side (see ``yolorep.benchmark.benchmark``)."""
        from yolorep.benchmark import benchmark

        if self.checkpoint is not None:
            return benchmark(weights=str(self.checkpoint), **kwargs)
        if isinstance(self.source, (str, Path)):
            return benchmark(model=str(self.source), **kwargs)
        raise YolorepError("benchmark: needs a model YAML or a checkpoint file; this model was given in memory")
