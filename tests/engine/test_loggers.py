"""Experiment loggers through hooks (``--loggers``): MLflow on a local file store, W&B offline (never the network),
TensorBoard scalars and images; each used only when installed and asked for, none imported with yolorep."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import pytest
from helpers import TINY_HYP

from yolorep.cli import main
from yolorep.engine.train import loggers as train_loggers
from yolorep.engine.train.setup import train
from yolorep.errors import ArgumentError

pytestmark = pytest.mark.usefixtures("one_thread")
RUN = dict(model="yolorep-n.yaml", imgsz=64, batch=4, device="cpu", workers=0, hyp=dict(TINY_HYP))
STOP = {"on_fit_epoch_end": [lambda trainer: setattr(trainer, "stop", True)]}  # after the epoch under way


def test_no_logger_is_imported_with_yolorep():
    code = (
        "import sys, yolorep, yolorep.engine.train.setup, yolorep.cli\n"
        "print([m for m in ('mlflow', 'wandb', 'tensorboard', 'optuna') if m in sys.modules])"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.strip() == "[]"


def test_a_logger_asked_for_and_missing_stops_the_run_before_it_starts(tiny_shapes_yaml, tmp_path, monkeypatch):
    monkeypatch.setattr(train_loggers, "_installed", lambda name: False)
    with pytest.raises(ArgumentError, match=r"--loggers wandb,mlflow: wandb, mlflow not installed; pip install "
                                            r"'yolorep\[wandb,mlflow\]' or leave it out"):  # fmt: skip
        train(data=tiny_shapes_yaml, epochs=1, loggers="wandb,mlflow", project=tmp_path, **RUN)
    assert not list(tmp_path.iterdir())
    assert train_loggers.check_loggers(("tensorboard",)) == []  # the default one is skipped without a word


def test_mlflow_run_with_params_metrics_and_artifacts(tiny_shapes_yaml, tmp_path, monkeypatch):
    mlflow = pytest.importorskip("mlflow")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", (tmp_path / "mlruns").as_uri())  # file:/... a local file store
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 keeps file stores in maintenance mode
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    monkeypatch.delenv("MLFLOW_RUN", raising=False)
    project = tmp_path / "experiments"
    first = train(data=tiny_shapes_yaml, epochs=2, loggers="mlflow", project=project, callbacks=STOP, **RUN)
    results = train(resume=str(project / "exp" / "weights" / "last.pt"))  # continues the same MLflow run
    client = mlflow.tracking.MlflowClient()
    (run,) = client.search_runs([client.get_experiment_by_name("experiments").experiment_id])
    assert run.info.run_name == "exp" and run.info.status == "FINISHED"
    assert run.data.params["epochs"] == "2" and run.data.params["hyp.warmup_epochs"] == "0.0"
    history = client.get_metric_history(run.info.run_id, "metrics/mAP50-95_est")
    assert [m.step for m in history] == [1, 2]
    assert run.data.metrics["final/metrics/mAP50-95"] == pytest.approx(results["map50_95"])
    assert first["map50_95"] >= 0 and "lr/pg0" in run.data.metrics
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"results.csv", "args.yaml", "results.png", "weights"} <= artifacts
    assert {a.path for a in client.list_artifacts(run.info.run_id, "weights")} >= {"weights/best.pt"}


def test_wandb_offline_run(tiny_shapes_yaml, tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    for key in ("WANDB_API_KEY", "WANDB_BASE_URL", "WANDB_PROJECT"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("WANDB_MODE", "offline")  # nothing leaves the machine
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb_config"))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / "wandb_cache"))
    monkeypatch.setenv("WANDB_DATA_DIR", str(tmp_path / "wandb_data"))
    results = train(data=tiny_shapes_yaml, epochs=1, loggers="wandb", project=tmp_path / "runs", **RUN)
    (run_file,) = (tmp_path / "runs" / "exp" / "wandb").glob("offline-run-*/run-*.wandb")
    logged, summary = {}, {}
    for record in _wandb_records(run_file):
        kind = record.WhichOneof("record_type")
        if kind == "history":
            logged.update({item.key or "/".join(item.nested_key): item.value_json for item in record.history.item})
        elif kind == "summary":
            summary.update({item.key or "/".join(item.nested_key): item.value_json for item in record.summary.update})
    assert json.loads(summary["final/metrics/mAP50-95"]) == pytest.approx(results["map50_95"])
    assert {"metrics/mAP50-95(est)", "lr/pg0", "val/box_loss"} <= set(logged)
    images = {key.removesuffix("/_type") for key, value in logged.items() if value == '"image-file"'}
    assert {"train_batch0", "pr_curve", "results", "confusion_matrix"} <= images
    assert list(run_file.parent.glob("files/media/images/train_batch0_*.jpg"))


def _wandb_records(path):
    """The protobuf records of a W&B transaction log: a 7-byte header, then 32 KiB blocks of chunks (CRC 4 bytes,
    length 2, type 1: full, first, middle, last), as LevelDB's log format."""
    from wandb.proto import wandb_internal_pb2

    data, position, pending = path.read_bytes(), 7, b""
    while position + 7 <= len(data):
        room = 32768 - position % 32768
        if room < 7:  # the block's tail is padding
            position += room
            continue
        length, kind = int.from_bytes(data[position + 4 : position + 6], "little"), data[position + 6]
        pending += data[position + 7 : position + 7 + length]
        position += 7 + length
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            pending = b""
            yield record


def test_a_logger_that_cannot_start_its_run_is_one_line(tiny_shapes_yaml, tmp_path, monkeypatch, caplog):
    wandb = pytest.importorskip("wandb")

    def not_logged_in(**kwargs):
        raise wandb.errors.UsageError("api_key not configured (no-tty). call wandb.login(key=[your_api_key])")

    monkeypatch.setattr(wandb, "init", not_logged_in)
    argv = ["train", "--data", str(tiny_shapes_yaml), "--epochs", "1", "--loggers", "wandb", "--project", str(tmp_path),
            "--imgsz", "64", "--batch", "4", "--device", "cpu", "--workers", "0"]  # fmt: skip
    with caplog.at_level(logging.ERROR, logger="yolorep"):
        assert main(argv) == 2
    assert "W&B: cannot start a run (api_key not configured (no-tty)" in caplog.text
    assert "set WANDB_MODE=offline, or train without --loggers wandb" in caplog.text


def test_tensorboard_scalars_and_images(tiny_shapes_yaml, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    results = train(data=tiny_shapes_yaml, epochs=1, project=tmp_path, **RUN)  # the default: TensorBoard
    events = EventAccumulator(str(tmp_path / "exp"), size_guidance={"images": 0}).Reload()
    assert {"metrics/mAP50-95(est)", "lr/pg0", "final/metrics/mAP50-95"} <= set(events.Tags()["scalars"])
    assert events.Scalars("final/metrics/mAP50-95")[0].value == pytest.approx(results["map50_95"], abs=1e-6)
    assert {"train_batch0", "pr_curve", "results", "confusion_matrix"} <= set(events.Tags()["images"])
