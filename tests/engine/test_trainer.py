import copy
import csv
import json
import logging
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from helpers import TINY_HYP

import yolorep
from yolorep.engine.train import trainer as trainer_module
from yolorep.engine.train.build import build_trainer
from yolorep.engine.train.callbacks import Callbacks
from yolorep.engine.train.setup import train
from yolorep.options import TrainOptions


def _rows(run):
    with open(run / "results.csv") as f:
        return list(csv.DictReader(f))


def test_run_folder_holds_weights_results_and_metrics(trained_tiny):
    run = trained_tiny
    for name in ["weights/last.pt", "weights/best.pt", "args.yaml", "results.csv", "results.png", "train_batch0.jpg",
                 "metrics.json", "predictions.json", "confusion_matrix.png", "pr_curve.png"]:  # fmt: skip
        assert (run / name).is_file() and (run / name).stat().st_size > 0, name
    rows = _rows(run)
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    raw = torch.load(run / "weights" / "last.pt", map_location="cpu", weights_only=True)
    assert raw["epoch"] == 1 and not raw["fused"] and "optimizer" in raw["train_state"]
    assert raw["eval_args"] == {"imgsz": 64, "conf": 0.001, "iou": 0.7, "max_det": 300}
    assert "train_state" not in torch.load(run / "weights" / "best.pt", weights_only=True)
    model = yolorep.load(run / "weights" / "best.pt")
    assert model.names == ["circle", "rectangle", "triangle", "ellipse", "star", "cross"]


def test_plots_off_writes_every_file_but_the_figures(tiny_shapes_yaml, tmp_path):
    """ultralytics' plots=False: the same run folder without its figures (and without their cost)."""
    results = train(
        model="yolorep-n.yaml", data=tiny_shapes_yaml, epochs=1, imgsz=64, batch=4, device="cpu", workers=0,
        project=tmp_path, name="quiet", hyp=dict(TINY_HYP), plots=False,
    )  # fmt: skip
    run = Path(results["save_dir"])
    for name in ["weights/last.pt", "weights/best.pt", "args.yaml", "results.csv", "metrics.json", "predictions.json"]:
        assert (run / name).is_file(), name
    assert not [p.name for p in run.iterdir() if p.suffix in (".png", ".jpg")]
    stored = torch.load(run / "weights" / "last.pt", weights_only=True)["train_args"]
    assert stored["plots"] is False and yaml.safe_load((run / "args.yaml").read_text())["plots"] is False


def test_loss_falls(tiny_shapes_yaml, tmp_path):
    hyp = dict(TINY_HYP, fliplr=0.0, hsv_h=0.0, hsv_s=0.0, hsv_v=0.0, scale=0.0, translate=0.0)
    results = train(
        model="yolorep-n.yaml", data=tiny_shapes_yaml, epochs=5, imgsz=64, batch=4, device="cpu", workers=0,
        project=tmp_path, name="fall", hyp=hyp, optimizer="auto", seed=1,
    )  # fmt: skip
    rows = _rows(tmp_path / "fall")

    def total(r):
        return float(r["train/box_loss"]) + float(r["train/cls_loss"]) + float(r["train/dfl_loss"])

    assert total(rows[-1]) < 0.8 * total(rows[0])
    # the returned figures are best.pt's, scored by pycocotools on all 6 validation images, as written to disk
    stored = json.loads((tmp_path / "fall" / "metrics.json").read_text())
    assert results["source"] == stored["source"] == "pycocotools" and results["images"] == 6
    assert results["map50_95"] == stored["map50_95"] and results["save_dir"] == str(tmp_path / "fall")


def test_resume_continues_exactly(tiny_shapes_yaml, tmp_path, monkeypatch):
    kwargs = dict(
        model="yolorep-n.yaml", data=tiny_shapes_yaml, epochs=3, imgsz=64, batch=4, device="cpu", workers=0,
        project=tmp_path, hyp=dict(TINY_HYP, mosaic=0.5, close_mosaic=1), optimizer="auto",
    )  # fmt: skip
    train(name="full", **kwargs)

    original = trainer_module.Trainer._train_one_epoch

    def killed_in_third_epoch(self, epoch):
        if epoch == 2:
            raise KeyboardInterrupt
        return original(self, epoch)

    monkeypatch.setattr(trainer_module.Trainer, "_train_one_epoch", killed_in_third_epoch)
    with pytest.raises(KeyboardInterrupt):
        train(name="killed", **kwargs)
    last = tmp_path / "killed" / "weights" / "last.pt"
    saved = torch.load(last, weights_only=True)
    assert saved["epoch"] == 1  # epochs 0 and 1 finished before the kill
    monkeypatch.setattr(trainer_module.Trainer, "_train_one_epoch", original)

    captured = {}
    load = trainer_module.Trainer.load_state_dict

    def spy(self, checkpoint, where):
        load(self, checkpoint, where)
        captured["optimizer"] = copy.deepcopy(self.optimizer.state_dict())
        captured["start"] = self.state.epoch + 1

    monkeypatch.setattr(trainer_module.Trainer, "load_state_dict", spy)
    train(resume=str(last), project=tmp_path)
    assert captured["start"] == 2
    opt_saved = saved["train_state"]["optimizer"]
    assert captured["optimizer"]["param_groups"][0]["lr"] == opt_saved["param_groups"][0]["lr"]
    for key, state in opt_saved["state"].items():
        assert torch.equal(captured["optimizer"]["state"][key]["exp_avg"], state["exp_avg"])

    assert [int(r["epoch"]) for r in _rows(tmp_path / "killed")] == [1, 2, 3]
    full = torch.load(tmp_path / "full" / "weights" / "last.pt", weights_only=True)
    resumed = torch.load(last, weights_only=True)
    assert resumed["epoch"] == 2
    for key, value in full["state_dict"].items():
        torch.testing.assert_close(resumed["state_dict"][key], value, rtol=1e-5, atol=1e-6, msg=key)


