import inspect

import pytest
import torch
from torch import nn

import yolorep
from yolorep.errors import ConfigError
from yolorep.nn import register
from yolorep.nn.registry import lookup, registered_names


@pytest.mark.parametrize("name", registered_names())
def test_registry_contract(name):
    """Every entry: first parameter is the input channels (if it takes them), named args exist, out_channels."""
    entry = lookup(name)
    params = list(inspect.signature(entry.cls).parameters)
    if entry.takes_in_channels:
        assert params[0] in ("in_channels", "c1"), f"{name}: first parameter is {params[0]}"
    for arg in (entry.out_channels, entry.repeats):
        assert arg is None or arg in params
    if not entry.takes_in_channels:
        return
    multi_input = name in ("Concat", "Detect")
    c_in = [8, 8, 8] if multi_input else 8
    kwargs = {"kernel_size": 3} if name == "nn.Conv2d" else {}
    module = entry.cls(c_in, *([] if multi_input else [16]), **kwargs)
    assert isinstance(module.out_channels, int)
    if entry.out_channels is not None:
        assert module.out_channels == 16


def test_custom_module_from_yaml_string(tmp_path):
    @register(name="TestScaledConv")
    class TestScaledConv(nn.Module):
        def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3):
            super().__init__()
            self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, 2, kernel_size // 2)
            self.out_channels = out_channels

        def forward(self, x):
            return self.conv(x)

    cfg = tmp_path / "custom.yaml"
    cfg.write_text(
        "nc: 3\nscales:\n  t: [1.0, 0.5, 64]\nbackbone:\n"
        "  - [-1, 1, TestScaledConv, [32]]\n"
        "  - [-1, 2, TestScaledConv, {out_channels: 64, kernel_size: 1}]\n"
        "  - [-1, 1, TestScaledConv, [128]]\n"
        "head:\n  - [[0, 1, 2], 1, Detect, [nc]]\n"
    )
    model = yolorep.build_model(cfg)
    assert model.layers[0].out_channels == 16  # 32 * width 0.5
    assert isinstance(model.layers[1], nn.Sequential) and len(model.layers[1]) == 2  # stacked copies
    assert model.layers[1][1].conv.in_channels == 32 and model.layers[2].out_channels == 32  # 128 capped to 64
    assert model.stride.tolist() == [2.0, 8.0, 16.0]
    out = model.eval()(torch.rand(1, 3, 64, 64))
    assert out.shape == (1, 32 * 32 + 8 * 8 + 4 * 4, 4 + 3)


def _write(tmp_path, backbone: str, head: str = "  - [[-1, 0], 1, Detect, [nc]]\n") -> str:
    path = tmp_path / "bad.yaml"
    path.write_text(f"nc: 2\nbackbone:\n{backbone}head:\n{head}")
    return str(path)


def test_unknown_module_suggests_closest(tmp_path):
    path = _write(tmp_path, "  - [-1, 1, Conv, [16, 3, 2]]\n  - [-1, 1, RepVGGBlok, [16]]\n")
    with pytest.raises(
        ConfigError,
        match=r"bad\.yaml:4: backbone\[1\] RepVGGBlok: unknown module 'RepVGGBlok'; "
        r"did you mean 'RepVGGBlock'",
    ):
        yolorep.build_model(path)


def test_wrong_argument_list_names_signature(tmp_path):
    path = _write(tmp_path, "  - [-1, 1, RepVGGBlock, [16, 3, 2, 1, true, 5, 6]]\n")
    with pytest.raises(
        ConfigError,
        match=r"bad\.yaml:3: backbone\[0\] RepVGGBlock: arguments .* do not fit "
        r"RepVGGBlock\(in_channels",
    ):
        yolorep.build_model(path)


def test_unknown_named_argument(tmp_path):
    path = _write(tmp_path, "  - [-1, 1, Conv, {out_channels: 16, kernal_size: 3}]\n")
    with pytest.raises(ConfigError, match="unexpected keyword argument 'kernal_size'"):
        yolorep.build_model(path)


def test_bad_from_index(tmp_path):
    path = _write(tmp_path, "  - [-1, 1, Conv, [16, 3, 2]]\n  - [[-1, 5], 1, Concat, [1]]\n")
    with pytest.raises(
        ConfigError,
        match=r"backbone\[1\] Concat: 'from' index 5 points to layer 5, but only layers "
        r"0\.\.0",
    ):
        yolorep.build_model(path)


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("  - [-1, 1, Conv]\n  - 7\n", r"backbone\[1\]: a row is \[from, repeats, module, args\]"),
        ("  - [-1, 0, Conv, [16]]\n", "repeats must be a positive integer"),
        ("  - [x, 1, Conv, [16]]\n", "'from' must be an integer or a list of integers"),
        ("  - [-1, 1, 12, [16]]\n", "the module name must be a string"),
        ("  - [-1, 1, Conv, 16]\n", "args must be a list or a mapping"),
    ],
)
def test_malformed_rows(tmp_path, row, message):
    with pytest.raises(ConfigError, match=message):
        yolorep.build_model(_write(tmp_path, row))


def test_missing_file_and_bad_scale(tmp_path):
    with pytest.raises(ConfigError, match="model YAML not found; give a path .* yolorep.yaml"):
        yolorep.build_model(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="unknown scale 'x'; this file defines n, s, m, l"):
        yolorep.build_model("yolorep-x.yaml")


def test_last_row_must_be_detect(tmp_path):
    with pytest.raises(ConfigError, match="the last row must be a Detect head"):
        yolorep.build_model(_write(tmp_path, "  - [-1, 1, Conv, [16, 3, 2]]\n", "  - [-1, 1, Conv, [16]]\n"))


def test_duplicate_registration_is_refused():
    with pytest.raises(ValueError, match="already registered"):
        register(name="RepVGGBlock")(
            type("Other", (nn.Module,), {"__init__": lambda self, in_channels, out_channels: None})
        )
