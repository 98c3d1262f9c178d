"""ACBlock, DBBlock and MobileOneBlock: exact fuses over kernel sizes, strides, groups and dtypes, and what makes
each block what its paper describes."""

import copy
import itertools

import pytest
import torch
import torch.nn.functional as F
from helpers import has_batchnorm, relative_error
from torch import nn

from yolorep.nn import (
    ACBlock,
    DBBlock,
    FusedConv,
    MobileOneBlock,
    MobileOneUnit,
    RepBlock,
    fuse,
    merge_1x1_kxk,
    randomize_batchnorm,
)

pytestmark = pytest.mark.usefixtures("one_thread")

BLOCKS = [ACBlock, DBBlock, MobileOneBlock]
GRID = list(
    itertools.product(
        [1, 3, 5],  # kernel size
        [1, 2],  # stride
        ["1", "2", "dw"],  # groups
        [(8, 8), (8, 16)],  # (c_in, c_out)
    )
)
TOLERANCE = {torch.float32: 1e-5, torch.float64: 1e-12}


def _perturbed(block: nn.Module, seed: int) -> nn.Module:
    """Random BatchNorm statistics and non-trivial weights: a fresh block hides fuse bugs."""
    randomize_batchnorm(block, seed=seed)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in block.parameters():
            p.add_(torch.randn(p.shape, generator=generator) * 0.1)
    return block.eval()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("block_cls", BLOCKS)
@pytest.mark.parametrize(("k", "stride", "groups", "channels"), GRID)
def test_block_fuse_is_exact(block_cls, k, stride, groups, channels, dtype):
    c_in, c_out = channels
    g = {"1": 1, "2": 2, "dw": c_in}[groups]
    extra = {"branches": 3} if block_cls is MobileOneBlock else {}
    block = _perturbed(block_cls(c_in, c_out, k, stride, g, **extra), seed=k * 7 + stride).to(dtype)
    x = torch.randn(2, c_in, 13, 10, dtype=dtype)  # odd by even: every border case of a strided window
    with torch.no_grad():
        expected = block(x)
        fused = fuse(copy.deepcopy(block))
        got = fused(x)
    assert isinstance(fused, FusedConv) and not has_batchnorm(fused)
    conv = fused.conv
    assert conv.kernel_size == (k, k) and conv.stride == (stride, stride) and conv.groups == g
    assert conv.weight.dtype == dtype and got.shape == expected.shape
    assert relative_error(got, expected) <= TOLERANCE[dtype]


def test_dbb_is_exact_at_the_border_where_zero_padding_after_bn_is_not():
    """The 1 x 1 -> k x k branch: a fused conv sees the 1 x 1 conv + BN's response to zero (its bias) outside the
    image. Zero-padding the BN output instead, as a padded k x k conv after it would, breaks the border only."""
    block = _perturbed(DBBlock(4, 4, 3), seed=2)
    branch = block.sequence
    x = torch.randn(1, 4, 9, 9)
    with torch.no_grad():
        kernel, bias = branch.kernel_bias()
        expected = F.conv2d(x, kernel, bias, padding=1)
        assert relative_error(branch(x), expected) <= 1e-6
        mid = branch.expand_bn(F.conv2d(x, branch.expand.weight))  # 1 x 1 unpadded, then BN
        naive = branch.bn(F.conv2d(mid, branch.conv.weight, padding=1))  # zero-padded after BN
    wrong = (naive - expected).abs().amax(dim=(0, 1))
    assert wrong[1:-1, 1:-1].max() < 1e-5  # the interior agrees ...
    assert wrong[0].max() > 1e-2 and wrong[:, -1].max() > 1e-2  # ... the border does not


