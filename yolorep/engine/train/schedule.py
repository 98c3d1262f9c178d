"""The training schedule: how many epochs, the learning-rate curve over them, warm-up, when mosaic closes and how
long the EMA warms up; with a time budget, fitted to it from the measured epoch times and re-fitted after every
epoch.

A ``Schedule`` is the ``LambdaLR`` factor function itself, so its plain fields travel in the scheduler's state
dict and a resumed run continues the same plan.
"""

from __future__ import annotations

import logging
import math

__all__ = ["Schedule"]

LOGGER = logging.getLogger(__name__)


class Schedule:
    """Epochs, learning-rate factor, warm-up and mosaic closing of one run.

    Args:
        epochs: epochs to train; with ``time_budget`` the most the plan may reach.
        lrf: final learning rate as a fraction of the initial one.
        cosine: cosine instead of linear decay.
        warmup_epochs: epochs of warm-up asked for (at most a third of the planned epochs is applied).
        close_mosaic: epochs at the end without mosaic asked for (at most a third of the planned epochs: a short
            run would otherwise never see a mosaic).
        time_budget: seconds for the whole fit, final validation included; None trains ``epochs`` epochs.
    """

    def __init__(
        self,
        epochs: int,
        lrf: float,
        cosine: bool = False,
        warmup_epochs: float = 3.0,
        close_mosaic: int = 10,
        time_budget: float | None = None,
    ) -> None:
        self.epochs = self.max_epochs = int(epochs)
        self.lrf, self.cosine = float(lrf), bool(cosine)
        self.warmup_asked, self.close_mosaic_asked = float(warmup_epochs), int(close_mosaic)
        self.time_budget = None if time_budget is None else float(time_budget)
        self.fitted = time_budget is None  # a budget's epochs are known once the first epoch has been timed

    def __call__(self, epoch: int) -> float:
        """Learning-rate factor of ``epoch``: 1 at the start, ``lrf`` at the last planned epoch's end."""
        progress = min(epoch / max(self.epochs, 1), 1.0)
        if self.cosine:
            return ((1 - math.cos(progress * math.pi)) / 2) * (self.lrf - 1) + 1
        return (1 - progress) * (1.0 - self.lrf) + self.lrf

    @property
    def warmup_epochs(self) -> float:
        return min(self.warmup_asked, self.epochs / 3)

    @property
    def close_mosaic(self) -> int:
        return min(self.close_mosaic_asked, self.epochs // 3)

    def ema_tau(self, asked: float, updates_per_epoch: int) -> float:
        """EMA warm-up in updates: ``asked``, or less in a short plan, so that the average at the end spans about
        a tenth of the planned updates instead of following the weights step by step.

        The decay ``d_max * (1 - exp(-updates / tau))`` averages over about ``exp(updates / tau)`` updates while
        that is well under ``1 / (1 - d_max)``; with 1,400 planned updates the asked 2,000 would leave it at two.
        """
        planned = max(self.epochs * updates_per_epoch, 1)
        return min(float(asked), planned / max(math.log(planned / 10), 1.0))

    def mosaic_closed(self, epoch: int) -> bool:
        return epoch >= self.epochs - self.close_mosaic

    def describe(self) -> str:
        """What the plan applies, e.g. ``12 epochs, warm-up 3.0 epochs, mosaic off for the last 4``."""
        if not self.fitted:
            return (
                f"epochs fitted to the {self.time_budget:.0f}s budget from the first epoch's time (at most "
                f"{self.max_epochs}), warm-up {self.warmup_asked:g} and mosaic off for the last "
                f"{self.close_mosaic_asked} epochs, each at most a third of them"
            )
        capped = " (a third of the epochs at most)" if self.close_mosaic < self.close_mosaic_asked else ""
        return (
            f"{self.epochs} epochs, warm-up {self.warmup_epochs:g} epochs, mosaic off for the last "
            f"{self.close_mosaic}{capped}"
        )

    def refit(self, done: int, elapsed: float, epoch_seconds: list[float], final_seconds: float) -> None:
        """Re-plan the epochs to end inside the time budget (no-op without one).

        Args:
            done: epochs completed.
            elapsed: seconds the fit has taken so far.
            epoch_seconds: measured duration of each completed epoch (training, validation, saving).
            final_seconds: estimated duration of the final validation that follows the last epoch.
        """
        if self.time_budget is None or not epoch_seconds:
            return
        # The first epoch carries one-off costs (first results.png, allocator and loader warm-up): once later
        # epochs are measured it no longer sets the pace, or a slow first epoch would end the run at half its budget.
        steady = epoch_seconds[1:] or epoch_seconds
        recent = sorted(steady[-3:])  # the newest epochs reflect the machine's current speed
        per_epoch = recent[len(recent) // 2]  # the median, or of two the longer
        spread = recent[-1] - per_epoch  # room for the next epoch to be as slow as the slowest recent one
        more = math.floor((self.time_budget - elapsed - final_seconds - spread) / per_epoch)
        planned = max(done, min(self.max_epochs, done + max(more, 0)))
        if planned != self.epochs:
            LOGGER.info(
                "time budget %.0fs: %.0fs used, %.1fs per epoch measured, final validation ~%.0fs -> %s",
                self.time_budget, elapsed, per_epoch, final_seconds, f"{planned} epochs in all",
            )  # fmt: skip
        self.epochs, self.fitted = planned, True
