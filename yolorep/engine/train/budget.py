"""The time budget as a training policy: what each epoch costs, measured, and the plan re-fitted to it.

Without a budget ``Schedule.refit`` changes nothing, but the clock still runs: ``elapsed`` and the epochs' costs
(``cycles``) travel in ``last.pt``, so a resumed run knows what it has spent.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from yolorep.engine.train.hooks import Hook

__all__ = ["TimeBudget"]


class TimeBudget(Hook):
    """Measure every epoch from its start to its last checkpoint write and re-fit the plan after each one.

    An epoch costs its training and validation and what follows them (results, checkpoints), the latter estimated
    from earlier epochs when the plan is re-fitted; the end of training costs about two validations (the final one
    loads best.pt and plots), a checkpoint write and the slowest results stage (results.png is drawn once more).

    Args:
        started: ``time.perf_counter()`` when the run started (the budget counts setup too).
    """

    def __init__(self, started: float) -> None:
        self.started = started
        self.elapsed_before = 0.0  # seconds of fitting by earlier processes of a resumed run
        self.cycles: list[float] = []  # wall seconds of each epoch: training to saving
        # what epochs of this process spent after validation (results, then checkpoints); the first one draws
        # results.png for the first time, the later ones rarely (ResultsFiles), so they set the pace
        self.after_val_seconds: list[float] = []
        self.checkpoint_seconds = 0.0  # the last checkpoint write
        self.val_seconds = 0.0  # the last validation
        self.slowest_results = 0.0  # the slowest results stage (results.png is redrawn at the end too)
        self.reviewed = self.saving = 0.0  # when this epoch's review and its checkpoint writes began
        self.estimate = 0.0  # this epoch's cost as estimated at its review

    def elapsed(self) -> float:
        """Seconds of fitting so far, earlier processes of a resumed run included."""
        return self.elapsed_before + time.perf_counter() - self.started

    def on_review(self, trainer: Any) -> None:
        self.val_seconds = trainer.this_epoch.val_seconds or self.val_seconds
        self.reviewed = time.perf_counter()
        later = self.after_val_seconds[1:]
        after_val = statistics.median(later) if later else self.checkpoint_seconds
        self.estimate = self.reviewed - trainer.this_epoch.started + after_val
        ending = 2 * (self.val_seconds + self.checkpoint_seconds) + self.slowest_results
        trainer.schedule.refit(trainer.epoch + 1, self.elapsed(), [*self.cycles, self.estimate], ending)

    def on_save(self, trainer: Any) -> None:
        self.saving = time.perf_counter()
        self.slowest_results = max(self.slowest_results, self.saving - self.reviewed)
        self.cycles.append(self.estimate)  # last.pt carries the estimate; replaced by the measurement below

    def on_epoch_complete(self, trainer: Any) -> None:
        saved = time.perf_counter()
        self.checkpoint_seconds = saved - self.saving
        self.after_val_seconds.append(saved - self.reviewed)
        self.cycles[-1] = saved - trainer.this_epoch.started

    def state_dict(self) -> dict[str, Any]:
        return {"elapsed": self.elapsed(), "cycles": self.cycles}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.elapsed_before = float(state.get("elapsed", 0.0))
        self.cycles = [float(s) for s in state.get("cycles", [])]
