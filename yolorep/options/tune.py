"""``TuneOptions``: the hyperparameter search of ``yolorep tune`` (each trial's training takes ``TrainOptions``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from yolorep.options.fields import Options, at_least, option
from yolorep.options.hyp import Hyperparameters

__all__ = ["NOT_TUNE_OPTIONS", "TuneOptions", "search_space"]

NOT_TUNE_OPTIONS = ("resume", "exist_ok")  # training options a search sets itself (trials go to its own folder)


def _read_names(value: Any) -> tuple[str, ...]:
    names = value.replace(",", " ").split() if isinstance(value, str) else list(value or ())
    return tuple(str(name).strip() for name in names)


def _check_space(value: tuple[str, ...]) -> str | None:
    searchable = [f.name for f, spec in Hyperparameters.specs() if spec.search is not None]
    unknown = [name for name in value if name not in searchable]
    return f"{unknown[0]!r} has no search range; searchable: {', '.join(searchable)}" if unknown else None


def search_space(names: tuple[str, ...] = ()) -> dict[str, Any]:
    """The ``Search`` range of each hyperparameter named (all that declare one when ``names`` is empty), as declared
    beside its valid range in ``Hyperparameters``."""
    ranges = {f.name: spec.search for f, spec in Hyperparameters.specs() if spec.search is not None}
    return {name: ranges[name] for name in (names or ranges)}


@dataclass(frozen=True)
class TuneOptions(Options):
    """The options of ``yolorep tune`` / ``yolorep.engine.train.tune.tune`` besides the training options of every trial
    (``--data``, ``--model``, ``--time``, ``--imgsz``, ... and fixed hyperparameters such as ``--lr0``)."""

    command = "tune"

    trials: int = option(10, "trials in all (split across --processes)", check=at_least(1))
    processes: int = option(
        1, "trials run at once, each in its own process (--device 0,1 gives them GPUs in turn)", check=at_least(1)
    )
    storage: str | None = option(
        None,
        "Optuna storage shared by the processes: sqlite:///study.db (default: study.db in the tune folder), or a "
        "PostgreSQL URL that processes on several machines share",
    )
    study: str | None = option(None, "study name: the same name and storage continue a search (default: the folder's)")
    space: tuple[str, ...] = option(
        (),
        "hyperparameters searched (lr0,momentum,...; default: every one with a search range, yolorep/options/hyp.py)",
        convert=_read_names,
        check=_check_space,
    )
    sampler_seed: int = option(0, "seed of the Optuna sampler (TPE)", check=at_least(0))
    project: str = option("runs/tune", "parent folder of the search")
    name: str = option("exp", "search folder name; exp, exp2, ... are never overwritten")
