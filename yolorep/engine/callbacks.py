"""Training callbacks: functions the trainer calls at fixed points, with the trainer as their only argument.

Events, in the order they happen::

    on_train_start                      once, before the first epoch (resumed runs included)
      on_train_epoch_start              each epoch, before its first batch
        on_train_batch_end              after each optimizer step (or skipped step)
      on_train_epoch_end                the epoch's batches are done (trainer.losses holds its mean losses)
      on_val_end                        the fused EMA model was validated (trainer.metrics)
      on_fit_epoch_end                  the epoch's results row is in trainer.state.history; before saving
      on_model_save                     last.pt (and best.pt when it improved) were written
    on_fit_end                          after the last epoch, before the final validation of best.pt

A callback may read anything on the trainer (``epoch``, ``state``, ``metrics``, ``losses``, ``schedule``,
``save_dir``, ``model``, ``ema``, ``optimizer``) and may set ``trainer.stop = True`` to end training after the
current epoch (an early-stopping rule). args.yaml, results.csv, results.png and TensorBoard are written by
callbacks too.
"""

from __future__ import annotations

import csv
import logging
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from yolorep.atomic import atomic_path
from yolorep.engine.resume import ARGS_FILE
from yolorep.errors import ArgumentError

__all__ = ["EVENTS", "Callbacks", "default_callbacks"]

LOGGER = logging.getLogger(__name__)
PLOT_SHARE = 0.005
EVENTS = (
    "on_train_start",
    "on_train_epoch_start",
    "on_train_batch_end",
    "on_train_epoch_end",
    "on_val_end",
    "on_fit_epoch_end",
    "on_model_save",
    "on_fit_end",
)
Callback = Callable[[Any], Any]  # called with the running yolorep.engine.trainer.Trainer


class Callbacks:
    """Callbacks by event; ``add`` checks the event name so that a typo fails at once."""

    def __init__(self, callbacks: dict[str, list[Callback]] | None = None) -> None:
        self._callbacks: dict[str, list[Callback]] = defaultdict(list)
        for event, functions in (callbacks or {}).items():
            for function in functions if isinstance(functions, (list, tuple)) else [functions]:
                self.add(event, function)

    def add(self, event: str, callback: Callback) -> None:
        if event not in EVENTS:
            raise ArgumentError(f"callback event {event!r}: unknown; events are {', '.join(EVENTS)}")
        self._callbacks[event].append(callback)

    def run(self, event: str, trainer: Any) -> None:
        for callback in self._callbacks.get(event, ()):
            callback(trainer)


class ResultsFiles:
    """args.yaml when training starts, results.csv after every epoch (every row so far, rewritten whole and
    atomically) and results.png.

    Drawing results.png costs about 2 s on a 2-core CPU, a tenth of an epoch on a 160-image set at 320 px, so it is
    redrawn only when that costs at most ``PLOT_SHARE`` of the time since it was last drawn (every epoch when
    epochs are long), after the first epoch, and always after the last one.
    """

    def __init__(self) -> None:
        self.drawn_at: float | None = None
        self.draw_seconds = 0.0
        self.rows_drawn = 0

    def start(self, trainer: Any) -> None:
        """Write ``args.yaml`` (which marks the folder as a run folder for ``--resume``); a resumed run also
        rewrites ``results.csv`` from the epochs ``last.pt`` holds (it may have been deleted or edited)."""
        with atomic_path(trainer.save_dir / ARGS_FILE) as tmp:
            tmp.write_text(yaml.safe_dump(trainer.train_args, sort_keys=False))
        if trainer.state.history:
            self._write_csv(trainer)

    def write(self, trainer: Any) -> None:
        self._write_csv(trainer)
        if self.drawn_at is None or (time.perf_counter() - self.drawn_at) * PLOT_SHARE >= self.draw_seconds:
            self.draw(trainer)

    def draw(self, trainer: Any) -> None:
        from yolorep.plots import plot_results_csv

        rows = len(trainer.state.history)
        if rows == self.rows_drawn:
            return
        start = time.perf_counter()
        plot_results_csv(self._csv(trainer), trainer.save_dir / "results.png")
        self.drawn_at = time.perf_counter()
        self.draw_seconds, self.rows_drawn = self.drawn_at - start, rows

    def _write_csv(self, trainer: Any) -> None:
        history = trainer.state.history
        with atomic_path(self._csv(trainer)) as tmp, open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(history[0]))
            writer.writeheader()
            writer.writerows(history)

    @staticmethod
    def _csv(trainer: Any) -> Path:
        return trainer.save_dir / "results.csv"


class TensorBoard:
    """Scalars of every results row to TensorBoard, when it is installed (``pip install tensorboard``)."""

    def __init__(self) -> None:
        self.writer: Any = None

    def start(self, trainer: Any) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # optional
            return
        self.writer = SummaryWriter(str(trainer.save_dir))

    def log(self, trainer: Any) -> None:
        if self.writer is not None:
            row = trainer.state.history[-1]
            for key, value in row.items():
                self.writer.add_scalar(key, value, row["epoch"])

    def close(self, trainer: Any) -> None:
        if self.writer is not None:
            self.writer.close()


def default_callbacks() -> Callbacks:
    """What every run writes on rank 0: args.yaml, results.csv and .png, and TensorBoard scalars."""
    tensorboard, results = TensorBoard(), ResultsFiles()
    return Callbacks(
        {
            "on_train_start": [results.start, tensorboard.start],
            "on_fit_epoch_end": [results.write, tensorboard.log],
            "on_fit_end": [results.draw, tensorboard.close],
        }
    )
