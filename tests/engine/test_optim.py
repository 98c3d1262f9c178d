import math

import pytest
import torch
from torch import nn

import yolorep
from yolorep.engine.train.optim import ModelEMA, build_optimizer, resolve_optimizer


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return yolorep.build_model("yolorep-n.yaml", nc=3)


@pytest.mark.parametrize("name", ["SGD", "AdamW"])
def test_parameter_groups_decay_only_conv_weights(model, name):
    optimizer = build_optimizer(model, name, lr=0.01, momentum=0.9, weight_decay=1e-3)
    no_decay, decay, biases = optimizer.param_groups
    assert (no_decay["weight_decay"], decay["weight_decay"], biases["weight_decay"]) == (0.0, 1e-3, 0.0)
    norm_weights = {id(m.weight) for m in model.modules() if isinstance(m, nn.BatchNorm2d)}
    conv_weights = {id(m.weight) for m in model.modules() if isinstance(m, nn.Conv2d)}
    assert {id(p) for p in no_decay["params"]} == norm_weights
    assert {id(p) for p in decay["params"]} == conv_weights
    assert all(p.ndim == 1 for p in biases["params"])
    grouped = [id(p) for g in optimizer.param_groups for p in g["params"]]
    assert sorted(grouped) == sorted(id(p) for p in model.parameters())  # every parameter exactly once


def test_unknown_optimizer(model):
    with pytest.raises(ValueError, match="optimizer 'Lion' is not supported"):
        build_optimizer(model, "Lion", lr=0.01)


def test_auto_picks_adamw_for_short_schedules_and_sgd_for_long_ones():
    assert resolve_optimizer("auto", nc=6, iterations=500, lr0=0.01) == ("AdamW", 0.001)
    assert resolve_optimizer("auto", nc=80, iterations=50_000, lr0=0.05) == ("SGD", 0.01)
    assert resolve_optimizer("SGD", nc=6, iterations=500, lr0=0.02) == ("SGD", 0.02)


def test_ema_ramps_its_decay_and_tracks_the_model():
    model = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    with torch.no_grad():
        model[0].weight.zero_()
    ema = ModelEMA(model, decay=0.9, tau=2)
    assert ema.decay() == 0.0 and ema.ema is not model and not ema.ema[0].weight.requires_grad
    with torch.no_grad():
        model[0].weight.fill_(1.0)
        model[1].num_batches_tracked.fill_(7)
    ema.update(model)  # decay 0.9 * (1 - exp(-updates / tau)), counted after the update
    d1 = 0.9 * (1 - math.exp(-1 / 2))
    assert ema.updates == 1 and ema.decay() == pytest.approx(d1)
    torch.testing.assert_close(ema.ema[0].weight, torch.full((2, 2), 1 - d1))
    with torch.no_grad():
        model[0].weight.fill_(3.0)
    ema.update(model)
    d2 = 0.9 * (1 - math.exp(-2 / 2))
    torch.testing.assert_close(ema.ema[0].weight, torch.full((2, 2), d2 * (1 - d1) + (1 - d2) * 3.0))
    assert int(ema.ema[1].num_batches_tracked) == 7  # integer buffers are copied, not averaged
    restored = ModelEMA(model)
    restored.load_state_dict(ema.state_dict())
    assert restored.updates == 2 and torch.equal(restored.ema[0].weight, ema.ema[0].weight)
