"""Hooks: everything a training run does besides the loop, as objects the trainer calls at fixed stages.

``Trainer.fit`` (``yolorep.engine.train.trainer``) calls, for each stage, that method of every hook in the order they
were given (the run's own policies first, then the user's), with the trainer as the only argument::

    on_train_start                  once, before the first epoch (resumed runs included)
    each epoch (seeded from the run's seed and the epoch):
      on_train_epoch_start          EMA warm-up fitted to the plan, mosaic closing
      each batch:
        on_train_batch_start        trainer.batch holds the loader's batch (train_batch*.jpg)
        forward, loss, backward
        on_optimizer_step           after each optimizer step (the EMA); none for an accumulated or skipped batch
        on_train_batch_end
      on_train_epoch_end            trainer.losses holds the epoch's mean losses
      rank 0 only:
        on_validate                 validate when due: sets trainer.metrics and trainer.this_epoch.validated
        on_val_end                  only when it validated
        on_review                   every epoch: keep the best, stop early (trainer.stop), re-plan a time budget
        (on_validate to on_review run once more when the plan now ends at an epoch not validated: the last epoch
        of a run is always validated)
        on_fit_epoch_end            the epoch's results row is in trainer.state.history; results.csv
        on_save                     last.pt, then best.pt
        on_model_save
      on_epoch_complete             every rank, the epoch's last stage
    on_fit_end                      after the last epoch, before the final validation of best.pt
    on_train_end                    rank 0, after the final validation (trainer.final_metrics, the run's plots)

A hook owns its state: what ``state_dict()`` returns is stored in ``last.pt`` (its keys beside the trainer's own
in ``train_state``, so keys are unique across hooks) and handed back to ``load_state_dict()`` on ``--resume``.
Adding a policy is a new ``Hook`` subclass and one line where the run's hooks are listed
(``_run_hooks`` in ``yolorep.engine.train.build``); the loop does not change.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from yolorep.errors import ArgumentError

__all__ = ["STAGES", "Hook", "check_state_keys", "stage_methods"]

STAGES = (
    "on_train_start",
    "on_train_epoch_start",
    "on_train_batch_start",
    "on_optimizer_step",
    "on_train_batch_end",
    "on_train_epoch_end",
    "on_validate",
    "on_val_end",
    "on_review",
    "on_fit_epoch_end",
    "on_save",
    "on_model_save",
    "on_epoch_complete",
    "on_fit_end",
    "on_train_end",
)


class Hook:
    """One training policy. Override the stages it acts at (see the module docstring) and, when it keeps state a
    resumed run needs, ``state_dict`` and ``load_state_dict``.

    A method named ``on_...`` that is no stage is refused when the class is defined, so a misspelt stage fails at
    once instead of never being called.
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        unknown = [name for name in vars(cls) if name.startswith("on_") and name not in STAGES]
        if unknown:
            raise TypeError(f"{cls.__qualname__}.{unknown[0]}: no such stage; stages are {', '.join(STAGES)}")

    def state_dict(self) -> dict[str, Any]:
        """What a resumed run needs of this hook: plain values (numbers, strings, lists, dicts, tensors), under
        keys no other hook uses."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from the keys of ``state_dict`` that the checkpoint holds (an older one may lack some)."""

    def on_train_start(self, trainer: Any) -> None: ...

    def on_train_epoch_start(self, trainer: Any) -> None: ...

    def on_train_batch_start(self, trainer: Any) -> None: ...

    def on_optimizer_step(self, trainer: Any) -> None: ...

    def on_train_batch_end(self, trainer: Any) -> None: ...

    def on_train_epoch_end(self, trainer: Any) -> None: ...

    def on_validate(self, trainer: Any) -> None: ...

    def on_val_end(self, trainer: Any) -> None: ...

    def on_review(self, trainer: Any) -> None: ...

    def on_fit_epoch_end(self, trainer: Any) -> None: ...

    def on_save(self, trainer: Any) -> None: ...

    def on_model_save(self, trainer: Any) -> None: ...

    def on_epoch_complete(self, trainer: Any) -> None: ...

    def on_fit_end(self, trainer: Any) -> None: ...

    def on_train_end(self, trainer: Any) -> None: ...


def stage_methods(hooks: Sequence[Hook]) -> dict[str, list[Callable[[Any], None]]]:
    """For each stage, the bound methods of the hooks that override it, in the hooks' order (the loop then calls
    no empty methods, several per batch)."""
    return {
        stage: [getattr(hook, stage) for hook in hooks if getattr(type(hook), stage) is not getattr(Hook, stage)]
        for stage in STAGES
    }


def check_state_keys(hooks: Sequence[Hook], reserved: Sequence[str]) -> None:
    """Every key of the resume record has one owner: the trainer (``reserved``) or a single hook.

    Raises:
        ArgumentError: a hook's ``state_dict`` uses a key taken already.
    """
    owners = dict.fromkeys(reserved, "the trainer")
    for hook in hooks:
        for key in hook.state_dict():
            if key in owners:
                raise ArgumentError(
                    f"{type(hook).__name__}: its state key {key!r} is kept by {owners[key]} already; rename it"
                )
            owners[key] = type(hook).__name__
