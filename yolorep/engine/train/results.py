"""Results of a training run as a policy: args.yaml, one row per epoch (``trainer.state.history``), results.csv,
results.png, the epoch's log line, and the first training batches drawn (train_batch*.jpg); experiment loggers
(TensorBoard, MLflow, W&B) are ``yolorep.engine.train.loggers``."""

from __future__ import annotations

import csv
import logging
import math
import time
from pathlib import Path
from typing import Any

import yaml

from yolorep.atomic import atomic_path
from yolorep.engine.train.hooks import Hook
from yolorep.engine.train.resume import ARGS_FILE

__all__ = ["Results", "ResultsFiles", "TrainBatchPlots"]

LOGGER = logging.getLogger(__name__)
PLOT_SHARE = 0.005
N_PLOTTED_BATCHES = 3
_NOT_VALIDATED = {"map50": math.nan, "map50_95": math.nan, "val_loss": [math.nan] * 3}


class ResultsFiles:
    """results.csv after every epoch (every row so far, rewritten whole and atomically) and results.png.

    Drawing results.png costs about 0.8 s on a 2-core CPU, a fourteenth of an epoch on a 160-image set at 320 px, so
    it is redrawn only when that costs at most ``PLOT_SHARE`` of the time since it was last drawn (every epoch when
    epochs are long), after the first epoch, and always after the last one.
    """

    def __init__(self, plots: bool = True) -> None:
        self.plots = plots
        self.drawn_at: float | None = None
        self.draw_seconds = 0.0
        self.rows_drawn = 0

    def write(self, trainer: Any) -> None:
        self.write_csv(trainer)
        if self.drawn_at is None or (time.perf_counter() - self.drawn_at) * PLOT_SHARE >= self.draw_seconds:
            self.draw(trainer)

    def draw(self, trainer: Any) -> None:
        from yolorep.plots import plot_results_csv

        rows = len(trainer.state.history)
        if not self.plots or rows == self.rows_drawn:
            return
        start = time.perf_counter()
        plot_results_csv(self._csv(trainer), trainer.save_dir / "results.png")
        self.drawn_at = time.perf_counter()
        self.draw_seconds, self.rows_drawn = self.drawn_at - start, rows

    def write_csv(self, trainer: Any) -> None:
        history = trainer.state.history
        with atomic_path(self._csv(trainer)) as tmp, open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(history[0]))
            writer.writeheader()
            writer.writerows(history)

    @staticmethod
    def _csv(trainer: Any) -> Path:
        return trainer.save_dir / "results.csv"


class Results(Hook):
    """The run's options as args.yaml (which marks the folder as a run folder for ``--resume``), and the results
    row of every epoch (losses, validation metrics or NaN, speed, times, learning rates), kept as ``history`` (it
    travels in last.pt), written to results.csv/.png, and logged.

    Args:
        train_args: the run's stored options (``TrainOptions.to_train_args()``).
        plots: draw results.png (results.csv is written either way).
    """

    def __init__(self, train_args: dict[str, Any], plots: bool = True) -> None:
        self.train_args = train_args
        self.history: list[dict[str, float]] = []
        self.files = ResultsFiles(plots)

    def on_train_start(self, trainer: Any) -> None:
        with atomic_path(trainer.save_dir / ARGS_FILE) as tmp:
            tmp.write_text(yaml.safe_dump(self.train_args, sort_keys=False))
        if self.history:  # resumed: results.csv again from what last.pt holds (it may have been deleted or edited)
            self.files.write_csv(trainer)

    def on_fit_epoch_end(self, trainer: Any) -> None:
        self.history.append(results_row(trainer))
        self.files.write(trainer)

    def on_epoch_complete(self, trainer: Any) -> None:
        row, validated = self.history[-1], trainer.this_epoch.validated
        LOGGER.info(
            "epoch %d/%d: mAP50-95 %.4f mAP50 %.4f (%s), %.1f img/s, %.1fs",
            row["epoch"], trainer.epochs, row["metrics/mAP50-95(est)"], row["metrics/mAP50(est)"],
            "fused EMA model, " + trainer.metrics.get("source", "no validator") if validated else "not validated",
            row["train_images_per_s"], row["train_time_s"],
        )  # fmt: skip

    def on_fit_end(self, trainer: Any) -> None:
        self.files.draw(trainer)

    def state_dict(self) -> dict[str, Any]:
        return {"history": self.history}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.history = list(state["history"])


def results_row(trainer: Any) -> dict[str, float]:
    """The results.csv row of the epoch ``trainer`` just trained (and validated, or not)."""
    stats = trainer.this_epoch
    box, cls, dfl = trainer.losses.tolist()
    metrics = trainer.metrics if stats.validated else _NOT_VALIDATED
    row = {"epoch": trainer.epoch + 1, "train/box_loss": box, "train/cls_loss": cls, "train/dfl_loss": dfl}
    row.update({f"val/{k}_loss": v for k, v in zip(("box", "cls", "dfl"), metrics.get("val_loss") or [])})
    row.update({
        "metrics/precision": metrics.get("precision", math.nan),
        "metrics/recall": metrics.get("recall", math.nan),
        "metrics/mAP50(est)": metrics["map50"],
        "metrics/mAP50-95(est)": metrics["map50_95"],
        "train_images_per_s": stats.images / max(stats.train_seconds, 1e-9),
        "train_time_s": stats.train_seconds,
        "val_time_s": stats.val_seconds,
        "epoch_time_s": stats.train_seconds + stats.val_seconds,
    })  # fmt: skip
    row.update({f"lr/pg{i}": lr for i, lr in enumerate(stats.lr)})  # as used by the epoch's last batch
    return row


class TrainBatchPlots(Hook):
    """The first ``N_PLOTTED_BATCHES`` training batches of the run, with their labels, as train_batch*.jpg."""

    def on_train_batch_start(self, trainer: Any) -> None:
        if trainer.epoch != 0 or trainer.batch.index >= N_PLOTTED_BATCHES:
            return
        from yolorep.plots import plot_training_batch

        with trainer.timer("plots"):
            path = trainer.save_dir / f"train_batch{trainer.batch.index}.jpg"
            plot_training_batch(trainer.batch.images, trainer.batch.targets, trainer.raw_model.names, path)
