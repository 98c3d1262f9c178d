"""``YOLO``: one Python entry point for a model YAML, a checkpoint or an exported model, with the commands as methods.

    from yolorep import YOLO

    model = YOLO("yolorep-n.yaml")                  # or YOLO("runs/train/exp/weights/best.pt"), YOLO("best.onnx")
    metrics = model.train(data="shapes.yaml", epochs=10, imgsz=320)
    print(metrics.map50_95, metrics.box.map50, metrics.save_dir)
    for result in model.predict("image.jpg"):      # paths, folders, globs, videos, numpy, PIL, tensors, lists
        print(result.boxes.xyxy, result.boxes.conf, result.boxes.cls)
    for result in model.track("video.mp4", stream=True):  # identities across frames: result.boxes.id
        print(result.boxes.id, result.boxes.xyxy)
    model.export(format="onnx")

The methods call the same functions as the command line (``yolorep.engine``), print the same progress and
summaries (``verbose=False`` keeps only warnings) and return objects instead of dicts. ``predict`` keeps its
``Detector`` between calls, so a loop over frames loads and fuses the model once.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from yolorep.engine.val.metrics import Metrics
from yolorep.errors import YolorepError
from yolorep.logs import configure_logging

__all__ = ["YOLO", "Metrics"]

LOGGER = logging.getLogger(__name__)
EXPORT_SUFFIXES = (".onnx", ".torchscript", ".xml")  # and OpenVINO model folders


def is_exported(path: Path) -> bool:
    """Whether ``path`` names an exported model (ONNX, TorchScript, an OpenVINO folder or its ``.xml``)."""
    return path.suffix in EXPORT_SUFFIXES or path.is_dir()


class YOLO:
    """A detector: built from a model YAML (random weights, to train), loaded from a checkpoint, or an exported
    model (``.onnx``, ``.torchscript``, OpenVINO folder: for ``predict``, ``val`` and ``info``).

    Args:
        model: a model YAML path or name (``yolorep-s.yaml``), a ``.pt`` checkpoint, an exported model, or a
            ``DetectionModel``.
        verbose: print progress and summaries as the CLI does (a handler is attached only if the application
            configured no logging); False keeps only warnings; None (the default) reads ``$YOLOREP_VERBOSE``.

    Attributes:
        model: the ``DetectionModel`` (or, for an exported model, its ``Backend``).
        checkpoint: the ``.pt`` it was loaded from (after ``train``: the run's ``best.pt``), else None.
        exported: the exported model file or folder it was loaded from, else None.
        predictor: the ``Detector`` that ``predict`` keeps between calls (None before the first).
        trainer: the ``Trainer`` of the last ``train`` call (None before).
        task: ``"detect"``.
    """

    task = "detect"

    def __init__(self, model: Any = "yolorep-n.yaml", verbose: bool | None = None) -> None:
        from yolorep.engine.checkpoint import load_checkpoint
        from yolorep.engine.deploy import load_backend
        from yolorep.nn.model import DetectionModel, build_model

        configure_logging(verbose)
        self.checkpoint: Path | None = None
        self.exported: Path | None = None
        self.source = model
        self.predictor: Any = None
        self._predictor_key: tuple = ()
        self.trainer: Any = None
        if isinstance(model, DetectionModel):
            self.model = model
        elif Path(str(model)).suffix == ".pt":
            self.checkpoint = Path(model)
            self.model = load_checkpoint(model)
        elif is_exported(Path(str(model))):
            self.exported = Path(model)
            self.model = load_backend(self.exported)
        else:
            self.model = build_model(model)

    @property
    def names(self) -> list[str]:
        from yolorep.engine.predict.results import ClassNames

        return ClassNames(self.model.names)

    @property
    def ckpt_path(self) -> str | None:
        """The file this model was loaded from (a checkpoint or an exported model), as a string; None for a YAML
        or an in-memory model."""
        path = self.checkpoint or self.exported
        return None if path is None else str(path)

    def __repr__(self) -> str:
        if self.exported is not None:
            return f"YOLO({self.exported}, {self.model.format} {self.model.precision}, {len(self.names)} classes)"
        state = "fused" if self.model.is_fused else "unfused"
        return f"YOLO({self.checkpoint or self.source!s}, {state}, {len(self.names)} classes)"

    def _refuse_exported(self, command: str, fix: str) -> None:
        if self.exported is not None:
            raise YolorepError(
                f"{command}: {self.exported} is an exported {self.model.format} model, which cannot be {fix}"
            )

    def train(self, **kwargs: Any) -> Metrics:
        """Train (see ``yolorep.engine.train.setup.train`` for the options; any cfg/default.yaml key works too).

        From a YAML the model trains from scratch; from a checkpoint its weights seed the run. Afterwards this
        object holds the run's ``best.pt`` and ``trainer`` the run's ``Trainer``.
        """
        from yolorep.engine.checkpoint import load_checkpoint
        from yolorep.engine.train.callbacks import Callbacks
        from yolorep.engine.train.setup import train

        self._refuse_exported("train", "trained; train from the .pt checkpoint it was exported from, or a model YAML")
        if "model" not in kwargs and "resume" not in kwargs:
            if self.checkpoint is None and not isinstance(self.source, (str, Path)):
                raise YolorepError("train: needs a model YAML or a checkpoint file; this model was given in memory")
            kwargs["model"] = str(self.checkpoint or self.source)
        callbacks = kwargs.pop("callbacks", None)
        callbacks = callbacks if isinstance(callbacks, Callbacks) else Callbacks(callbacks)
        callbacks.add("on_train_start", self._keep_trainer)
        results = train(callbacks=callbacks, **kwargs)
        self.checkpoint = Path(results["save_dir"]) / "weights" / "best.pt"
        self.model = load_checkpoint(self.checkpoint)
        self.predictor = None
        return Metrics(results, self.names)

    def _keep_trainer(self, trainer: Any) -> None:
        self.trainer = trainer

    def val(self, **kwargs: Any) -> Metrics:
        """Evaluate (fused) with pycocotools; ``data`` defaults to the data set the checkpoint was trained on."""
        from yolorep.engine.val.validator import val

        weights = self.exported or self.checkpoint or self.model
        return Metrics(val(weights=str(weights) if isinstance(weights, Path) else weights, **kwargs), self.names)

    def predict(self, source: Any, stream: bool = False, **kwargs: Any) -> list | Iterator:
        """Detect objects in ``source``; returns one ``Results`` per image or frame (a generator with ``stream``).

        ``kwargs`` are the options of ``yolorep predict`` (``PredictOptions``): ``conf``, ``iou``, ``imgsz``,
        ``device``, ``half``, ``classes``, ``max_det``, ``agnostic_nms``, ``augment``, ``batch``, ``vid_stride``,
        ``verbose`` (a log line per image), and what to write: ``save`` (annotated images; off by default here),
        ``save_txt``, ``save_conf``, ``save_crop``, ``save_json``, ``show``, ``line_width``, ``project``,
        ``name``. Each call that writes files gets its own run folder (``result.save_dir``).

        The model is loaded and fused once and kept in ``predictor`` until ``device`` or ``half`` change.
        """
        from yolorep.engine.predict.writer import Outputs, PredictionWriter, written
        from yolorep.engine.run_dir import increment_run_dir
        from yolorep.options import PredictOptions

        shown = str(source) if isinstance(source, (str, Path)) else f"<{type(source).__name__}>"
        weights = self.exported or self.checkpoint or self.model
        o = PredictOptions.from_kwargs({"weights": weights, "source": shown, **kwargs})
        detector = self._detector(o)
        results = detector.predict(source, stream=stream, batch=o.batch, vid_stride=o.vid_stride, verbose=o.verbose)
        outputs = Outputs.of(o, media_by_default=False)
        if not (outputs.writes_files or outputs.show):
            return results
        run_dir = increment_run_dir(o.project, o.name) if outputs.writes_files else None
        results = written(iter(results), PredictionWriter(run_dir, outputs))
        return results if stream else list(results)

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
        from yolorep.engine.predict.predictor import Detector
        from yolorep.engine.predict.tracking import ObjectTracker

        run_kwargs = {k: kwargs.pop(k) for k in ("batch", "vid_stride") if k in kwargs}
        kwargs.setdefault("conf", 0.1)
        session = getattr(self, "_tracking", None)
        if not persist or session is None:
            session = self._tracking = ObjectTracker(Detector(self.checkpoint or self.model, **kwargs), tracker)
        return session.track(source, stream=stream, persist=persist, **run_kwargs)

    def _detector(self, options: Any) -> Any:
        """The kept ``Detector``, rebuilt when the model, ``device`` or ``half`` changed; set to ``options``."""
        from yolorep.engine.device import select_device
        from yolorep.engine.predict.predictor import Detector

        device = select_device(options.device)
        key = (id(self.model), self.checkpoint, str(device), options.half)
        if self.predictor is None or key != self._predictor_key:
            weights: Any = self.checkpoint or self.model
            if self.exported is not None:  # the backend loaded here, unless it must run elsewhere
                same = self.model.device == device and not options.half
                weights = self.model if same else str(self.exported)
            self.predictor = Detector(weights, device, options.imgsz, options.conf, options.iou, options.half)
            self._predictor_key = key
        return self.predictor.configure(options)

    def export(self, **kwargs: Any) -> Path:
        """Export the fused model (``format="onnx"``, ``"torchscript"`` or ``"openvino"``) beside the checkpoint."""
        from yolorep.engine.deploy import export

        self._refuse_exported("export", "exported again; export the .pt checkpoint it came from")
        if self.checkpoint is None:
            raise YolorepError(
                "export: this model has no checkpoint file to export beside; train it, or save it first with "
                "yolorep.save(model.model, 'model.pt') and export YOLO('model.pt')"
            )
        return export(weights=str(self.checkpoint), **kwargs)

    def fuse(self) -> YOLO:
        """Fuse in place (for inference: the model then refuses training); returns self. An exported model is
        fused already."""
        if self.exported is not None:
            LOGGER.info("%s: exported models are fused already", self.exported)
            return self
        self.model.fuse()
        LOGGER.info("%s: %s", self.model.spec.name, self.model.fuse_report)
        return self

    def info(self, imgsz: int = 640) -> dict[str, Any]:
        """Layers, parameters and GFLOPs, unfused and fused; for an exported model, what its metadata says."""
        from yolorep.engine.summary import info

        if self.exported is not None:
            backend = self.model
            figures = {"format": backend.format, "precision": backend.precision, "imgsz": backend.imgsz,
                       "batch": None if backend.dynamic else backend.batch, "dynamic": backend.dynamic,
                       "stride": backend.stride, "names": list(backend.names), "model": backend.info.model}  # fmt: skip
            LOGGER.info("%s: %s", self.exported, ", ".join(f"{k} {v}" for k, v in figures.items() if k != "names"))
            return figures
        return info(self.model, imgsz=imgsz)

    def benchmark(self, **kwargs: Any) -> dict[str, Any]:
        """Fused vs unfused latency and agreement, side by side (see ``yolorep.benchmark.benchmark``)."""
        from yolorep.benchmark import benchmark

        self._refuse_exported("benchmark", "unfused; benchmark the .pt it came from (formats='onnx,...' compares)")
        if self.checkpoint is not None:
            return benchmark(weights=str(self.checkpoint), **kwargs)
        if isinstance(self.source, (str, Path)):
            return benchmark(model=str(self.source), **kwargs)
        raise YolorepError("benchmark: needs a model YAML or a checkpoint file; this model was given in memory")
