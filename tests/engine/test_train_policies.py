"""Training as an ultralytics user expects it (issue 26): the optimizer a time budget allows, the learning rates
logged as used, Ctrl-C that says how to resume, periodic checkpoints, reused run folders, a fraction of the data,
multi-scale batches."""

from __future__ import annotations

import csv
import logging
import shutil

import pytest
import torch
from helpers import TINY_HYP

import yolorep
from yolorep.cli import main
from yolorep.datasets.spec import load_data_spec
from yolorep.engine.train.hooks import Hook
from yolorep.engine.train.multiscale import MultiScale
from yolorep.engine.train.phases import PhaseTimer
from yolorep.engine.train.schedule import Schedule
from yolorep.engine.train.setup import train
from yolorep.engine.train.trainer import Batch, LoopSettings, Trainer

pytestmark = pytest.mark.usefixtures("one_thread")
# figures are not what these tests check, and they took a third of a tiny run
RUN = dict(model="yolorep-n.yaml", imgsz=64, batch=4, device="cpu", workers=0, plots=False)
FLAGS = ["--imgsz", "64", "--batch", "4", "--device", "cpu", "--workers", "0", "--warmup-epochs", "0",
         "--close-mosaic", "0", "--mosaic", "0"]  # fmt: skip


def _rows(run):
    with open(run / "results.csv") as f:
        return list(csv.DictReader(f))


def test_ctrl_c_says_how_to_resume(tiny_shapes_yaml, tmp_path, monkeypatch, caplog):
    trained = Trainer._train_one_epoch

    def interrupted_in_second_epoch(self, epoch):
        if epoch == 1:
            raise KeyboardInterrupt
        return trained(self, epoch)

    monkeypatch.setattr(Trainer, "_train_one_epoch", interrupted_in_second_epoch)
    argv = ["train", "--data", str(tiny_shapes_yaml), "--epochs", "3", "--project", str(tmp_path), *FLAGS]
    with caplog.at_level(logging.ERROR, logger="yolorep"):
        assert main(argv) == 130
    last = tmp_path / "exp" / "weights" / "last.pt"
    assert last.is_file() and f"interrupted; continue with: yolorep train --resume {last}" in caplog.text
    monkeypatch.setattr(Trainer, "_train_one_epoch", trained)
    assert main(["train", "--resume", str(last)]) == 0 and len(_rows(tmp_path / "exp")) == 3
    assert torch.load(last, weights_only=True)["epoch"] == 2


def test_logged_learning_rates_are_the_ones_used(tiny_shapes_yaml, tmp_path):
    """3 batches an epoch, 2 epochs: warm-up takes a third of the plan, 2 batches; the groups are (BatchNorm weights,
    conv weights, biases), the biases' rate falls from warmup_bias_lr to lr0 while the others rise from 0."""
    train(data=tiny_shapes_yaml, epochs=2, project=tmp_path, name="lr", optimizer="SGD", lr0=0.01,
          hyp=dict(TINY_HYP, warmup_epochs=1.0), **RUN)  # fmt: skip
    first, second = ({k: float(v) for k, v in row.items() if k.startswith("lr/")} for row in _rows(tmp_path / "lr"))
    # epoch 1 ended on its warm-up's last step (1 of 0..2): halfway from the start values to lr0 * factor(0) = lr0
    assert first == pytest.approx({"lr/pg0": 0.005, "lr/pg1": 0.005, "lr/pg2": 0.1 + (0.01 - 0.1) / 2})
    linear = 1 - 1 / 2 * (1 - 0.01)  # epoch 2 trains at lr0 * factor(1) of the linear decay to lrf
    assert second == pytest.approx(dict.fromkeys(("lr/pg0", "lr/pg1", "lr/pg2"), 0.01 * linear))


