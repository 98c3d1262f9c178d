"""Training callbacks: functions the trainer calls at fixed points, with the trainer as their only argument.

Events, in the order they happen::

    on_train_start                      once, before the first epoch (resumed runs included)
      on_train_epoch_start              each epoch, before its first batch
        on_train_batch_end              after each batch trained (and its optimizer step, when one was due)
      on_train_epoch_end                the epoch's batches are done (trainer.losses holds its mean losses)
      on_val_end                        the fused EMA model was validated (trainer.metrics)
      on_fit_epoch_end                  the epoch's results row is in trainer.state.history; before saving
      on_model_save                     last.pt (and best.pt when it improved) were written
    on_fit_end                          after the last epoch, before the final validation of best.pt
    on_train_end                        after the final validation (trainer.final_metrics), as ultralytics'

A callback may read anything on the trainer (``epoch``, ``state``, ``metrics``, ``losses``, ``schedule``,
``save_dir``, ``model``, ``ema``, ``optimizer``) and may set ``trainer.stop = True`` to end training after the
current epoch (an early-stopping rule). ``train(callbacks=...)`` also takes ``yolorep.engine.train.hooks.Hook`` objects,
which may act at every stage of the loop and keep state across ``--resume``; results.csv, results.png,
TensorBoard, validation and checkpoints are hooks too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Literal, get_args

from yolorep.engine.train.hooks import Hook
from yolorep.errors import ArgumentError

__all__ = ["EVENTS", "Callbacks", "Event", "user_hooks"]

Event = Literal[
    "on_train_start",
    "on_train_epoch_start",
    "on_train_batch_end",
    "on_train_epoch_end",
    "on_val_end",
    "on_fit_epoch_end",
    "on_model_save",
    "on_fit_end",
    "on_train_end",
]
EVENTS: tuple[Event, ...] = get_args(Event)
Callback = Callable[[Any], Any]  # called with the running yolorep.engine.train.trainer.Trainer


class Callbacks(Hook):
    """Functions by event, run as one hook; ``add`` checks the event name so that a typo fails at once."""

    def __init__(self, callbacks: dict[str, Callback | list[Callback]] | None = None) -> None:
        self._callbacks: dict[str, list[Callback]] = {event: [] for event in EVENTS}
        for event, functions in (callbacks or {}).items():
            for function in functions if isinstance(functions, (list, tuple)) else [functions]:
                self.add(event, function)

    def add(self, event: Event, callback: Callback) -> None:
        if event not in EVENTS:
            raise ArgumentError(f"callback event {event!r}: unknown; events are {', '.join(EVENTS)}")
        self._callbacks[event].append(callback)

    def run(self, event: Event, trainer: Any) -> None:
        for callback in self._callbacks[event]:
            callback(trainer)

    def on_train_start(self, trainer: Any) -> None:
        self.run("on_train_start", trainer)

    def on_train_epoch_start(self, trainer: Any) -> None:
        self.run("on_train_epoch_start", trainer)

    def on_train_batch_end(self, trainer: Any) -> None:
        self.run("on_train_batch_end", trainer)

    def on_train_epoch_end(self, trainer: Any) -> None:
        self.run("on_train_epoch_end", trainer)

    def on_val_end(self, trainer: Any) -> None:
        self.run("on_val_end", trainer)

    def on_fit_epoch_end(self, trainer: Any) -> None:
        self.run("on_fit_epoch_end", trainer)

    def on_model_save(self, trainer: Any) -> None:
        self.run("on_model_save", trainer)

    def on_fit_end(self, trainer: Any) -> None:
        self.run("on_fit_end", trainer)

    def on_train_end(self, trainer: Any) -> None:
        self.run("on_train_end", trainer)


def user_hooks(callbacks: dict[str, Callback | list[Callback]] | Hook | Iterable[Hook] | None) -> list[Hook]:
    """What ``train(callbacks=...)`` accepts, as hooks: a dict of events to functions, one ``Hook`` (a ``Callbacks``
    included) or several.

    Raises:
        ArgumentError: an unknown event, or something that is neither a dict nor hooks.
    """
    if callbacks is None:
        return []
    if isinstance(callbacks, dict):
        return [Callbacks(callbacks)]
    if isinstance(callbacks, Hook):
        return [callbacks]
    hooks = list(callbacks) if isinstance(callbacks, Iterable) and not isinstance(callbacks, str) else [callbacks]
    wrong = [h for h in hooks if not isinstance(h, Hook)]
    if wrong:
        raise ArgumentError(
            f"callbacks: {wrong[0]!r} is not a hook; pass a dict of events to functions ({{'on_fit_epoch_end': "
            "[fn]}}) or yolorep.engine.train.hooks.Hook objects"
        )
    return hooks
