"""The options of a training run: defaults, checks at the boundary, and what ``--resume`` may change.

A run's options are a plain dict (stored in every checkpoint as ``train_args``), checked before any folder is
created, with paths resolved so that a run can be resumed from any working directory.
"""

from __future__ import annotations

import difflib
import logging
from pathlib import Path
from typing import Any

from yolorep.errors import ArgumentError, ConfigError, YolorepError
from yolorep.hyp import describe_hyp, load_hyp, read_hyp_overrides

__all__ = ["RESUME_MAY_CHANGE", "TRAIN_DEFAULTS", "cache_mode", "new_run_args", "resumed_run_args"]

LOGGER = logging.getLogger(__name__)

# What `yolorep train` does when a flag is left out (`yolorep train --help` shows the same; a test keeps them equal).
TRAIN_DEFAULTS: dict[str, Any] = {
    "model": "yolorep-n.yaml",
    "data": "shapes.yaml",
    "epochs": 100,
    "imgsz": 640,
    "batch": 16,
    "device": None,
    "workers": None,  # auto: see yolorep.engine.device.loader_workers
    "project": "runs/train",
    "name": "exp",
    "seed": 0,
    "optimizer": None,  # cfg/default.yaml's optimizer
    "weights": None,
    "sync_bn": False,
    "cache": "auto",  # decoded images in RAM: True, False, or auto (when they fit; see train_build.cache_images)
    "patience": 0,
    "time": None,  # hours: fit the schedule to this budget (then epochs is only a cap)
    "freeze": None,  # the first N layers, or a list of layer indices, kept at their initial weights
    "single_cls": False,
    "rect": False,
    "val_period": 1,  # validate every N epochs (and always the last)
}
_UNCAPPED_EPOCHS = 10_000  # the cap on a time-budgeted run when no --epochs is given
# A resumed run keeps its own settings; only where its data lives, where it runs and how images are held may change.
RESUME_MAY_CHANGE = ("data", "device", "workers", "cache")
_AT_LEAST = {"epochs": 1, "imgsz": 1, "batch": 1, "workers": 0, "patience": 0, "val_period": 1}
_OPTIMIZERS = ("auto", "SGD", "AdamW")


def cache_mode(value: bool | str) -> bool | str:
    """``--cache`` as ``True`` (keep decoded images in RAM), ``False`` (read them every epoch) or ``"auto"``.

    Accepts booleans and the words true/ram/yes/1, false/no/off/0 and auto, as ultralytics' ``cache=ram`` does.
    """
    if isinstance(value, bool):
        return value
    word = str(value).strip().lower()
    if word in ("auto", ""):
        return "auto"
    if word in ("true", "ram", "yes", "on", "1"):
        return True
    if word in ("false", "no", "off", "0"):
        return False
    raise ArgumentError(f"--cache {value!r}: use true (or ram), false or auto")


def _check_options(options: dict[str, Any]) -> None:
    for key, least in _AT_LEAST.items():
        value = options[key]
        if value is None and key == "workers":
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ArgumentError(f"--{key} {value!r}: must be an integer of at least {least}")
    if not isinstance(options["seed"], int):
        raise ArgumentError(f"--seed {options['seed']!r}: must be an integer")
    if options["optimizer"] is not None and options["optimizer"] not in _OPTIMIZERS:
        raise ArgumentError(f"--optimizer {options['optimizer']}: unknown; use one of {', '.join(_OPTIMIZERS)}")
    budget = options["time"]
    if budget is not None and (isinstance(budget, bool) or not isinstance(budget, (int, float)) or budget <= 0):
        raise ArgumentError(f"--time {budget!r}: must be a positive number of hours, e.g. 0.5")
    freeze = options["freeze"]
    ok = freeze is None or (isinstance(freeze, int) and not isinstance(freeze, bool) and freeze >= 0) or (
        isinstance(freeze, (list, tuple)) and all(isinstance(i, int) and i >= 0 for i in freeze)
    )  # fmt: skip
    if not ok:
        raise ArgumentError(f"--freeze {freeze!r}: give a number of layers (10) or layer indices (0,1,2)")


def _merge_hyp(hyp: str | Path | dict | None, overrides: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """cfg/default.yaml updated by a --hyp file or dict, then by single keys; returns it and the keys the user set."""
    defaults, meanings = load_hyp(), describe_hyp()
    unknown = sorted(set(overrides) - set(defaults))
    if unknown:
        close = difflib.get_close_matches(unknown[0], list(defaults), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ConfigError(f"unknown option {unknown[0]!r}; {hint}hyperparameters are the keys of cfg/default.yaml")
    from_file = read_hyp_overrides(hyp)
    merged = dict(defaults)
    for key, value in {**from_file, **overrides}.items():
        expected = type(defaults[key])
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
            raise ConfigError(f"{key}={value!r}: expected {expected.__name__} ({meanings.get(key, key)})")
        merged[key] = value
    return merged, sorted(set(from_file) | set(overrides))


def _resolved_data(data: str | Path) -> str:
    """An existing data YAML as an absolute path (so the run resumes and validates from any folder); a built-in
    name such as ``shapes.yaml`` as it is."""
    path = Path(data)
    return str(path.resolve()) if path.is_file() else str(data)


def new_run_args(given: dict[str, Any], hyp: str | Path | dict | None, hyp_overrides: dict[str, Any]) -> dict[str, Any]:
    """The options of a new run: defaults updated by what the caller gave, checked, hyperparameters merged."""
    unknown = sorted(set(given) - set(TRAIN_DEFAULTS))
    if unknown:
        raise ArgumentError(f"train: unknown option {unknown[0]!r}; options are {', '.join(TRAIN_DEFAULTS)}")
    options = {**TRAIN_DEFAULTS, **given}
    options["cache"] = cache_mode(options["cache"])
    if options["time"] is not None and "epochs" not in given:
        options["epochs"] = _UNCAPPED_EPOCHS
    if isinstance(options["freeze"], tuple):
        options["freeze"] = list(options["freeze"])
    _check_options(options)
    merged, set_by_user = _merge_hyp(hyp, hyp_overrides)
    options.update(data=_resolved_data(options["data"]), project=str(options["project"]), hyp=merged)
    options["hyp_set"] = set_by_user
    if options["optimizer"] is None:
        options["optimizer"] = merged["optimizer"]
    return options


def resumed_run_args(stored: dict[str, Any], given: dict[str, Any], where: Path) -> dict[str, Any]:
    """A resumed run's options: its own, with only ``RESUME_MAY_CHANGE`` replaced (with a notice); any other
    option the caller gave that differs from the run's is refused."""
    if "cache" in given:
        given = {**given, "cache": cache_mode(given["cache"])}
    changed = sorted(k for k, v in given.items() if k not in RESUME_MAY_CHANGE and v != stored.get(k))
    if changed:
        asked = ", ".join(f"--{k.replace('_', '-')} {given[k]} (the run has {stored.get(k)})" for k in changed)
        raise YolorepError(
            f"{where}: --resume continues a run with its own settings, but {asked} was given; only "
            f"{', '.join('--' + k for k in RESUME_MAY_CHANGE)} may change (start a new run for other settings)"
        )
    options = dict(stored)
    for key in RESUME_MAY_CHANGE:
        if key in given and given[key] != stored.get(key):
            LOGGER.info("resume: %s changed from %s to %s", key, stored.get(key), given[key])
            options[key] = _resolved_data(given[key]) if key == "data" else given[key]
    return options
