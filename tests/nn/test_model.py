import copy
import glob
import logging
from pathlib import Path

import pytest
import torch
from helpers import has_batchnorm, randomize_batchnorm, relative_error

import yolorep
from yolorep.config import load_model_spec
from yolorep.errors import YolorepError
from yolorep.nn import FusedConv, RepVGGBlock

MODEL_FILES = sorted(glob.glob(str(Path(__file__).parents[2] / "cfg" / "models" / "*.yaml")))


def _scaled_models():
    for path in MODEL_FILES:
        spec = load_model_spec(path)
        scales = spec.cfg.get("scales") or {None: None}
        for scale in scales:
            yield pytest.param(path, scale, id=f"{Path(path).stem}-{scale}")


@pytest.mark.parametrize(("path", "scale"), list(_scaled_models()))
def test_every_model_scale_builds_runs_and_fuses_exactly(path, scale):
    stem = Path(path)
    cfg = stem.with_name(f"{stem.stem}-{scale}.yaml") if scale else stem
    model = randomize_batchnorm(yolorep.build_model(cfg, nc=5), seed=1).eval()
    assert model.stride.tolist() == [8.0, 16.0, 32.0]
    x = torch.rand(1, 3, 96, 128)
    with torch.no_grad():
        expected = model(x)
        model.fuse()
        got = model(x)
    assert expected.shape == (1, 12 * 16 + 6 * 8 + 3 * 4, 4 + 5)
    assert model.is_fused and not has_batchnorm(model)
    assert relative_error(got, expected) <= 1e-5


@pytest.fixture(scope="module")
def nano():
    torch.manual_seed(0)
    return randomize_batchnorm(yolorep.build_model("yolorep-n.yaml", nc=3), seed=2)


def test_fuse_is_idempotent_and_reports(nano, caplog):
    model = copy.deepcopy(nano)
    assert not model.is_fused
    with caplog.at_level(logging.INFO, logger="yolorep.nn.model"):
        model.fuse()
    n_blocks = sum(isinstance(m, RepVGGBlock) for m in nano.modules())
    assert f"fused {n_blocks} RepVGGBlock" in model.fuse_report and model.fuse_report in caplog.text
    state = {k: v.clone() for k, v in model.state_dict().items()}
    model.fuse()
    assert model.is_fused
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    assert sum(isinstance(m, FusedConv) for m in model.modules()) == n_blocks + sum(
        type(m).__name__ == "Conv" for m in nano.modules()
    )


def test_fuse_in_train_mode_gives_eval_function(nano):
    model = copy.deepcopy(nano).train()
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        model.fuse()
        assert not model.training
        assert relative_error(model(x), copy.deepcopy(nano).eval()(x)) <= 1e-5


def test_fused_model_refuses_training(nano):
    model = copy.deepcopy(nano).fuse(verbose=False)
    with pytest.raises(YolorepError, match="is fused .* cannot be trained"):
        model.train()
    model.eval()  # eval stays allowed


def test_train_mode_returns_raw_maps_and_eval_decodes(nano):
    model = copy.deepcopy(nano).train()
    maps = model(torch.rand(2, 3, 64, 96))
    assert [tuple(m.shape) for m in maps] == [(2, 64 + 3, 8, 12), (2, 67, 4, 6), (2, 67, 2, 3)]
    model.eval()
    with torch.no_grad():
        out = model(torch.rand(2, 3, 64, 96))
    boxes, scores = out[..., :4], out[..., 4:]
    assert (boxes[..., 2] >= boxes[..., 0]).all() and (boxes[..., 3] >= boxes[..., 1]).all()
    assert ((scores >= 0) & (scores <= 1)).all()


def test_info_counts_parameters_and_flops(nano):
    model = copy.deepcopy(nano)
    before = model.info(imgsz=128, verbose=False)
    after = model.fuse(verbose=False).info(imgsz=128, verbose=False)
    assert before["params"] == sum(p.numel() for p in nano.parameters())
    assert after["params"] < before["params"] and 0 < after["gflops"] < before["gflops"]
    assert after["fused"] and not before["fused"]


def test_named_argument_rows_equal_positional(tmp_path):
    text = Path(MODEL_FILES[0]).read_text().replace("[64, 3, 2]]  # 0-P1/2", "{out_channels: 64, stride: 2}]")
    assert "{out_channels: 64, stride: 2}" in text
    path = tmp_path / "named.yaml"
    path.write_text(text)
    torch.manual_seed(0)
    named = yolorep.build_model(path, nc=3)
    torch.manual_seed(0)
    positional = yolorep.build_model(MODEL_FILES[0], nc=3)
    assert [tuple(v.shape) for v in named.state_dict().values()] == [
        tuple(v.shape) for v in positional.state_dict().values()
    ]
