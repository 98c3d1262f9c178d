"""``TrainOptions``: every option of a training run, declared once (``yolorep train --help`` is generated from it).

A run's options are checked before any folder is created and stored in every checkpoint (``train_args``), with
paths resolved so that ``--resume`` works from any folder; a resumed run keeps them, except the ones declared
``resume=True`` (where the data lives, where it runs, how images are held).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from yolorep.errors import YolorepError
from yolorep.options.fields import Options, at_least, between, greater_than, option, read_bool, unknown_option
from yolorep.options.hyp import Hyperparameters, resolve_hyp

__all__ = ["LOGGERS", "MAX_IMGSZ", "UNCAPPED_EPOCHS", "TrainOptions", "read_cache_mode", "read_layers", "read_loggers"]

LOGGER = logging.getLogger(__name__)
MAX_IMGSZ = 8192  # larger inputs only fail later, allocating tens of GB
UNCAPPED_EPOCHS = 10_000  # the cap on a time-budgeted run when no --epochs is given
_MAX_LAYERS = 10_000


def read_cache_mode(value: Any) -> bool | str:
    """``--cache`` as ``True`` (keep decoded images in RAM), ``False`` (read them every epoch), ``"auto"`` or
    ``"disk"`` (decoded images as .npy files); also the words true/ram/yes/1, false/no/off/0, as ultralytics'
    ``cache=ram``."""
    if isinstance(value, bool):
        return value
    word = str(value).strip().lower()
    if word in ("auto", ""):
        return "auto"
    if word in ("ram", "disk"):
        return True if word == "ram" else "disk"
    try:
        return read_bool(word)
    except ValueError:
        raise ValueError("expected true, false, auto or disk") from None


def _check_batch(value: int) -> str | None:
    return None if value == -1 or value >= 1 else "must be an integer of at least 1, or -1 for AutoBatch"


def read_multi_scale(value: Any) -> float:
    """``true`` -> 0.5 (sizes 0.5-1.5x imgsz, ultralytics' former ``multi_scale=True``), ``false`` -> 0, or the
    range as a number."""
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "yes", "no", "on", "off"):
        value = read_bool(value)
    if isinstance(value, bool):
        return 0.5 if value else 0.0
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError("expected true, false or a fraction such as 0.5") from None


LOGGERS = ("tensorboard", "mlflow", "wandb")


def read_loggers(value: Any) -> tuple[str, ...]:
    """``mlflow,wandb`` or a list -> ``("mlflow", "wandb")``; ``none`` (or an empty value) -> no logger."""
    if isinstance(value, str):
        names = value.replace(",", " ").split()
    elif isinstance(value, (list, tuple)) or value is None:
        names = list(value or ())
    else:
        raise ValueError("logger names: mlflow,wandb, a list of them, or none")
    names = [str(name).strip().lower() for name in names]
    return () if names in ([], ["none"]) else tuple(dict.fromkeys(names))


def _check_loggers(value: tuple[str, ...]) -> str | None:
    unknown = [name for name in value if name not in LOGGERS]
    return f"unknown logger {unknown[0]!r}; use any of {', '.join(LOGGERS)}, or none" if unknown else None


def read_layers(value: Any) -> int | tuple[int, ...]:
    """``10`` -> 10 (the first ten layers); ``0,1,2`` or ``[0, 1, 2]`` -> (0, 1, 2)."""
    expected = "a number of layers (10) or layer indices (0,1,2)"
    if isinstance(value, str):
        try:
            values = [int(v) for v in value.replace(",", " ").split()]
        except ValueError:
            raise ValueError(expected) from None
        value = values if "," in value or len(values) != 1 else values[0]
    if isinstance(value, (list, tuple)):
        if not all(isinstance(i, int) and not isinstance(i, bool) for i in value):
            raise ValueError(expected)
        return tuple(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise ValueError(expected)


def _check_layers(value: int | tuple[int, ...]) -> str | None:
    indices = value if isinstance(value, tuple) else (value,)
    if any(i < 0 or i > _MAX_LAYERS for i in indices):
        return f"layer counts and indices must be between 0 and {_MAX_LAYERS}"
    return None


def _read_resume(value: Any) -> bool | str:
    if isinstance(value, (str, Path)) and str(value).lower() not in ("true", "false", "1", "0", "yes", "no"):
        return str(value)
    return read_bool(value)


def _read_hyp(value: Any) -> Hyperparameters:
    if isinstance(value, Hyperparameters):
        return value
    if isinstance(value, Mapping):
        return Hyperparameters.from_kwargs(value)
    raise ValueError("expected hyperparameters")


def _read_model_source(value: Any) -> str | dict[str, Any]:
    """A model YAML or checkpoint path as a string, or a model config mapping (as ``build_model`` takes)."""
    if isinstance(value, (str, Path)):
        return str(value)
    if isinstance(value, Mapping):
        return dict(value)
    raise ValueError("expected a model YAML, a .pt checkpoint or a model config mapping")


def _check_seed(value: int) -> str | None:
    return None if 0 <= value < 2**32 else "must be an integer from 0 to 4294967295"


@dataclass(frozen=True)
class TrainOptions(Options):
    """The options of ``yolorep train`` / ``yolorep.engine.train.setup.train`` (hyperparameters in ``hyp``)."""

    command = "train"

    model: Any = option("yolorep-n.yaml", "model YAML; yolorep-s.yaml selects scale s", convert=_read_model_source)
    data: str = option("shapes.yaml", "dataset YAML (built-in: shapes.yaml, coco.yaml)", resume=True)
    epochs: int = option(100, "training epochs", check=at_least(1))
    imgsz: int = option(640, "training image size in pixels, a multiple of 32", check=between(1, MAX_IMGSZ))
    batch: int = option(
        16,
        "total batch size (split across DDP ranks); -1: the largest that fits the GPU's memory (AutoBatch)",
        check=_check_batch,
    )
    device: str | None = option(None, "cpu, cuda, 0, 0,1 ... (default: the first GPU if any, else cpu)", resume=True)
    workers: int | None = option(
        None,
        "data loader worker processes (default: on a CPU the cores torch's threads leave free, on a GPU up to 8)",
        check=at_least(0),
        resume=True,
    )
    weights: str | None = option(None, "initial weights: an unfused .pt such as a previous last.pt")
    hyp: Hyperparameters = option(
        Hyperparameters(),
        "hyperparameter YAML overriding cfg/default.yaml",
        convert=_read_hyp,
        parse=str,
        metavar="HYP",
    )
    resume: bool | str = option(
        False,
        "continue a run exactly: its last.pt, or without a path the newest run's",
        convert=_read_resume,
        metavar="LAST_PT",
        stored=False,
    )
    seed: int = option(0, "random seed (data order, augmentation, initial weights)", check=_check_seed)
    sync_bn: bool = option(False, "SyncBatchNorm across DDP processes (CUDA)")
    cache: bool | str = option(
        "auto",
        "keep decoded, resized images in RAM: true (alone: --cache), false, or auto: when they take at most a "
        "quarter of the free memory and 4 GB; disk: decoded images as .npy files beside them (or in the user "
        "cache folder)",
        convert=read_cache_mode,
        metavar="{true,false,auto,disk}",
        resume=True,
    )
    patience: int = option(0, "stop after this many epochs without improvement; 0: off", check=at_least(0))
    time: float | None = option(
        None,
        "hours: fit the schedule (epochs, LR decay, mosaic closing) to this budget, final validation included; "
        "--epochs then only caps it",
        check=greater_than(0, 10_000),
    )
    freeze: int | tuple[int, ...] | None = option(
        None, "keep the first N layers (10) or these (0,1,2) fixed", convert=read_layers, check=_check_layers
    )
    single_cls: bool = option(False, "train every object as one class, 'object'")
    rect: bool = option(False, "rectangular batches (no mosaic or affine, no shuffling)")
    val_period: int = option(1, "validate every N epochs (and always the last)", check=at_least(1))
    project: str = option("runs/train", "parent folder of the run")
    name: str = option("exp", "run name; exp, exp2, ... are never overwritten")
    exist_ok: bool = option(False, "train in project/name even if it exists (instead of making name2, name3 ...)")
    save_period: int = option(0, "also keep weights/epochN.pt every N epochs; 0 or -1: off", check=at_least(-1))
    plots: bool = option(
        True,
        "draw the run's figures: labels.jpg, train_batch*.jpg, results.png and the final validation's curves, "
        "confusion matrix and sample images (results.csv, metrics.json and predictions.json are written either way)",
        resume=True,
    )
    fraction: float = option(
        1.0, "train on this share of the training images, drawn at random with --seed", check=greater_than(0, 1)
    )
    multi_scale: float = option(
        0.0,
        "random image size per batch, imgsz x (1 +- this) in stride multiples; alone: 0.5",
        convert=read_multi_scale,
        check=between(0, 1, high_open=True),
        const=True,
    )
    loggers: tuple[str, ...] = option(
        ("tensorboard",),
        "experiment loggers (mlflow,wandb): tensorboard (the default: used when installed), mlflow, wandb (each "
        "an optional extra); none: no logger",
        convert=read_loggers,
        check=_check_loggers,
        resume=True,
    )
    hyp_set: tuple[str, ...] = option((), "hyperparameters the user set", convert=tuple, cli=False)

    @classmethod
    def create(cls, kwargs: Mapping[str, Any]) -> TrainOptions:
        """A new run's options from keyword arguments or CLI flags: run options, ``hyp`` (a YAML file, mapping or
        ``Hyperparameters``) and single hyperparameters (``lr0=0.002``); ``None`` means the default. The data YAML
        is stored as an absolute path, and a time budget without ``epochs`` is capped at ``UNCAPPED_EPOCHS``."""
        run_keys = [f.name for f, spec in cls.specs() if spec.cli]
        hyp_keys = [f.name for f, _ in Hyperparameters.specs()]
        for key in kwargs:
            if key not in run_keys and key not in hyp_keys:
                raise unknown_option(cls.command, key, run_keys + hyp_keys)
        given = {k: v for k, v in kwargs.items() if v is not None}
        overrides = {k: given.pop(k) for k in list(given) if k in hyp_keys and k not in run_keys}
        hyp, hyp_set = resolve_hyp(given.pop("hyp", None), overrides)
        options = cls.from_kwargs({**given, "hyp": hyp, "hyp_set": hyp_set})
        if options.time is not None and "epochs" not in given:
            options = options.replace(epochs=UNCAPPED_EPOCHS)
        return options.replace(data=_resolved_data(options.data))

    @classmethod
    def from_stored(cls, stored: Mapping[str, Any]) -> TrainOptions:
        """The options a checkpoint stores (``train_args``), from any yolorep version: keys added since are
        defaults, the optimizer of older files moves into ``hyp``."""
        values = {k: v for k, v in stored.items() if k in {f.name for f, _ in cls.specs()}}
        hyp = dict(stored.get("hyp") or {})
        if stored.get("optimizer") is not None:  # format 2 stored the chosen optimizer beside hyp
            hyp["optimizer"] = stored["optimizer"]
        return cls.from_kwargs({**values, "hyp": Hyperparameters.from_kwargs(hyp)})

    def resumed(self, given: Mapping[str, Any], where: str | Path) -> TrainOptions:
        """These (stored) options with what ``--resume`` may change replaced by ``given`` (with a notice); any other
        option given that differs from the run's is refused."""
        hyp_keys = {f.name for f, _ in Hyperparameters.specs()}
        if given.get("hyp") is not None or hyp_keys & {k for k, v in given.items() if v is not None}:
            raise YolorepError(f"{where}: --resume keeps the run's hyperparameters; start a new run to change them")
        asked = TrainOptions.from_kwargs({k: v for k, v in given.items() if k != "resume"})
        may_change = [f.name for f, spec in self.specs() if spec.resume]
        changed = sorted(
            k for k, v in given.items() if v is not None and k not in (*may_change, "resume", "project")
            and getattr(asked, k) != getattr(self, k)
        )  # fmt: skip
        if changed:
            shown = ", ".join(f"--{k.replace('_', '-')} {given[k]} (the run has {getattr(self, k)})" for k in changed)
            raise YolorepError(
                f"{where}: --resume continues a run with its own settings, but {shown} was given; only "
                f"{', '.join('--' + k for k in may_change)} may change (start a new run for other settings)"
            )
        updates = {}
        for key in may_change:
            value = getattr(asked, key)
            if given.get(key) is not None and value != getattr(self, key):
                value = _resolved_data(value) if key == "data" else value
                LOGGER.info("resume: %s changed from %s to %s", key, getattr(self, key), value)
                updates[key] = value
        return self.replace(**updates)

    def to_train_args(self) -> dict[str, Any]:
        """What checkpoints store as ``train_args`` (``optimizer`` also at the top level, as format 2 wrote it)."""
        return {**self.to_dict(), "optimizer": self.hyp.optimizer}


def _resolved_data(data: str) -> str:
    """An existing data YAML as an absolute path (so the run resumes and validates from any folder); a built-in
    name such as ``shapes.yaml`` as it is."""
    path = Path(data)
    return str(path.resolve()) if path.is_file() else str(data)
