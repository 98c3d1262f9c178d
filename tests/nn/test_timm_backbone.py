"""TimmBackbone: timm feature backbones as YAML rows, fused by timm's own re-parameterization; never a download
in tests (ImageNet weights are requested only through a stand-in for timm.create_model)."""

import copy
import sys

import pytest
import torch
from helpers import relative_error

import yolorep
from yolorep.errors import ConfigError, YolorepError
from yolorep.nn import FusedTimmBackbone, TimmBackbone, randomize_batchnorm, without_pretrained_weights

timm = pytest.importorskip("timm")

pytestmark = pytest.mark.usefixtures("one_thread")


def _yaml(tmp_path, backbone: str) -> str:
    path = tmp_path / "timm.yaml"
    path.write_text(
        "nc: 3\n"
        "backbone:\n"
        f"  - [-1, 1, TimmBackbone, {backbone}]  # 0: [P3, P4, P5]\n"
        "  - [0, 1, Select, [0]]\n"
        "  - [0, 1, Select, [1]]\n"
        "  - [0, 1, Select, [2]]\n"
        "  - [-1, 1, SPPF, [64, 5]]\n"
        "head:\n"
        "  - [[1, 2, 4], 1, Detect, [nc]]\n"
    )
    return str(path)


@pytest.mark.parametrize("name", ["mobileone_s0", "repvgg_a0"])
def test_timm_model_in_yaml_fuses_through_timm_and_matches(tmp_path, name):
    model = randomize_batchnorm(yolorep.build_model(_yaml(tmp_path, f"{{model: {name}, levels: [3, 4, 5]}}")), 1)
    model.eval()
    assert model.stride.tolist() == [8.0, 16.0, 32.0]
    x = torch.rand(1, 3, 64, 96)
    with torch.no_grad():
        expected = model(x)
        model.fuse()
        got = model(x)
    backbone = model.layers[0]
    assert isinstance(backbone, FusedTimmBackbone) and model.is_fused
    assert "1 TimmBackbone" in model.fuse_report
    reparameterized = [m for m in backbone.modules() if type(m).__name__ in ("MobileOneBlock", "RepVggBlock")]
    assert reparameterized and all(m.reparam_conv is not None for m in reparameterized)
    assert relative_error(got, expected) <= 1e-5
    with pytest.raises(YolorepError, match="re-parameterized by timm"):
        backbone.train()


def test_fused_checkpoints_of_timm_models_round_trip(tmp_path):
    model = randomize_batchnorm(yolorep.build_model(_yaml(tmp_path, "[mobileone_s0]")), seed=2).eval()
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        expected = model(x)
        loaded = yolorep.load(yolorep.save(model.fuse(), tmp_path / "fused.pt"))  # rebuilt, fused by timm, loaded
        assert loaded.is_fused and relative_error(loaded(x), expected) <= 1e-5


def test_pretrained_weights_are_requested_only_when_building_from_yaml(tmp_path, monkeypatch):
    """A YAML with pretrained: true asks timm for ImageNet weights; rebuilding its checkpoint does not."""
    real = timm.create_model
    requests = []

    def create_model(name, pretrained=False, **kwargs):
        requests.append(pretrained)
        return real(name, pretrained=False, **kwargs)

    monkeypatch.setattr(timm, "create_model", create_model)
    model = yolorep.build_model(_yaml(tmp_path, "{model: mobileone_s0, pretrained: true}"))
    assert requests == [False, True]  # the memory estimate on the meta device does not ask, the real build does
    requests.clear()
    yolorep.load(yolorep.save(model, tmp_path / "p.pt"))
    with without_pretrained_weights():
        TimmBackbone(3, "mobileone_s0", pretrained=True)
    assert requests and not any(requests)


def test_offline_pretrained_request_is_one_clear_line(tmp_path, monkeypatch):
    def create_model(name, pretrained=False, **kwargs):
        if pretrained:
            raise OSError("We couldn't connect to 'https://huggingface.co' to load the files\nmore details")
        raise AssertionError("only the pretrained build is expected")

    monkeypatch.setattr(timm, "create_model", create_model)
    with pytest.raises(ConfigError) as caught:
        yolorep.build_model(_yaml(tmp_path, "{model: mobileone_s0, pretrained: true}"))
    message = str(caught.value)
    assert "\n" not in message and "backbone[0] TimmBackbone" in message
    assert "cannot load ImageNet weights for 'mobileone_s0' (We couldn't connect" in message
    assert message.endswith("check the network connection (timm downloads them from the Hugging Face Hub) or set "
                            "pretrained: false")  # fmt: skip


@pytest.mark.parametrize(
    ("backbone", "match"),
    [
        ("[mobilone_s0]", "timm has no model 'mobilone_s0'; did you mean 'mobileone_s0'"),
        ("{model: mobileone_s0, levels: [3, 6]}", "levels \\[3, 6\\]: 'mobileone_s0' has feature levels \\[1, 2, 3"),
    ],
)
def test_bad_timm_rows_name_the_row(tmp_path, backbone, match):
    with pytest.raises(ConfigError, match=f"backbone\\[0\\] TimmBackbone: .*{match}"):
        yolorep.build_model(_yaml(tmp_path, backbone))


def test_missing_timm_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "timm", None)  # import timm now fails
    with pytest.raises(ConfigError, match="TimmBackbone needs timm; install it with pip install 'yolorep\\[timm\\]'"):
        yolorep.build_model(_yaml(tmp_path, "[mobileone_s0]"))


def test_select_refuses_an_index_out_of_range():
    with pytest.raises(ValueError, match="index 3 does not select one of the \\[8, 16\\] maps"):
        yolorep.nn.Select([8, 16], 3)
    assert copy.deepcopy(yolorep.nn.Select([8, 16], -1)).out_channels == 16
