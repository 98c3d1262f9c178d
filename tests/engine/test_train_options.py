"""The controls of issue 14: a time budget, frozen layers, one class, rectangular batches, callbacks, validation
loss and a readable data-set summary."""

from __future__ import annotations

import csv
import json
import logging
import math
import re
import time
from pathlib import Path

import pytest
import torch
from helpers import TINY_HYP

import yolorep
from yolorep.datasets.dataset import DetectionDataset
from yolorep.datasets.spec import load_data_spec
from yolorep.engine.train import build as train_build
from yolorep.engine.train import data as train_data
from yolorep.engine.train.callbacks import EVENTS
from yolorep.engine.train.schedule import Schedule
from yolorep.engine.train.setup import train
from yolorep.errors import ArgumentError

pytestmark = pytest.mark.usefixtures("one_thread")
# figures are not what these tests check, and they took a third of a tiny run
RUN = dict(model="yolorep-n.yaml", imgsz=64, batch=4, device="cpu", workers=0, plots=False)


def _rows(run):
    with open(run / "results.csv") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def frozen_single_class_run(tiny_shapes_yaml, tmp_path_factory):
    """Two epochs with the first three layers frozen, every object as one class, and a callback recording."""
    events: list[tuple[str, int]] = []

    def record(event):
        return lambda trainer: events.append((event, trainer.epoch))

    project = tmp_path_factory.mktemp("options")
    callbacks = {event: [record(event)] for event in EVENTS}
    callbacks["on_train_epoch_start"].append(lambda trainer: events.append(("ema_tau", trainer.ema.tau)))
    results = train(data=tiny_shapes_yaml, epochs=2, freeze=3, single_cls=True, project=project, name="run",
                    callbacks=callbacks, hyp=dict(TINY_HYP), **RUN)  # fmt: skip
    return results, events


def test_callbacks_run_in_order(frozen_single_class_run):
    _, events = frozen_single_class_run
    taus = [value for event, value in events if event == "ema_tau"]
    events = [(event, value) for event, value in events if event != "ema_tau"]
    # one optimizer step per epoch (3 batches of 4, accumulated to the nominal 64): the EMA warms up over 2 updates
    assert taus == [Schedule(2, lrf=0.01).ema_tau(2000, updates_per_epoch=1)] * 2 == [2.0, 2.0]
    per_epoch = ["on_train_epoch_start", "on_train_batch_end", "on_train_batch_end", "on_train_batch_end",
                 "on_train_epoch_end", "on_val_end", "on_fit_epoch_end", "on_model_save"]  # fmt: skip
    expected = [("on_train_start", -1), *((e, 0) for e in per_epoch), *((e, 1) for e in per_epoch), ("on_fit_end", 1),
                ("on_train_end", 1)]  # fmt: skip
    assert events == expected  # 12 training images, batch 4: three batches per epoch


def test_frozen_layers_keep_their_initial_weights(frozen_single_class_run):
    results, _ = frozen_single_class_run
    torch.manual_seed(0)  # the trainer seeds `seed` (0) before building the model
    initial = yolorep.build_model("yolorep-n.yaml", nc=1).state_dict()
    trained = torch.load(f"{results['save_dir']}/weights/last.pt", weights_only=True)["train_state"]["model"]
    weights = [k for k in initial if k.endswith(".weight") and "bn" not in k and "identity" not in k]
    frozen = [k for k in weights if int(k.split(".")[1]) < 3]
    assert frozen and all(torch.equal(trained[k], initial[k]) for k in frozen)
    assert sum(not torch.equal(trained[k], initial[k]) for k in weights if k not in frozen) > len(weights) // 2
    # BatchNorm statistics of frozen layers stay fixed too (eval mode through every model.train()); the others move
    statistics = [k for k in initial if k.endswith(("running_mean", "running_var"))]
    frozen_statistics = [k for k in statistics if int(k.split(".")[1]) < 3]
    assert frozen_statistics and all(torch.equal(trained[k], initial[k]) for k in frozen_statistics)
    assert all(not torch.equal(trained[k], initial[k]) for k in statistics if k not in frozen_statistics)


