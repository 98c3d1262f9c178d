"""Which folder ``--resume PATH`` continues: only the run folder that training made around its ``weights/last.pt``.

Resuming writes into that folder (``results.csv``, plots, ``weights/``) and removes the temporaries of its
interrupted writes, so a ``last.pt`` copied anywhere else must not make the folder around it a run folder.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from yolorep.errors import CheckpointError

__all__ = ["ARGS_FILE", "run_folder_of"]

ARGS_FILE = "args.yaml"  # written into every run folder when training starts: it marks the folder as a run


def run_folder_of(last: Path, checkpoint: dict[str, Any]) -> Path:
    """The run folder of ``last`` (``<run>/weights/last.pt``), checked to be a yolorep run folder: it holds
    ``args.yaml``, or (runs from before args.yaml was written) a ``results.csv`` listing the epochs ``last.pt``
    holds.

    Raises:
        CheckpointError: ``last`` is not the ``weights/last.pt`` of a run folder.
    """
    last = last.resolve()
    fix = f"resume from the weights/last.pt in its run folder, or start a new run from these weights: --weights {last}"
    if last.name != "last.pt" or last.parent.name != "weights":
        raise CheckpointError(f"{last}: --resume takes the weights/last.pt of a run folder; {fix}")
    run = last.parent.parent
    if not (run / ARGS_FILE).is_file() and not _lists_epochs(run / "results.csv", checkpoint):
        raise CheckpointError(
            f"{run}: not a yolorep run folder (no {ARGS_FILE}, and no results.csv listing the epochs of "
            f"{last.name}), so --resume will not write into it; {fix}"
        )
    return run


def _lists_epochs(results_csv: Path, checkpoint: dict[str, Any]) -> bool:
    """``results.csv`` has an ``epoch`` column starting with the epochs of the checkpoint's history (a run killed
    between the two writes has one row more)."""
    history = checkpoint.get("train_state", {}).get("history")
    if not isinstance(history, list) or not history:
        return False
    try:
        with open(results_csv, newline="") as f:
            listed = [float(row["epoch"]) for row in csv.DictReader(f)]
        expected = [float(row["epoch"]) for row in history]
    except (OSError, KeyError, TypeError, ValueError, csv.Error, UnicodeDecodeError):
        return False
    return listed[: len(expected)] == expected and len(listed) <= len(expected) + 1
