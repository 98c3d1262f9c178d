"""The trainer is a loop calling hooks (issue 24): a policy is added as a hook without touching the loop, owns its
state across --resume, and a last.pt written before the split still resumes exactly."""

from __future__ import annotations

import copy
import csv
from pathlib import Path

import pytest
import torch
from helpers import TINY_HYP

from yolorep.engine.train.callbacks import EVENTS, Callbacks, user_hooks
from yolorep.engine.train.hooks import STAGES, Hook
from yolorep.engine.train.setup import train
from yolorep.errors import ArgumentError

pytestmark = pytest.mark.usefixtures("one_thread")
ASSETS = Path(__file__).parent / "assets"
# nbs 4 = the batch: an optimizer step after every one of the 3 batches of an epoch
# figures are not what these tests check, and they took a third of a tiny run
RUN = dict(model="yolorep-n.yaml", imgsz=64, batch=4, device="cpu", workers=0, hyp=dict(TINY_HYP, nbs=4), plots=False)
FORMAT_2_KEYS = {"model", "optimizer", "scheduler", "scaler", "ema_updates", "best_fitness", "best_epoch",
                 "epochs_without_improvement", "history", "elapsed", "cycles"}  # fmt: skip


class Killed(BaseException):
    """Stands in for SIGKILL."""


class StepCounter(Hook):
    """A policy of the test's own: counts optimizer steps and keeps the count in last.pt."""

    def __init__(self) -> None:
        self.steps = 0
        self.steps_at_start: int | None = None

    def on_train_start(self, trainer) -> None:
        self.steps_at_start = self.steps

    def on_optimizer_step(self, trainer) -> None:
        self.steps += 1

    def state_dict(self) -> dict:
        return {"optimizer_steps": self.steps}

    def load_state_dict(self, state: dict) -> None:
        self.steps = state["optimizer_steps"]


def _recorder() -> Hook:
    """A hook recording every stage it is called at, with the epoch."""

    def record(stage):
        return lambda self, trainer: self.seen.append((stage, trainer.epoch))

    recorder = type("Recorder", (Hook,), {stage: record(stage) for stage in STAGES})()
    recorder.seen = []
    return recorder


def test_a_new_policy_is_a_hook_that_keeps_its_state_across_resume(tiny_shapes_yaml, tmp_path):
    whole, recorder = StepCounter(), _recorder()
    train(data=tiny_shapes_yaml, epochs=2, project=tmp_path, name="whole", callbacks=[whole, recorder], **RUN)
    assert whole.steps == 6  # 2 epochs of 3 batches
    per_batch = ["on_train_batch_start", "on_optimizer_step", "on_train_batch_end"]
    epoch = ["on_train_epoch_start", *per_batch * 3, "on_train_epoch_end", "on_validate", "on_val_end", "on_review",
             "on_fit_epoch_end", "on_save", "on_model_save", "on_epoch_complete"]  # fmt: skip
    expected = [("on_train_start", -1), *((s, 0) for s in epoch), *((s, 1) for s in epoch), ("on_fit_end", 1),
                ("on_train_end", 1)]  # fmt: skip
    assert recorder.seen == expected

    def killed_after_first_epoch(trainer):
        raise Killed

    first = StepCounter()
    with pytest.raises(Killed):
        train(data=tiny_shapes_yaml, epochs=2, project=tmp_path, name="killed",
              callbacks=[first, Callbacks({"on_model_save": killed_after_first_epoch})], **RUN)  # fmt: skip
    last = tmp_path / "killed" / "weights" / "last.pt"
    saved = torch.load(last, weights_only=True)["train_state"]
    assert saved["optimizer_steps"] == first.steps == 3 and FORMAT_2_KEYS <= set(saved)
    resumed = StepCounter()
    train(resume=str(last), callbacks=resumed)
    assert (resumed.steps_at_start, resumed.steps) == (3, 6)
    ends = [torch.load(run / "weights" / "last.pt", weights_only=True) for run in (tmp_path / "whole", last.parents[1])]
    assert ends[0]["train_state"]["optimizer_steps"] == ends[1]["train_state"]["optimizer_steps"] == 6
    for key, value in ends[0]["state_dict"].items():
        torch.testing.assert_close(ends[1]["state_dict"][key], value, rtol=1e-5, atol=1e-6, msg=key)


def test_a_misspelt_stage_fails_when_the_hook_is_defined():
    with pytest.raises(TypeError, match="Late.on_epoch_end: no such stage; stages are on_train_start, "):

        class Late(Hook):
            def on_epoch_end(self, trainer): ...