def test_adamw_biases_warm_up_from_zero_like_its_other_weights(tiny_shapes_yaml, tmp_path):
    """AdamW moves each weight by about its learning rate a step: biases starting at warmup_bias_lr (0.1, 50x lr0)
    wrecked a pretrained head within an epoch, so only SGD's biases start there."""
    train(data=tiny_shapes_yaml, epochs=2, project=tmp_path, name="lr", optimizer="AdamW", lr0=0.002,
          hyp=dict(TINY_HYP, warmup_epochs=1.0), **RUN)  # fmt: skip
    first = {k: float(v) for k, v in _rows(tmp_path / "lr")[0].items() if k.startswith("lr/")}
    assert first == pytest.approx(dict.fromkeys(("lr/pg0", "lr/pg1", "lr/pg2"), 0.001))  # halfway from 0 to lr0


def _optimizer_of(last):
    """(name, lr0) of the optimizer a last.pt's run trained with, read from the optimizer's own state."""
    group = torch.load(last, weights_only=True)["train_state"]["optimizer"]["param_groups"][0]
    return ("AdamW" if "betas" in group else "SGD"), group["initial_lr"]


def test_a_time_budget_picks_the_optimizer_of_the_epochs_it_allows(tiny_shapes_yaml, tmp_path):
    """3 updates an epoch (12 images, nbs 4): sized on the 10,000-epoch cap, auto picked SGD for a few seconds."""
    hyp = dict(TINY_HYP, nbs=4)
    for name, epochs in (("uncapped", None), ("capped", 500)):  # the budget, not the cap, limits both plans
        train(data=tiny_shapes_yaml, time=4 / 3600, epochs=epochs, project=tmp_path, name=name, hyp=hyp, **RUN)
    uncapped, capped = (_optimizer_of(tmp_path / name / "weights" / "last.pt") for name in ("uncapped", "capped"))
    nc = len(yolorep.load(tmp_path / "capped" / "weights" / "best.pt").names)
    assert uncapped == capped == pytest.approx(("AdamW", round(0.002 * 5 / (4 + nc), 6)))


def test_a_long_budget_switches_to_sgd_after_the_first_epoch(tiny_shapes_yaml, tmp_path, monkeypatch, caplog):
    def long_plan(self, done, *_):  # the first epoch's time fits 4,000 epochs (12,000 updates) into the budget
        self.epochs, self.fitted = 4000, True

    monkeypatch.setattr(Schedule, "refit", long_plan)
    stop_after_two = {"on_fit_epoch_end": [lambda trainer: setattr(trainer, "stop", trainer.epoch >= 1)]}
    with caplog.at_level(logging.INFO, logger="yolorep"):
        train(data=tiny_shapes_yaml, time=1.0, project=tmp_path, name="long", hyp=dict(TINY_HYP, nbs=4),
              callbacks=stop_after_two, **RUN)  # fmt: skip
    last = tmp_path / "long" / "weights" / "last.pt"
    assert _optimizer_of(last) == ("SGD", 0.01)
    assert "optimizer auto: SGD lr0=0.01 from epoch 2 for the 4000 epochs (12000 updates)" in caplog.text
    rows = _rows(tmp_path / "long")
    assert float(rows[1]["lr/pg0"]) == pytest.approx(0.01 * (1 - 1 / 4000 * 0.99))  # SGD's lr0 on the same plan
    # a resumed run builds the optimizer it had (the state of an SGD fits no AdamW)
    train(resume=str(last), callbacks={"on_fit_epoch_end": [lambda trainer: setattr(trainer, "stop", True)]})
    assert _optimizer_of(last) == ("SGD", 0.01) and len(_rows(tmp_path / "long")) == 3