def test_non_finite_loss_skips_the_step(tiny_shapes_yaml, tmp_path, monkeypatch, caplog):
    calls = {"n": 0}
    from yolorep.loss import DetectionLoss

    original = DetectionLoss.forward

    def sometimes_nan(self, preds, strides, targets):
        total, items = original(self, preds, strides, targets)
        calls["n"] += 1
        if calls["n"] == 2:
            return total * float("nan"), items * float("nan")
        return total, items

    monkeypatch.setattr(DetectionLoss, "forward", sometimes_nan)
    with caplog.at_level(logging.WARNING):
        train(
            model="yolorep-n.yaml", data=tiny_shapes_yaml, epochs=1, imgsz=64, batch=4, device="cpu", workers=0,
            project=tmp_path, name="nan", hyp=dict(TINY_HYP), optimizer="auto",
        )  # fmt: skip
    assert "non-finite loss" in caplog.text and "step skipped" in caplog.text
    model = yolorep.load(tmp_path / "nan" / "weights" / "last.pt")
    assert all(torch.isfinite(v).all() for v in model.state_dict().values() if v.is_floating_point())


def test_a_cpu_run_resumes_with_fp16_loss_scaling(trained_tiny, tmp_path, monkeypatch):
    """A CPU run saves ``scaler: {}``; resumed on a GPU, the enabled GradScaler must start afresh rather than
    fail to load it. An enabled CPU GradScaler takes the CUDA one's place (the same load_state_dict)."""
    run = Path(shutil.copytree(trained_tiny, tmp_path / "run"))
    last = run / "weights" / "last.pt"
    assert torch.load(last, weights_only=True)["train_state"]["scaler"] == {}
    gradscaler = torch.amp.GradScaler
    monkeypatch.setattr(torch.amp, "GradScaler", lambda device, enabled: gradscaler("cpu", enabled=True))
    loaded = {}
    load = trainer_module.Trainer.load_state_dict

    def spy(self, checkpoint, where="last.pt"):
        load(self, checkpoint, where)
        loaded.update(enabled=self.scaler.is_enabled(), state=self.scaler.state_dict(), epoch=self.state.epoch)

    monkeypatch.setattr(trainer_module.Trainer, "load_state_dict", spy)
    results = train(resume=str(last), project=tmp_path)
    assert loaded == {"enabled": True, "state": gradscaler("cpu").state_dict(), "epoch": 1}
    assert results["save_dir"] == str(run)


def test_training_tunes_cudnn_for_its_fixed_size_and_reads_losses_back_rarely(tiny_shapes_yaml, tmp_path, monkeypatch):
    """cudnn.benchmark is on while training at a fixed size (off again after the epoch's batches); the progress
    display reads the losses back from the device (a GPU sync) at most every PROGRESS_SECONDS."""
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    monkeypatch.setattr(trainer_module, "PROGRESS_SECONDS", 1e9)
    shown, tuned = [], {"batches": [], "after": []}

    class Recorder:
        def __init__(self, iterable, **kwargs):
            self.iterable = iterable

        def __iter__(self):
            return iter(self.iterable)

        def set_postfix_str(self, text, refresh=True):
            shown.append(text)

    monkeypatch.setattr(trainer_module, "progress", Recorder)
    callbacks = Callbacks({
        "on_train_batch_end": [lambda trainer: tuned["batches"].append(torch.backends.cudnn.benchmark)],
        "on_train_epoch_end": [lambda trainer: tuned["after"].append(torch.backends.cudnn.benchmark)],
    })  # fmt: skip
    options = TrainOptions.create({"model": "yolorep-n.yaml", "data": str(tiny_shapes_yaml), "epochs": 1, "imgsz": 64,
                                   "batch": 4, "device": "cpu", "workers": 0, "project": str(tmp_path),
                                   "hyp": dict(TINY_HYP), "cache": False})  # fmt: skip
    trainer = build_trainer(options.to_train_args(), None, None, torch.device("cpu"), False, [callbacks])
    trainer.fit()
    assert tuned == {"batches": [True] * 3, "after": [False]}
    assert len(shown) == 1 and shown[0].startswith("box ")  # the last of the 3 batches only
