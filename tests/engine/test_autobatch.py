"""AutoBatch (``--batch -1``): real training steps at a few batch sizes, a memory reading (mocked here: no GPU in
the tests), a straight line fitted through it, and the batch where it reaches 60% of the memory available."""

from __future__ import annotations

import logging

import pytest
import torch
import yaml
from helpers import TINY_HYP

import yolorep
from yolorep.engine.train.autobatch import CPU_BATCH, FRACTION, auto_batch, fit_batch
from yolorep.engine.train.setup import train
from yolorep.loss import DetectionLoss
from yolorep.options.hyp import load_hyp

pytestmark = pytest.mark.usefixtures("one_thread")
MIB = 1 << 20


class FakeMemory:
    """A device whose training step takes ``base + per_image * batch`` bytes, out of memory from ``oom_at`` images;
    the batch is read from the images the model really receives."""

    def __init__(self, model, available, base=50 * MIB, per_image=100 * MIB, oom_at=None):
        self.available_bytes, self.base, self.per_image, self.oom_at = available, base, per_image, oom_at
        self.seen: list[int] = []
        model.register_forward_pre_hook(lambda module, inputs: self.seen.append(inputs[0].shape[0]))

    def available(self):
        return self.available_bytes, 2 * self.available_bytes

    def peak(self, run):
        run()  # a real forward, loss and backward
        batch = self.seen[-1]
        if self.oom_at is not None and batch >= self.oom_at:
            raise torch.OutOfMemoryError("CUDA out of memory (fake)")
        return self.base + self.per_image * batch


def _model_and_loss():
    model = yolorep.build_model("yolorep-n.yaml", nc=2)
    return model, DetectionLoss.from_hyp(model.nc, model.reg_max, load_hyp())


OPTIONS = {"device": torch.device("cpu"), "amp_dtype": None, "max_objects": 3, "n_images": 1000}


def test_the_largest_batch_that_fits_a_share_of_the_memory():
    model, loss_fn = _model_and_loss()
    memory = FakeMemory(model, available=2048 * MIB)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    batch = auto_batch(model, loss_fn, 64, OPTIONS, memory=memory)
    assert memory.seen == [1, 2, 4, 8, 16]  # the sizes probed, each a real step of a copy of the model
    assert batch == int((FRACTION * 2048 - 50) / 100) == 11
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items()) and model.training


def test_a_batch_that_ran_out_of_memory_caps_the_fit():
    model, loss_fn = _model_and_loss()
    # the line would reach 60% of 4 GiB at 24 images, but 16 did not fit: the last size that did is taken
    assert auto_batch(model, loss_fn, 64, OPTIONS, memory=FakeMemory(model, 4096 * MIB, oom_at=16)) == 8
    assert auto_batch(model, loss_fn, 64, dict(OPTIONS, n_images=5), memory=FakeMemory(model, 4096 * MIB)) == 5


def test_fit_batch_uses_growing_readings_only():
    assert fit_batch([(1, 150), (2, 250), (4, 100), (8, 850)], available=10_000, fraction=0.5, n_images=100) == 49
    assert fit_batch([(1, 100), (2, None)], available=10_000, fraction=0.5, n_images=100) is None


def test_cpu_takes_the_nominal_batch_and_a_run_stores_what_it_took(tiny_shapes_yaml, tmp_path, caplog):
    model, loss_fn = _model_and_loss()
    with caplog.at_level(logging.INFO, logger="yolorep"):
        assert auto_batch(model, loss_fn, 64, OPTIONS) == CPU_BATCH == 16
    assert "AutoBatch: batch 16 on cpu (no peak-memory reading there" in caplog.text
    train(data=tiny_shapes_yaml, epochs=1, batch=-1, imgsz=64, device="cpu", workers=0, project=tmp_path, name="auto",
          hyp=dict(TINY_HYP))  # fmt: skip
    assert yaml.safe_load((tmp_path / "auto" / "args.yaml").read_text())["batch"] == 16  # resumed with it
    last = torch.load(tmp_path / "auto" / "weights" / "last.pt", weights_only=True)
    assert last["train_args"]["batch"] == 16
