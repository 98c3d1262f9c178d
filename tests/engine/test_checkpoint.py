import copy
import pickle

import pytest
import torch

import yolorep
from yolorep.errors import CheckpointError
from yolorep.nn import randomize_batchnorm


@pytest.fixture(scope="module")
def model():
    m = randomize_batchnorm(yolorep.build_model("yolorep-n.yaml", nc=4), seed=5).eval()
    m.names = ["a", "b", "c", "d"]
    return m


@pytest.mark.parametrize("fused", [False, True])
def test_round_trip(tmp_path, model, fused):
    model = copy.deepcopy(model)
    if fused:
        model.fuse()
    path = yolorep.save(model, tmp_path / "w.pt", epoch=3, metrics={"map50_95": 0.5})
    raw = torch.load(path, map_location="cpu", weights_only=True)
    assert raw["fused"] is fused and raw["names"] == ["a", "b", "c", "d"] and raw["epoch"] == 3
    assert (raw["format_version"], raw["model_name"], raw["scale"]) == (2, "yolorep", "n")
    loaded = yolorep.load(path)
    assert loaded.is_fused is fused and loaded.names == model.names and loaded.meta["metrics"]["map50_95"] == 0.5
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x))
    if not fused:
        unfused_out = loaded(x)
        loaded.fuse()
        with torch.no_grad():
            torch.testing.assert_close(loaded(x), unfused_out, rtol=1e-4, atol=1e-4)
    assert not list(tmp_path.glob("*.tmp"))


def test_format_1_checkpoints_still_load(tmp_path, model):
    """Format 1 kept name and scale inside the config and the head's strides in the weights."""
    raw = torch.load(yolorep.save(model, tmp_path / "w.pt"), weights_only=True)
    raw["format_version"] = 1
    raw["model_cfg"] = dict(raw.pop("model_cfg"), scale=raw.pop("scale"), yaml_file=raw.pop("model_name") + ".yaml")
    raw["state_dict"]["layers.24.strides"] = torch.tensor([8.0, 16.0, 32.0])
    torch.save(raw, tmp_path / "v1.pt")
    loaded = yolorep.load(tmp_path / "v1.pt")
    assert (loaded.spec.name, loaded.spec.scale) == ("yolorep", "n") and "scale" not in loaded.cfg
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x))


def test_mismatched_state_dict_names_keys(tmp_path, model):
    path = yolorep.save(model, tmp_path / "w.pt")
    raw = torch.load(path, weights_only=True)
    raw["state_dict"].pop("layers.0.dense.conv.weight")
    raw["state_dict"]["layers.0.extra"] = torch.zeros(1)
    raw["model_cfg"] = dict(raw["model_cfg"], nc=7)
    torch.save(raw, path)
    with pytest.raises(
        CheckpointError,
        match=r"missing: layers\.0\.dense\.conv\.weight.*unexpected: layers\.0\.extra"
        r".*shape mismatch: layers\.24\.levels\.0\.cls_pred\.weight",
    ):
        yolorep.load(path)


class _Payload:
    def __reduce__(self):
        return (print, ("code ran",))


def test_pickle_with_code_and_foreign_files_are_refused(tmp_path, capsys):
    evil = tmp_path / "evil.pt"
    torch.save({"format_version": 1, "model_cfg": {}, "state_dict": {}, "x": _Payload()}, evil)
    with pytest.raises(CheckpointError, match="refused: not a weights-only yolorep checkpoint"):
        yolorep.load(evil)
    assert "code ran" not in capsys.readouterr().out
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, other)
    with pytest.raises(CheckpointError, match="not a yolorep checkpoint"):
        yolorep.load(other)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(pickle.dumps([1, 2]) + b"\x00junk")
    with pytest.raises(CheckpointError):
        yolorep.load(garbage)
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        yolorep.load(tmp_path / "absent.pt")


def test_non_plain_metadata_is_rejected(tmp_path, model):
    with pytest.raises(TypeError, match="cannot be stored in a weights-only checkpoint"):
        yolorep.save(model, tmp_path / "w.pt", extra=torch.nn.ReLU())
    assert not (tmp_path / "w.pt").exists()