def test_callbacks_accept_functions_by_event_or_hooks():
    counter = StepCounter()
    assert user_hooks(None) == [] and user_hooks(counter) == [counter] and user_hooks((counter,)) == [counter]
    (functions,) = user_hooks({"on_fit_end": print, "on_train_start": [print, print]})
    assert isinstance(functions, Callbacks) and set(EVENTS) < set(STAGES)
    with pytest.raises(ArgumentError, match="callback event 'on_epoch_end': unknown; events are on_train_start"):
        user_hooks({"on_epoch_end": [print]})
    with pytest.raises(ArgumentError, match="callbacks: <built-in function print> is not a hook; pass a dict"):
        user_hooks([counter, print])


def test_a_hook_cannot_take_another_ones_state_key(tiny_shapes_yaml, tmp_path):
    class Rows(Hook):
        def state_dict(self):
            return {"history": []}

    with pytest.raises(ArgumentError, match="Rows: its state key 'history' is kept by Results already; rename it"):
        train(data=tiny_shapes_yaml, epochs=1, project=tmp_path, callbacks=Rows(), **RUN)


def _assert_same(saved, restored, where="train_state"):
    if isinstance(saved, dict):
        assert saved.keys() == restored.keys(), where
        for key in saved:
            _assert_same(saved[key], restored[key], f"{where}.{key}")
    elif isinstance(saved, torch.Tensor):
        assert torch.equal(saved, restored), where
    else:
        assert saved == restored, where


def test_a_last_pt_of_the_trainer_before_hooks_resumes_exactly(tiny_shapes_yaml, tmp_path):
    """``assets/format2_resume.pt`` was written by the trainer before the split (make_format2_resume.py): a run
    of a tiny model stopped after its first epoch, and the same run's final weights uninterrupted."""
    asset = torch.load(ASSETS / "format2_resume.pt", weights_only=True)
    old = asset["last"]
    last = tmp_path / "run" / "weights" / "last.pt"
    last.parent.mkdir(parents=True)
    torch.save(old, last)
    with open(last.parent.parent / "results.csv", "w", newline="") as f:  # what the old run folder held
        writer = csv.DictWriter(f, fieldnames=list(asset["history"][0]))
        writer.writeheader()
        writer.writerows(asset["history"][:1])
    loaded = {}

    def restored(trainer):  # copied: training goes on in the same tensors
        loaded.update(copy.deepcopy({**trainer.state_dict(), "ema": trainer.ema.ema.state_dict()}))

    train(resume=str(last), data=str(tiny_shapes_yaml), callbacks={"on_train_start": restored})
    # everything last.pt held was restored (elapsed goes on from where it was)
    assert loaded["epoch"] == old["epoch"] == 0
    saved, state = old["train_state"], loaded["train_state"]
    assert state.pop("elapsed") >= saved["elapsed"]
    assert set(state) - set(saved) == {"optimizer_choice"}  # kept since (the optimizer a run was built with)
    _assert_same({k: v for k, v in saved.items() if k != "elapsed"}, {k: state[k] for k in saved if k != "elapsed"})
    _assert_same(old["state_dict"], loaded["ema"], "state_dict")
    # best.pt (epoch 0, never bettered) was restored from last.pt, as the old run had not written it
    best = torch.load(last.parent / "best.pt", weights_only=True)
    _assert_same({k: v for k, v in old.items() if k != "train_state"}, best, "best.pt")
    # the rest of the run trained as the uninterrupted one did (bit for bit on the machine that made the file;
    # the tolerance covers other CPUs' kernels), and last.pt keeps the keys older versions read
    end = torch.load(last, weights_only=True)
    assert end["epoch"] == 1 and FORMAT_2_KEYS <= set(end["train_state"])
    final = asset["final"]
    for mine, theirs in ((end["state_dict"], final["ema"]), (end["train_state"]["model"], final["model"])):
        for key, value in theirs.items():
            torch.testing.assert_close(mine[key], value, rtol=1e-4, atol=1e-6, msg=key)
    with open(tmp_path / "run" / "results.csv") as f:
        rows = list(csv.DictReader(f))
    for row, reference in zip(rows, asset["history"], strict=True):
        for key in ("epoch", "train/box_loss", "train/cls_loss", "train/dfl_loss", "val/box_loss"):
            assert float(row[key]) == pytest.approx(reference[key], rel=1e-4), key
    # the old trainer logged the rate after the scheduler's step, which the next epoch (without warm-up) trained at
    assert float(rows[1]["lr/pg0"]) == pytest.approx(asset["history"][0]["lr/pg0"], rel=1e-6)