def test_cache_disk_trains_on_the_same_pixels(tiny_shapes_yaml, tmp_path, caplog):
    """--cache disk writes each image decoded beside it once and trains on exactly what decoding gives."""
    load_data_spec(tiny_shapes_yaml)  # generates the set; copied so the shared one stays without .npy files
    shutil.copytree(tiny_shapes_yaml.parent / "shapes", tmp_path / "data" / "shapes")
    data = tmp_path / "data" / "shapes.yaml"
    shutil.copy(tiny_shapes_yaml, data)
    options = dict(data=data, epochs=1, project=tmp_path, hyp=dict(TINY_HYP, mosaic=0.5), **RUN)
    with caplog.at_level(logging.INFO, logger="yolorep"):
        on_disk = train(name="disk", cache="disk", **options)
    images = sorted((tmp_path / "data" / "shapes" / "images").rglob("*.jpg"))
    assert len(images) == 18 and sorted(p.with_suffix("") for p in images[0].parent.parent.rglob("*.npy")) == images
    assert "decoded images on disk (--cache disk): 18 .npy files" in caplog.text and "(18 written now)" in caplog.text
    decoded = train(name="decoded", cache=False, **options)
    assert on_disk["map50_95"] == decoded["map50_95"]
    trained = [{k: v for k, v in row.items() if not k.endswith(("_s", "_per_s"))} for row in _rows(tmp_path / "disk")]
    assert trained == [{k: v for k, v in row.items() if not k.endswith(("_s", "_per_s"))}
                       for row in _rows(tmp_path / "decoded")]  # fmt: skip


class BatchShapes(Hook):
    def __init__(self):
        self.shapes = []

    def on_train_batch_end(self, trainer):
        self.shapes.append((trainer.epoch, *trainer.batch.images.shape))


def test_save_period_fraction_multi_scale_and_exist_ok(tiny_shapes_yaml, tmp_path):
    seen = BatchShapes()
    options = dict(data=tiny_shapes_yaml, epochs=2, project=tmp_path, name="run", hyp=dict(TINY_HYP), **RUN)
    train(save_period=1, fraction=0.5, multi_scale=0.5, callbacks=seen, **options)
    weights = tmp_path / "run" / "weights"
    assert [torch.load(weights / f"epoch{n}.pt", weights_only=True)["epoch"] for n in (1, 2)] == [0, 1]
    assert "train_state" not in torch.load(weights / "epoch1.pt", weights_only=True)  # a model, as best.pt
    # 6 of the 12 images, batch 4: two batches an epoch, each at a size of 32..96 (64 * (1 +- 0.5)) in steps of 32
    assert [epoch for epoch, *_ in seen.shapes] == [0, 0, 1, 1]
    assert {(c, h, w) for _, _, c, h, w in seen.shapes} <= {(3, s, s) for s in (32, 64, 96)}
    assert len({h for *_, h, _ in seen.shapes}) > 1
    train(**options)  # the name is taken: a new folder
    train(exist_ok=True, **{**options, "epochs": 1})  # the same folder again
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run", "run2"] and len(_rows(tmp_path / "run")) == 1


def test_multi_scale_resizes_images_and_boxes(tmp_path):
    hook = MultiScale(imgsz=64, spread=0.5, stride=32)
    images = torch.zeros(2, 3, 64, 96, dtype=torch.uint8)
    images[:, :, 16:48, 32:64] = 200
    targets = torch.tensor([[0, 1, 32, 16, 64, 48], [1, 0, 0, 0, 96, 64]], dtype=torch.float32)

    class Fake:
        settings, epoch, device = LoopSettings({}, torch.device("cpu"), tmp_path, seed=3, profile=False), 0, "cpu"
        timer = PhaseTimer(torch.device("cpu"))

    def epoch_of_shapes():
        hook.on_train_epoch_start(Fake)
        shapes = []
        for _ in range(30):
            Fake.batch = Batch(0, images, targets)
            hook.on_train_batch_start(Fake)
            out, boxes = Fake.batch.images, Fake.batch.targets
            height, width = out.shape[2:]
            assert out.dtype == torch.uint8 and height % 32 == 0 and width % 32 == 0
            x1, y1, x2, y2 = boxes[0, 2:].round().int().tolist()
            assert (out[0, :, y1 + 1 : y2 - 1, x1 + 1 : x2 - 1] == 200).all()  # the box still frames the patch
            assert boxes[1, 2:].tolist() == [0, 0, width, height]
            shapes.append((height, width))
        return shapes

    shapes = epoch_of_shapes()
    # the longer side is drawn from 32..96 in steps of 32; the shorter keeps the aspect ratio, rounded up to 32
    assert set(shapes) == {(32, 32), (64, 64), (64, 96)}
    assert epoch_of_shapes() == shapes  # the same seed and epoch draw the same sizes: a resumed run does too