def test_frozen_batchnorms_stay_in_eval_mode_through_train():
    model = yolorep.build_model("yolorep-n.yaml", nc=2)
    train_build.freeze_layers(model, [0, 2])
    model.eval().train()
    modes = {i: {m.training for m in layer.modules() if isinstance(m, torch.nn.BatchNorm2d)}
             for i, layer in enumerate(model.layers)}  # fmt: skip
    assert modes[0] == modes[2] == {False} and modes[1] == {True} and model.training
    assert not any(p.requires_grad for p in model.layers[0].parameters())


def test_single_class_run_scores_one_class(frozen_single_class_run):
    results, _ = frozen_single_class_run
    best = yolorep.load(f"{results['save_dir']}/weights/best.pt")
    assert best.names == ["object"] and best.nc == 1
    assert [c["name"] for c in results["per_class"]] == ["object"] and results["source"] == "pycocotools"
    again = yolorep.YOLO(f"{results['save_dir']}/weights/best.pt", verbose=False).val(
        workers=0, batch=4, project=str(Path(results["save_dir"]).parent / "val")
    )
    assert again["map50_95"] == pytest.approx(results["map50_95"], abs=1e-9)


def test_validation_loss_is_recorded(frozen_single_class_run):
    results, _ = frozen_single_class_run
    rows = _rows(Path(results["save_dir"]))
    for row in rows:
        losses = [float(row[f"val/{k}_loss"]) for k in ("box", "cls", "dfl")]
        assert all(math.isfinite(v) and v > 0 for v in losses)
        assert float(row["epoch_time_s"]) == pytest.approx(float(row["train_time_s"]) + float(row["val_time_s"]))


def test_a_callback_can_stop_training(tiny_shapes_yaml, tmp_path):
    def stop_after_first_epoch(trainer):
        trainer.stop = True

    train(data=tiny_shapes_yaml, epochs=5, project=tmp_path, name="stopped", hyp=dict(TINY_HYP),
          callbacks={"on_fit_epoch_end": [stop_after_first_epoch]}, **RUN)  # fmt: skip
    assert len(_rows(tmp_path / "stopped")) == 1 and (tmp_path / "stopped" / "metrics.json").is_file()
    with pytest.raises(ArgumentError, match="callback event 'on_epoch_end': unknown; events are on_train_start"):
        train(data=tiny_shapes_yaml, callbacks={"on_epoch_end": [print]}, project=tmp_path, **RUN)


def test_time_budget_ends_inside_it_with_a_finished_schedule(tiny_shapes_yaml, tmp_path, caplog):
    budget = 10.0
    start = time.perf_counter()
    with caplog.at_level(logging.INFO):
        train(data=tiny_shapes_yaml, time=budget / 3600, project=tmp_path, name="timed",
              hyp=dict(TINY_HYP, close_mosaic=10, mosaic=1.0), **RUN)  # fmt: skip
    wall = time.perf_counter() - start
    rows = _rows(tmp_path / "timed")
    last = torch.load(tmp_path / "timed" / "weights" / "last.pt", weights_only=True)
    # the plan keeps room for the slowest recent epoch; the tolerance is one more epoch after the first, whose
    # one-off costs (the first results.png) the plan leaves out once later epochs are measured
    steady_epoch = max(last["train_state"]["cycles"][1:])
    assert len(rows) >= 2 and wall <= budget + steady_epoch, (wall, len(rows), steady_epoch)
    planned = last["train_state"]["scheduler"]["lr_lambdas"][0]["epochs"]
    assert planned == len(rows)  # the plan ended where training did: LR decay and mosaic closing completed
    # mosaic closes once the plan's last third begins; a plan that grows afterwards reopens it, so the last word
    # on mosaic must be a closing one
    mosaic_lines = re.findall(r"closing mosaic for the last \d+ epochs|mosaic on again", caplog.text)
    assert planned // 3 == 0 or mosaic_lines[-1].startswith("closing"), mosaic_lines
    assert "time budget 10s" in caplog.text


