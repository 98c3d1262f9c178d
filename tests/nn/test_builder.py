"""The YAML builder: arguments bound to constructor signatures, width and depth scaling, stacking, errors."""

import pytest
import torch
from torch import nn

from yolorep.errors import ConfigError
from yolorep.nn import build_model, register


def _write(tmp_path, backbone: str, head: str = "  - [[-1, 0], 1, Detect, [nc]]\n", scales: str = "") -> str:
    path = tmp_path / "m.yaml"
    path.write_text(f"nc: 2\n{scales}backbone:\n{backbone}head:\n{head}")
    return str(path)


class StridedConv(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 2):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, kernel_size // 2)
        self.out_channels = out_channels

    def forward(self, x):
        return self.conv(x)


def test_custom_module_width_scaling_capping_and_stacking(tmp_path):
    register(name="TestStridedConv")(StridedConv)  # in the test: registering at import would join the registry table
    path = _write(
        tmp_path,
        "  - [-1, 1, TestStridedConv, [32]]\n"
        "  - [-1, 2, TestStridedConv, {out_channels: 64, kernel_size: 1}]\n"
        "  - [-1, 1, TestStridedConv, [128]]\n",
        head="  - [[0, 1, 2], 1, Detect, [nc]]\n",
        scales="scales:\n  t: [1.0, 0.5, 64]\n",
    )
    model = build_model(path)
    assert model.layers[0].out_channels == 16  # 32 * width 0.5
    stack = model.layers[1]
    assert isinstance(stack, nn.Sequential) and len(stack) == 2  # repeats 2 * depth 1.0: stacked copies
    assert stack[0].conv.stride == (2, 2) and stack[1].conv.stride == (1, 1)  # only the first copy downsamples
    assert stack[1].conv.in_channels == 32 and stack[1].conv.kernel_size == (1, 1)
    assert model.layers[2].out_channels == 32  # 128 capped to max_channels 64, times 0.5
    assert model.stride.tolist() == [2.0, 4.0, 8.0]
    maps = model.eval()(torch.rand(1, 3, 64, 64))
    assert [tuple(m.shape) for m in maps] == [(1, 64 + 2, 32, 32), (1, 66, 16, 16), (1, 66, 8, 8)]


def test_repeats_parameter_receives_the_depth_scaled_count(tmp_path):
    rows = "  - [-1, 1, Conv, [16, 3, 2]]\n  - [-1, 6, RepBlock, [16]]\n"
    path = _write(tmp_path, rows, head="  - [[0, 1], 1, Detect, [nc]]\n", scales="scales:\n  n: [0.34, 1.0, 64]\n")
    model = build_model(path)
    assert len(model.layers[1].blocks) == 2  # round(6 * 0.34), built once with n=2 rather than stacked


def test_named_arguments_build_the_same_model_as_positional(tmp_path):
    rows = "  - [-1, 1, RepVGGBlock, [16, 3, 2]]\n  - [-1, 1, Conv, [32, 3, 2]]\n"
    positional = _write(tmp_path, rows, head="  - [[0, 1], 1, Detect, [nc]]\n")
    named = tmp_path / "named.yaml"
    named.write_text(
        open(positional).read().replace("[16, 3, 2]]", "{out_channels: 16, stride: 2}]")
        .replace("[32, 3, 2]]", "{stride: 2, kernel_size: 3, out_channels: 32}]")
    )  # fmt: skip
    torch.manual_seed(0)
    a = build_model(positional)
    torch.manual_seed(0)
    b = build_model(named)
    assert a.stride.tolist() == b.stride.tolist() == [2.0, 4.0]
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    x = torch.rand(1, 3, 32, 32)
    assert all(torch.equal(u, v) for u, v in zip(a.eval()(x), b.eval()(x)))


def test_unknown_module_suggests_closest(tmp_path):
    path = _write(tmp_path, "  - [-1, 1, Conv, [16, 3, 2]]\n  - [-1, 1, RepVGGBlok, [16]]\n")
    with pytest.raises(
        ConfigError,
        match=r"m\.yaml:4: backbone\[1\] RepVGGBlok: unknown module 'RepVGGBlok'; did you mean 'RepVGGBlock'",
    ):
        build_model(path)


def test_wrong_argument_list_names_the_signature(tmp_path):
    path = _write(tmp_path, "  - [-1, 1, RepVGGBlock, [16, 3, 2, 1, true, 5, 6]]\n")
    with pytest.raises(
        ConfigError, match=r"m\.yaml:3: backbone\[0\] RepVGGBlock: arguments .* do not fit RepVGGBlock\(in_channels"
    ):
        build_model(path)


def test_unknown_named_argument(tmp_path):
    path = _write(tmp_path, "  - [-1, 1, Conv, {out_channels: 16, kernal_size: 3}]\n")
    with pytest.raises(ConfigError, match="unexpected keyword argument 'kernal_size'"):
        build_model(path)


def test_constructor_error_names_the_row(tmp_path):
    path = _write(tmp_path, "  - [-1, 1, RepVGGBlock, [16, 4]]\n")
    with pytest.raises(ConfigError, match=r"backbone\[0\] RepVGGBlock: cannot build RepVGGBlock .* kernel_size=4"):
        build_model(path)


def test_last_row_must_be_detect(tmp_path):
    with pytest.raises(ConfigError, match=r"head\[0\] Conv: the last row must be a detection head"):
        build_model(_write(tmp_path, "  - [-1, 1, Conv, [16, 3, 2]]\n", "  - [-1, 1, Conv, [16]]\n"))


def test_stage_block_argument_picks_the_block(tmp_path):
    rows = "  - [-1, 1, Conv, [16, 3, 2]]\n  - [-1, 2, RepCSP, {out_channels: 16, block: QARepVGGBlock}]\n"
    model = build_model(_write(tmp_path, rows, head="  - [[0, 1], 1, Detect, [nc]]\n"))
    blocks = [type(m).__name__ for m in model.layers[1].blocks.modules()]
    assert blocks.count("QARepVGGBlock") == 2 and "RepVGGBlock" not in blocks


def test_unknown_stage_block_names_the_row_and_the_choices(tmp_path):
    path = _write(tmp_path, "  - [-1, 3, RepBlock, {out_channels: 16, block: RepVGGBlok}]\n")
    with pytest.raises(
        ConfigError, match=r"backbone\[0\] RepBlock: .*block='RepVGGBlok' is not a stage block; use one of RepVGGBlock"
    ):
        build_model(path)