def test_dbb_branches_follow_the_paper():
    dense = DBBlock(8, 16, 3, groups=2)
    assert dense.pointwise is not None and dense.average.conv is not None
    eye = torch.zeros(8, 4, 1, 1)
    eye[torch.arange(8), torch.arange(8) % 4] = 1
    assert torch.equal(dense.sequence.expand.weight, eye), "the 1 x 1 of the 1 x 1 -> k x k branch starts as identity"
    depthwise = DBBlock(8, 8, 3, groups=8)
    assert depthwise.pointwise is None and depthwise.average.conv is None  # average pool reads the input directly
    assert depthwise.sequence.expand.out_channels == 16  # twice the channels inside, as the paper's MobileNet
    assert DBBlock(8, 8, 3, internal_channels=24).sequence.expand.out_channels == 24


def test_mobileone_block_branches_and_forms():
    block = MobileOneBlock(8, 8, 3, branches=4)
    assert len(block.dense) == 4 and block.scale is not None and block.identity is not None
    assert MobileOneBlock(8, 8, 3, stride=2).identity is None and MobileOneBlock(8, 16).identity is None
    pointwise = MobileOneBlock(8, 8, 1, branches=2)
    assert pointwise.scale is None and pointwise.identity is not None  # 1 x 1 form: no separate scale branch
    unit = MobileOneUnit(8, 16, 3, stride=2, branches=2)
    assert unit.depthwise.dense[0].conv.groups == 8 and unit.depthwise.dense[0].conv.stride == (2, 2)
    assert unit.pointwise.dense[0].conv.kernel_size == (1, 1) and unit.out_channels == 16
    with pytest.raises(ValueError, match="branches=0 must be at least 1"):
        MobileOneBlock(8, 8, branches=0)


def test_mobileone_unit_fuses_to_depthwise_then_pointwise():
    unit = _perturbed(MobileOneUnit(8, 16, 3, stride=2, branches=3), seed=5)
    x = torch.randn(2, 8, 11, 12)
    with torch.no_grad():
        expected = unit(x)
        fused = fuse(copy.deepcopy(unit))
        assert relative_error(fused(x), expected) <= 1e-5
    convs = [m for m in fused.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.kernel_size, c.groups) for c in convs] == [((3, 3), 8), ((1, 1), 1)] and not has_batchnorm(fused)


def test_acb_branches_are_centred_on_the_same_pixel():
    block = ACBlock(4, 4, 5, stride=2)
    assert block.horizontal.conv.kernel_size == (1, 5) and block.horizontal.conv.padding == (0, 2)
    assert block.vertical.conv.kernel_size == (5, 1) and block.vertical.conv.padding == (2, 0)
    assert ACBlock(4, 4, 1).horizontal is None


@pytest.mark.parametrize("block", ["ACBlock", "DBBlock", "MobileOneBlock", "MobileOneUnit"])
def test_every_new_block_stacks_in_a_stage(block):
    stage = _perturbed(RepBlock(8, 16, 2, block=block), seed=1)
    assert sum(type(m).__name__ == block for m in stage.modules()) == 2
    x = torch.randn(1, 8, 10, 9)
    with torch.no_grad():
        assert relative_error(fuse(copy.deepcopy(stage))(x), stage(x)) <= 1e-5


@pytest.mark.parametrize("block_cls", BLOCKS)
def test_even_kernel_is_rejected(block_cls):
    with pytest.raises(ValueError, match="kernel_size=4 is not a positive odd number"):
        block_cls(8, 8, 4)


def test_merge_1x1_kxk_is_the_sequence_of_the_two_convs():
    k1, b1 = torch.randn(12, 2, 1, 1, dtype=torch.float64), torch.randn(12, dtype=torch.float64)
    k2, b2 = torch.randn(6, 4, 3, 3, dtype=torch.float64), torch.randn(6, dtype=torch.float64)
    kernel, bias = merge_1x1_kxk((k1, b1), (k2, b2), groups=3)
    x = F.pad(torch.randn(1, 6, 7, 8, dtype=torch.float64), [1, 1, 1, 1])  # padded first: exact everywhere
    sequence = F.conv2d(F.conv2d(x, k1, b1, groups=3), k2, b2, groups=3)
    assert relative_error(F.conv2d(x, kernel, bias, groups=3), sequence) < 1e-12