def test_rect_training_uses_batch_shapes_without_mosaic(tiny_shapes_yaml, tmp_path):
    spec = load_data_spec(tiny_shapes_yaml)
    dataset = DetectionDataset(spec, "train", 64, augment=True, rect=True, batch_size=4, stride=32)
    assert not dataset.mosaic_enabled and dataset.batch_shapes
    for index in range(len(dataset)):
        image, labels, _ = dataset[index]
        assert tuple(image.shape[1:]) == dataset.batch_shapes[index // 4]
        assert (labels[:, 3] <= image.shape[2]).all() and (labels[:, 4] <= image.shape[1]).all()
    results = train(
        data=tiny_shapes_yaml, epochs=1, rect=True, project=tmp_path, name="rect", hyp=dict(TINY_HYP), **RUN
    )
    assert json.loads((tmp_path / "rect" / "metrics.json").read_text())["map50_95"] == results["map50_95"]


def test_data_summary_is_one_table(tiny_shapes_yaml, tmp_path, caplog):
    with caplog.at_level(logging.INFO):
        train(data=tiny_shapes_yaml, epochs=1, project=tmp_path, name="summary", hyp=dict(TINY_HYP), **RUN)
    assert caplog.text.count("(coco layout, 6 classes: circle, rectangle, triangle, ellipse, star, cross)") == 1
    lines = caplog.text.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:3] == ["split", "images", "boxes"])
    boxes = sum(len(r.classes) for r in DetectionDataset(load_data_spec(tiny_shapes_yaml), "train", 64).records)
    assert lines[header + 1].split()[:3] == ["train", "12", str(boxes)]
    assert lines[header + 2].split()[:2] == ["val", "6"] and "{'images'" not in caplog.text


def test_val_period_validates_every_n_epochs_and_the_last(tiny_shapes_yaml, tmp_path):
    train(data=tiny_shapes_yaml, epochs=3, val_period=2, project=tmp_path, name="period", hyp=dict(TINY_HYP), **RUN)
    rows = _rows(tmp_path / "period")
    validated = [not math.isnan(float(r["metrics/mAP50-95(est)"])) for r in rows]
    assert validated == [False, True, True] and float(rows[0]["val_time_s"]) == 0.0
    assert torch.load(tmp_path / "period" / "weights" / "best.pt", weights_only=True)["epoch"] in (1, 2)


@pytest.mark.parametrize("cache", [True, False])
def test_epoch_benchmark_breaks_an_epoch_down_by_phase(tiny_shapes_yaml, cache, caplog):
    from yolorep.benchmark import benchmark
    from yolorep.engine.train.phases import PHASES

    caplog.set_level(logging.INFO, logger="yolorep")
    result = benchmark(epoch=True, model="yolorep-n.yaml", data=str(tiny_shapes_yaml), imgsz=64, batch=4, epochs=1,
                       device="cpu", cache=cache)  # fmt: skip
    assert ("images kept in RAM" in caplog.text) == cache
    (row,) = result["epochs"]
    assert all(row[p] >= 0 for p in PHASES) and row["forward"] > 0 and row["backward"] > 0 and row["validation"] > 0
    assert sum(row[p] for p in PHASES) + row["other"] == pytest.approx(row["epoch"], rel=1e-6)
    assert result["total"] >= result["startup"] + row["epoch"] + result["final_validation"] - 1e-6


def test_auto_cache_keeps_images_in_ram_only_when_they_fit(tiny_shapes_yaml, monkeypatch, caplog):
    spec = load_data_spec(tiny_shapes_yaml)

    def cached_after(mode, available, processes=1):
        datasets = [DetectionDataset(spec, split, 64, augment=split == "train") for split in ("train", "val")]
        monkeypatch.setattr(train_data, "available_memory", lambda: available)
        chosen = train_data.cache_images(mode, datasets, processes)
        held = [image is not None for dataset in datasets for image in dataset._images]
        assert all(held) == chosen and any(held) == chosen
        return chosen, sum(dataset.decoded_bytes() for dataset in datasets)

    caplog.set_level(logging.INFO, logger="yolorep")
    _, need = cached_after(False, 10**12)
    assert cached_after("auto", 4 * need)[0]  # a quarter of what is available
    kept = f"images kept in RAM: {need / 2**20:.1f} MB resized (auto; --cache false reads them every epoch)"
    assert kept in caplog.text
    assert not cached_after("auto", 4 * need - 1)[0]
    assert not cached_after("auto", 4 * need, processes=2)[0]  # every DDP process holds its own copy
    monkeypatch.setattr(train_data, "AUTO_CACHE_BYTES", need - 1)
    assert not cached_after("auto", 10**12)[0]  # plenty of memory, but over the cap
    assert "exceed the auto cache (a quarter of" in caplog.text and "--cache true keeps them in RAM" in caplog.text
    assert not cached_after("auto", None)[0]  # memory unknown: only when asked
    assert cached_after(True, None)[0]
    assert not cached_after(False, 10**12)[0]
