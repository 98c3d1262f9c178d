import copy
import glob
import logging
from pathlib import Path

import pytest
import torch
from helpers import has_batchnorm, relative_error

import yolorep
from yolorep.config import load_model_spec
from yolorep.errors import YolorepError
from yolorep.nn import DecodedModel, FusedConv, RepVGGBlock, randomize_batchnorm
from yolorep.ops import decode_predictions

MODEL_FILES = sorted(glob.glob(str(Path(__file__).parents[2] / "cfg" / "models" / "*.yaml")))


# Scales of the imported families with 20-70 M parameters: built in the slow suite (their equivalence with the
# original code is benchmarks/verify_imports.py's); their n and s scales run here.
_LARGE = {("yolov8", "m"), ("yolov8", "l"), ("yolov8", "x"), ("yolo11", "m"), ("yolo11", "l"), ("yolo11", "x"),
          ("yolov6-m", None), ("yolov6-l", None)}  # fmt: skip
# The block families' m and l scales repeat their n and s scales' blocks at widths that only cost time (a DBB-l
# model takes half a minute on 2 cores); the blocks themselves are checked exactly in tests/nn/test_blocks.py.
_LARGE |= {(family, scale) for family in ("yolorep-acb", "yolorep-dbb", "yolorep-mobileone", "yolorep-qa")
           for scale in ("m", "l")}  # fmt: skip


def _scaled_models():
    for path in MODEL_FILES:
        spec = load_model_spec(path)
        for scale in spec.cfg.get("scales") or {None: None}:
            marks = [pytest.mark.slow] if (Path(path).stem, scale) in _LARGE else []
            yield pytest.param(path, scale, id=f"{Path(path).stem}-{scale}", marks=marks)


@pytest.mark.parametrize(("path", "scale"), list(_scaled_models()))
def test_every_model_scale_builds_runs_and_fuses_exactly(path, scale):
    model = randomize_batchnorm(yolorep.build_model(path, nc=5, scale=scale), seed=1).eval()
    assert model.spec.scale == scale and model.stride.tolist() == [8.0, 16.0, 32.0]
    x = torch.rand(1, 3, 96, 128)
    with torch.no_grad():
        expected = model(x)
        decoded = model.decode(expected)
        model.fuse()
        got = model(x)
    channels = model.head.out_channels  # 4 box values (or 4 x reg_max bins) + 5 classes
    assert [tuple(m.shape) for m in expected] == [(1, channels, 12, 16), (1, channels, 6, 8), (1, channels, 3, 4)]
    assert decoded.shape == (1, 12 * 16 + 6 * 8 + 3 * 4, 4 + 5)
    assert model.is_fused and not has_batchnorm(model)
    assert relative_error(got, expected) <= 1e-5


@pytest.fixture(scope="module")
def nano():
    torch.manual_seed(0)
    return randomize_batchnorm(yolorep.build_model("yolorep-n.yaml", nc=3), seed=2)


def test_fuse_is_idempotent_and_reports(nano, caplog):
    model = copy.deepcopy(nano)
    assert not model.is_fused and model.fuse_report == ""
    with caplog.at_level(logging.DEBUG, logger="yolorep.nn.model"):
        assert model.fuse() is model
    n_blocks = sum(isinstance(m, RepVGGBlock) for m in nano.modules())
    n_convs = sum(type(m).__name__ == "Conv" for m in nano.modules())
    assert model.fuse_report == f"fused {n_blocks} RepVGGBlock, {n_convs} Conv" and model.fuse_report in caplog.text
    state = {k: v.clone() for k, v in model.state_dict().items()}
    model.fuse()
    assert model.is_fused and model.fuse_report == f"fused {n_blocks} RepVGGBlock, {n_convs} Conv"
    assert state.keys() == model.state_dict().keys()
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    assert sum(isinstance(m, FusedConv) for m in model.modules()) == n_blocks + n_convs


def test_fuse_in_train_mode_gives_the_eval_function(nano):
    model = copy.deepcopy(nano).train()
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        model.fuse()
        assert not model.training
        assert relative_error(model(x), copy.deepcopy(nano).eval()(x)) <= 1e-5


def test_fused_model_refuses_training(nano):
    model = copy.deepcopy(nano).fuse()
    with pytest.raises(YolorepError, match="this model is fused .* cannot be trained; train the unfused model"):
        model.train()
    model.eval()  # eval stays allowed
    assert not any(m.training for m in model.modules())


def test_forward_returns_raw_maps_in_train_and_eval(nano):
    model = copy.deepcopy(nano)
    x = torch.rand(2, 3, 64, 96)
    train_maps = model.train()(x)
    with torch.no_grad():
        eval_maps = model.eval()(x)
    expected = [(2, 64 + 3, 8, 12), (2, 67, 4, 6), (2, 67, 2, 3)]
    assert [tuple(m.shape) for m in train_maps] == [tuple(m.shape) for m in eval_maps] == expected


def test_decode_and_decoded_model_agree_with_the_op(nano):
    model = copy.deepcopy(nano).eval()
    x = torch.rand(1, 3, 64, 96)
    with torch.no_grad():
        maps = model(x)
        out = model.decode(maps)
        wrapped = DecodedModel(model)
        assert torch.equal(wrapped(x), out)
    torch.testing.assert_close(out, decode_predictions(maps, model.stride, model.reg_max))
    assert wrapped.names is model.names and torch.equal(wrapped.stride, model.stride) and not wrapped.is_fused


def test_strides_are_measured_not_stored(nano):
    assert "stride" not in nano.state_dict() and not any(k.endswith("strides") for k in nano.state_dict())
    assert nano.stride.tolist() == [8.0, 16.0, 32.0]


def test_info_counts_parameters_and_flops(nano):
    model = copy.deepcopy(nano).train()
    before = model.info(imgsz=128, verbose=False)
    assert model.training  # info() restores the mode
    after = model.fuse().info(imgsz=128, verbose=False)
    assert before["params"] == sum(p.numel() for p in nano.parameters())
    assert after["params"] < before["params"] and 0 < after["gflops"] < before["gflops"]
    assert after["fused"] and not before["fused"]
    # the fused 3x3 conv costs what the 3x3 branch did: FLOPs fall by the 1x1 branches and BatchNorms only
    assert after["gflops"] > 0.85 * before["gflops"]
