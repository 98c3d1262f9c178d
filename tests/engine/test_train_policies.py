"""Training as an ultralytics user expects it (issue 26): the optimizer a time budget allows, the learning rates
logged as used, Ctrl-C that says how to resume, periodic checkpoints, reused run folders, a fraction of the data,
multi-scale batches."""

from __future__ import annotations

import csv
import logging

import pytest
import torch
from helpers import TINY_HYP

from yolorep.cli import main
from yolorep.engine.trainer import Trainer

pytestmark = pytest.mark.usefixtures("one_thread")
RUN = dict(model="yolorep-n.yaml", imgsz=64, batch=4, device="cpu", workers=0)
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
