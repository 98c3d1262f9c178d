import copy
import itertools

import pytest
import torch
from helpers import has_batchnorm, relative_error
from torch import nn

from yolorep.errors import YolorepError
from yolorep.nn import (
    FusedConv,
    QARepVGGBlock,
    RepVGGBlock,
    conv_from_kernel,
    fuse,
    fused_copy,
    identity_kernel,
    randomize_batchnorm,
)

BLOCKS = [RepVGGBlock, QARepVGGBlock]
GRID = list(
    itertools.product(
        [1, 3, 5, 7],  # kernel size
        [1, 2],  # stride
        ["1", "2", "dw"],  # groups
        [(8, 8), (8, 16)],  # (c_in, c_out)
        [(13, 13), (16, 10)],  # odd and even input sizes
    )
)


def _groups(spec: str, c_in: int) -> int:
    return {"1": 1, "2": 2, "dw": c_in}[spec]


@pytest.mark.parametrize("block_cls", BLOCKS)
@pytest.mark.parametrize(("k", "stride", "groups", "channels", "size"), GRID)
def test_block_fuse_is_exact(block_cls, k, stride, groups, channels, size):
    c_in, c_out = channels
    g = _groups(groups, c_in)
    block = randomize_batchnorm(block_cls(c_in, c_out, k, stride, g), seed=k * 7 + stride)
    with torch.no_grad():
        for p in block.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    block.eval()
    x = torch.randn(2, c_in, *size)
    with torch.no_grad():
        expected = block(x)
        fused = fuse(copy.deepcopy(block))
        got = fused(x)
    assert isinstance(fused, FusedConv)
    assert fused.conv.kernel_size == (k, k) and fused.conv.stride == (stride, stride) and fused.conv.groups == g
    assert not has_batchnorm(fused)
    assert not any(isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1) for m in fused.modules()) or k == 1
    assert got.shape == expected.shape
    assert relative_error(got, expected) <= 1e-5


def test_identity_kernel_grouped_is_not_a_plain_diagonal():
    kernel = identity_kernel(6, 3, 3, like=torch.zeros(1))
    assert kernel.shape == (6, 2, 3, 3)
    x = torch.randn(1, 6, 5, 5)
    y = torch.nn.functional.conv2d(x, kernel, padding=1, groups=3)
    torch.testing.assert_close(y, x)
    depthwise = identity_kernel(4, 4, 5, like=torch.zeros(1))
    torch.testing.assert_close(torch.nn.functional.conv2d(x[:, :4], depthwise, padding=2, groups=4), x[:, :4])


@pytest.mark.parametrize("block_cls", BLOCKS)
def test_even_kernel_is_rejected(block_cls):
    with pytest.raises(ValueError, match="kernel_size=4 is not a positive odd number"):
        block_cls(8, 8, 4)


@pytest.mark.parametrize("block_cls", BLOCKS)
def test_activation_options(block_cls):
    x = torch.randn(1, 4, 7, 7)
    for act, check in [(False, lambda y: (y < 0).any()), (nn.ReLU(), lambda y: (y >= 0).all())]:
        block = randomize_batchnorm(block_cls(4, 4, act=act)).eval()
        with torch.no_grad():
            assert check(block(x))
            assert relative_error(fuse(copy.deepcopy(block))(x), block(x)) <= 1e-5


def test_fuse_is_computed_in_the_weights_dtype():
    block = randomize_batchnorm(RepVGGBlock(8, 8, groups=2)).double().eval()
    x = torch.randn(1, 8, 9, 9, dtype=torch.float64)
    with torch.no_grad():
        fused = fuse(copy.deepcopy(block))
        assert fused.conv.weight.dtype == torch.float64
        assert relative_error(fused(x), block(x)) < 1e-12


def test_syncbatchnorm_branches_fuse():
    block = randomize_batchnorm(nn.SyncBatchNorm.convert_sync_batchnorm(RepVGGBlock(8, 8))).eval()
    x = torch.randn(1, 8, 9, 9)
    with torch.no_grad():
        assert relative_error(fuse(copy.deepcopy(block))(x), block(x)) <= 1e-5


def test_fuse_on_train_mode_block_gives_eval_function():
    block = randomize_batchnorm(RepVGGBlock(8, 8))
    block.train()
    x = torch.randn(2, 8, 9, 9)
    with torch.no_grad():
        fused = fuse(copy.deepcopy(block))
        block.eval()
        assert relative_error(fused(x), block(x)) <= 1e-5


def test_fused_module_refuses_training():
    fused = fuse(RepVGGBlock(4, 4))
    with pytest.raises(YolorepError, match="is fused .* cannot be trained"):
        fused.train()
    assert not fused.training


def test_conv_from_kernel_keeps_the_reference_geometry():
    reference = nn.Conv2d(6, 9, 5, stride=2, padding=2, dilation=1, groups=3, bias=False)
    kernel, bias = torch.randn(9, 2, 5, 5, dtype=torch.float64), torch.randn(9, dtype=torch.float64)
    conv = conv_from_kernel(reference, kernel, bias)
    assert (conv.kernel_size, conv.stride, conv.padding, conv.groups) == ((5, 5), (2, 2), (2, 2), 3)
    assert conv.weight.dtype == torch.float64 and not conv.weight.requires_grad
    x = torch.randn(1, 6, 11, 11, dtype=torch.float64)
    torch.testing.assert_close(conv(x), torch.nn.functional.conv2d(x, kernel, bias, stride=2, padding=2, groups=3))


def test_fused_copy_leaves_the_original_training():
    block = randomize_batchnorm(RepVGGBlock(8, 8)).train()
    before = {k: v.clone() for k, v in block.state_dict().items()}
    fused = fused_copy(block)
    assert isinstance(fused, FusedConv) and block.training and isinstance(block, RepVGGBlock)
    assert all(torch.equal(before[k], v) for k, v in block.state_dict().items())
    x = torch.randn(1, 8, 9, 9)
    with torch.no_grad():
        assert relative_error(fused(x), block.eval()(x)) <= 1e-5
