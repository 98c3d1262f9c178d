"""Each option is declared once: types, ranges and messages come from the field; a misspelt option fails at once;
what checkpoints store reads back; cfg/default.yaml is the rendering of ``Hyperparameters``."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from yolorep.errors import ArgumentError, YolorepError
from yolorep.options import (
    ExportOptions,
    Hyperparameters,
    PredictOptions,
    TrainOptions,
    ValOptions,
    benchmark_options,
)
from yolorep.options.hyp import default_hyp_yaml
from yolorep.options.train import UNCAPPED_EPOCHS

ROOT = Path(__file__).parents[2]

# issue 23 item 7: values that trained to exit 0, gave tracebacks, or were accepted without a check
BAD_TRAIN_VALUES = [
    ("lrf", math.nan), ("shear", math.nan), ("box", math.nan), ("lr0", math.nan), ("lr0", -1.0), ("momentum", 5),
    ("nbs", 0), ("warmup_epochs", math.nan), ("ema_tau", 0), ("val_conf", 2), ("val_iou", -1), ("max_det", -1),
    ("time", math.nan), ("time", math.inf), ("seed", -5), ("imgsz", 99999999968), ("freeze", 1000000000),
    ("mosaic", 2), ("fliplr", -1), ("scale", 5), ("degrees", 1e9), ("weight_decay", -1), ("ema_decay", 2),
    ("translate", 5), ("epochs", 0), ("batch", 0), ("workers", -1), ("val_period", 0), ("patience", -1),
    ("optimizer", "Adam"), ("cache", "maybe"), ("freeze", "1,x"), ("amp", "perhaps"), ("epochs", 2.5),
    ("lr0", "fast"), ("imgsz", True),
]  # fmt: skip


@pytest.mark.parametrize(("key", "value"), BAD_TRAIN_VALUES, ids=[f"{k}={v}" for k, v in BAD_TRAIN_VALUES])
def test_out_of_range_values_are_one_clear_line(key, value):
    with pytest.raises(ArgumentError) as err:
        TrainOptions.create({key: value})
    message = str(err.value)
    assert message.startswith(f"--{key.replace('_', '-')} ") and "\n" not in message, message
    assert "(" in message and message.endswith(")"), "the message says what the option means"


def test_good_values_are_normalised():
    options = TrainOptions.create({"epochs": "3", "lr0": 1, "cache": "ram", "freeze": "0,2", "amp": "false"})
    assert options.epochs == 3 and options.hyp.lr0 == 1.0 and isinstance(options.hyp.lr0, float)
    assert options.cache is True and options.freeze == (0, 2) and options.hyp.amp is False
    assert options.hyp_set == ("amp", "lr0")
    assert TrainOptions.create({"freeze": 3}).freeze == 3


def test_a_misspelt_option_fails_at_once():
    with pytest.raises(ArgumentError, match="unknown option 'epohcs'; did you mean epochs"):
        TrainOptions.create({"epohcs": 3})
    with pytest.raises(ArgumentError, match="unknown option 'conff'; did you mean conf"):
        ValOptions.from_kwargs({"weights": "best.pt", "conff": 0.5})
    with pytest.raises(AttributeError):
        TrainOptions().epohcs  # noqa: B018
    with pytest.raises(TypeError):
        TrainOptions(epohcs=3)  # the dataclass itself refuses unknown fields


def test_options_are_frozen():
    with pytest.raises(AttributeError):
        TrainOptions().epochs = 3


def test_required_options_and_positional_calls():
    with pytest.raises(TypeError):
        ValOptions()
    assert ExportOptions.build(("best.pt",), {"format": "torchscript"}).weights == "best.pt"
    built = PredictOptions.build(("best.pt", "images/"), {"conf": 0.5})
    assert (built.weights, built.source, built.conf, built.classes) == ("best.pt", "images/", 0.5, None)
    assert PredictOptions.build((built,), {"classes": "0,2"}).classes == (0, 2)
    with pytest.raises(TypeError, match="given twice"):
        PredictOptions.build(("best.pt",), {"weights": "other.pt", "source": "x"})


def test_a_time_budget_without_epochs_is_capped_not_fixed():
    assert TrainOptions.create({"time": 0.5}).epochs == UNCAPPED_EPOCHS
    assert TrainOptions.create({"time": 0.5, "epochs": 7}).epochs == 7


def test_stored_options_read_back_and_older_files_too():
    options = TrainOptions.create({"epochs": 3, "lr0": 0.002, "freeze": [1, 2], "optimizer": "SGD"})
    stored = options.to_train_args()
    assert stored["freeze"] == [1, 2] and stored["hyp"]["lr0"] == 0.002 and stored["optimizer"] == "SGD"
    assert TrainOptions.from_stored(stored) == options
    older = {"epochs": 3, "optimizer": "AdamW", "hyp": {"lr0": 0.002, "ema_tau": 2000}, "removed_key": 1}
    restored = TrainOptions.from_stored(older)  # format 2: no val_period, optimizer beside hyp, int ema_tau
    assert restored.val_period == 1 and restored.hyp.optimizer == "AdamW" and restored.hyp.ema_tau == 2000.0


def test_resume_may_change_only_where_data_lives_and_runs():
    stored = TrainOptions.create({"epochs": 2, "data": "shapes.yaml"})
    assert [f.name for f, spec in TrainOptions.specs() if spec.resume] == [
        "data", "device", "workers", "cache", "plots", "loggers"
    ]  # fmt: skip
    assert stored.resumed({"device": "cpu", "cache": "false", "resume": True}, "last.pt").cache is False
    with pytest.raises(YolorepError, match=r"--epochs 5 \(the run has 2\) was given; only --data, --device"):
        stored.resumed({"epochs": 5}, "last.pt")
    with pytest.raises(YolorepError, match="keeps the run's hyperparameters"):
        stored.resumed({"lr0": 0.1}, "last.pt")
    assert stored.resumed({"epochs": 2}, "last.pt") == stored  # the same value is not a change


def test_benchmark_modes_take_their_own_flags():
    assert type(benchmark_options({"train": True})).__name__ == "TrainStepOptions"
    assert benchmark_options({"epoch": True}).batch == 16  # the epoch mode's own default
    assert benchmark_options({}).batch == 1
    with pytest.raises(ArgumentError, match="--sweep and --train: choose one"):
        benchmark_options({"train": True, "sweep": True})
    with pytest.raises(ArgumentError, match="--cuda-graph: not used by benchmark --train"):
        benchmark_options({"train": True, "cuda_graph": True})


def test_every_hyperparameter_has_a_type_a_range_and_a_meaning():
    hyp = Hyperparameters()
    for f, spec in Hyperparameters.specs():
        assert spec.help, f.name
        if isinstance(getattr(hyp, f.name), (int, float)) and not isinstance(getattr(hyp, f.name), bool):
            assert spec.check is not None, f"{f.name}: no range"
            assert spec.check(getattr(hyp, f.name)) is None, f"{f.name}: its default is out of its own range"


def test_default_yaml_is_the_rendering_of_the_declarations():
    assert (ROOT / "cfg" / "default.yaml").read_text() == default_hyp_yaml()
