"""The generic fuse: probing agrees with every analytic fuse, accepts the linear blocks a user writes, and refuses,
with the reason, every block one convolution does not compute, leaving it in place."""

import copy
import itertools
import logging

import pytest
import torch
import torch.nn.functional as F
from helpers import has_batchnorm, relative_error
from torch import nn

import yolorep
from yolorep.nn import (
    ACBlock,
    DBBlock,
    FusedConv,
    FuseRefused,
    MobileOneBlock,
    QARepVGGBlock,
    RepVGGBlock,
    fuse,
    linear_then_activation,
    probe_conv,
    randomize_batchnorm,
    register,
)

pytestmark = pytest.mark.usefixtures("one_thread")

ANALYTIC = [RepVGGBlock, QARepVGGBlock, ACBlock, DBBlock, MobileOneBlock]
GEOMETRIES = [(k, s, g) for k, s, g in itertools.product([1, 3, 5], [1, 2], ["2", "dw"])]


def _perturbed(block: nn.Module, seed: int = 0) -> nn.Module:
    randomize_batchnorm(block, seed=seed)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in block.parameters():
            p.add_(torch.randn(p.shape, generator=generator) * 0.1)
    return block.eval()


@pytest.mark.parametrize("block_cls", ANALYTIC)
@pytest.mark.parametrize(("k", "stride", "groups"), GEOMETRIES)
def test_probe_agrees_with_the_analytic_fuse(block_cls, k, stride, groups):
    c_in, c_out, g = (8, 8, 8) if groups == "dw" else (8, 16, 2)
    block = _perturbed(block_cls(c_in, c_out, k, stride, g, act=False), seed=k + stride)
    analytic = block.fused().conv
    probed = probe_conv(block)
    for attribute in ("kernel_size", "stride", "padding", "groups", "in_channels", "out_channels"):
        assert getattr(probed, attribute) == getattr(analytic, attribute), attribute
    assert probed.weight.dtype == torch.float32  # probed on a float64 copy, returned in the block's dtype
    assert relative_error(probed.weight, analytic.weight) <= 1e-5
    assert relative_error(probed.bias, analytic.bias) <= 1e-5


def test_probe_in_float64_is_exact():
    block = _perturbed(DBBlock(8, 8, 3, 2, groups=2, act=False), seed=3).double()
    probed, analytic = probe_conv(block), block.fused().conv
    assert probed.weight.dtype == torch.float64
    assert relative_error(probed.weight, analytic.weight) <= 1e-12
    x = torch.randn(2, 8, 11, 10, dtype=torch.float64)
    with torch.no_grad():
        assert relative_error(probed(x), block(x)) <= 1e-12


# Blocks a user might write. Each computes act(linear(x)); only some linear parts are one convolution.


class _UserBlock(nn.Module):
    def __init__(self, in_channels: int = 4, out_channels: int = 4) -> None:
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.act = nn.SiLU()

    def forward(self, x):
        return self.act(self.linear(x))


@linear_then_activation
class StridedChain(_UserBlock):
    """A bias-free strided 1 x 1 conv -> BN-free 3 x 3 conv, beside a 3 x 3 stride-2 conv + BN: a 5 x 5 conv."""

    def __init__(self, in_channels: int = 4, out_channels: int = 4) -> None:
        super().__init__(in_channels, out_channels)
        self.reduce = nn.Conv2d(in_channels, 8, 1, stride=2, bias=False)
        self.conv = nn.Conv2d(8, out_channels, 3, padding=1)
        side = nn.Conv2d(in_channels, out_channels, 3, 2, 1, bias=False)
        self.side = nn.Sequential(side, nn.BatchNorm2d(out_channels))

    def linear(self, x):
        return self.conv(self.reduce(x)) + 0.5 * self.side(x)


@linear_then_activation
class ReluInside(_UserBlock):
    def __init__(self, in_channels: int = 4, out_channels: int = 4) -> None:
        super().__init__(in_channels, out_channels)
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=1)

    def linear(self, x):
        return torch.relu(self.conv(x))


@linear_then_activation
class PaddedAfterBN(_UserBlock):
    """1 x 1 conv + BN, then a zero-padded 3 x 3 conv: the padding meets the BN's bias (DBB's border problem)."""

    def __init__(self) -> None:
        super().__init__()
        self.reduce, self.bn = nn.Conv2d(4, 4, 1, bias=False), nn.BatchNorm2d(4)
        self.conv = nn.Conv2d(4, 4, 3, padding=1)

    def linear(self, x):
        return self.conv(self.bn(self.reduce(x)))


@linear_then_activation
class TwoPaddedConvs(_UserBlock):
    """3 x 3 then 3 x 3, each zero-padded: 5 x 5 inside, but not at the border."""

    def __init__(self) -> None:
        super().__init__()
        self.first, self.second = nn.Conv2d(4, 4, 3, padding=1, bias=False), nn.Conv2d(4, 4, 3, padding=1)

    def linear(self, x):
        return self.second(self.first(x))


@linear_then_activation
class Mirrored(_UserBlock):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1)

    def linear(self, x):
        return self.conv(x) + x.flip(-1)


@linear_then_activation
class Unpadded(_UserBlock):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3)

    def linear(self, x):
        return self.conv(x)


@linear_then_activation
class ForwardIsNotActOfLinear(_UserBlock):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1)

    def linear(self, x):
        return self.conv(x)

    def forward(self, x):
        return self.act(self.linear(x)) + 1


class _Functional(_UserBlock):
    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(4, 4, 3, 3) * 0.2)

    def linear(self, x):
        return F.conv2d(x, self.weight.repeat(1, 1, 3, 3), padding=4)  # a 9 x 9 kernel with no Conv2d module


FunctionalUnbounded = linear_then_activation(type("FunctionalUnbounded", (_Functional,), {}))
FunctionalBounded = linear_then_activation(max_kernel_size=9)(type("FunctionalBounded", (_Functional,), {}))


@linear_then_activation
class RoundsPerImage(_UserBlock):
    """A 3 x 3 convolution whose arithmetic rounds each image of a batch a little differently: a nonzero image's
    output is off by 1e-16 of its largest value everywhere, as torch's float64 convolution was, by 1 ulp, for some
    pixels of some images of a batch on an AVX2 EPYC."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1)

    def linear(self, x):
        y = self.conv(x)
        nonzero = x.flatten(1).abs().amax(1)[:, None, None, None] > 0
        return y + nonzero * 1e-16 * y.detach().abs().amax()


@pytest.mark.parametrize(
    ("block_cls", "geometry"),
    [
        (StridedChain, ((5, 5), (2, 2), 1)),
        (FunctionalBounded, ((9, 9), (1, 1), 1)),
        (RoundsPerImage, ((3, 3), (1, 1), 1)),
    ],
)
def test_user_linear_blocks_fuse_exactly(block_cls, geometry):
    block = _perturbed(block_cls(), seed=4)
    fused = block.fused()
    assert isinstance(fused, FusedConv) and isinstance(fused.act, nn.SiLU) and not has_batchnorm(fused)
    assert (fused.conv.kernel_size, fused.conv.stride, fused.conv.groups) == geometry
    x = torch.randn(2, 4, 15, 12)
    with torch.no_grad():
        assert relative_error(fused(x), block(x)) <= 1e-5


@pytest.mark.parametrize(
    ("block_cls", "reason"),
    [
        (ReluInside, "not linear: f\\(a \\+ b\\) - f\\(a\\) - f\\(b\\) \\+ f\\(0\\) reaches"),
        (PaddedAfterBN, "linear, but within 2 pixels of the image border it differs from every zero-padded conv"),
        (TwoPaddedConvs, "linear, but within 3 pixels of the image border it differs from every zero-padded conv"),
        (Mirrored, "linear, but no convolution computes it: away from the border it differs by"),
        (Unpadded, "a 12 x 13 input gives \\(10, 11\\), which no 'same'-padded convolution"),
        (ForwardIsNotActOfLinear, "forward\\(x\\) is not the activation of its linear part"),
        (FunctionalUnbounded, "its receptive field is wider .* \\(0 pixels.*give @linear_then_activation a max_kernel"),
    ],
)
def test_blocks_no_convolution_computes_are_refused_and_left_alone(block_cls, reason, caplog):
    block = _perturbed(block_cls(), seed=6)
    with pytest.raises(FuseRefused, match=f"^{block_cls.__name__}: {reason}"):
        block.fused()
    state = {k: v.clone() for k, v in block.state_dict().items()}
    parent = nn.Sequential(nn.Identity(), block)
    with caplog.at_level(logging.WARNING, logger="yolorep.nn.fuse"):
        fused = fuse(parent)
    assert fused[1] is block and block_cls.__name__ in caplog.text  # never replaced, and the log says why
    assert block.fuse_refused.startswith(block_cls.__name__)
    assert all(torch.equal(state[k], v) for k, v in block.state_dict().items())


def test_probe_reads_structure_not_values():
    """A branch whose BatchNorm starts at gamma = 0 contributes nothing yet; the fused kernel keeps its shape, so a
    fused checkpoint of the trained block loads into a freshly built and fused one."""
    block = _perturbed(RepVGGBlock(8, 8, 5, groups=2, act=False))
    with torch.no_grad():
        block.dense.bn.weight.zero_()  # only the 1 x 1 and identity branches are non-zero now
    probed = probe_conv(block)
    assert probed.kernel_size == (5, 5) and probed.groups == 2
    assert relative_error(probed.weight, block.fused().conv.weight) <= 1e-5


def test_probe_leaves_the_block_as_it_was():
    block = randomize_batchnorm(DBBlock(8, 8, 3, act=False)).train()
    state = {k: v.clone() for k, v in block.state_dict().items()}
    probe_conv(block)
    assert block.training and all(m.training for m in block.modules())
    assert all(torch.equal(state[k], v) for k, v in block.state_dict().items())  # running statistics untouched


def test_decorating_a_block_that_has_fused_is_refused():
    with pytest.raises(TypeError, match="already defines fused"):
        linear_then_activation(type("Twice", (RepVGGBlock,), {}))


def _model_yaml(tmp_path, block: str) -> str:
    path = tmp_path / "user.yaml"
    path.write_text(
        "nc: 2\nbackbone:\n"
        "  - [-1, 1, Conv, [8, 3, 2]]\n"
        f"  - [-1, 1, {block}, [8]]\n"
        "  - [-1, 1, Conv, [8, 3, 2]]\n"
        "  - [-1, 1, Conv, [8, 3, 2]]\n"
        "head:\n  - [[1, 2, 3], 1, Detect, [nc]]\n"
    )
    return str(path)


def test_models_fuse_user_blocks_and_keep_refused_ones(tmp_path, caplog):
    register(name="TestStridedChain")(StridedChain)
    register(name="TestReluInside")(ReluInside)
    accepted = _perturbed(yolorep.build_model(_model_yaml(tmp_path, "TestStridedChain")))
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        expected = accepted(x)
        accepted.fuse()
        assert relative_error(accepted(x), expected) <= 1e-5
    assert accepted.is_fused and accepted.fuse_report == "fused 12 Conv, 1 StridedChain"
    path = yolorep.save(accepted, tmp_path / "fused.pt")
    with torch.no_grad():
        assert relative_error(yolorep.load(path)(x), expected) <= 1e-5  # rebuilt, fused again, loaded

    refused = _perturbed(yolorep.build_model(_model_yaml(tmp_path, "TestReluInside")))
    with torch.no_grad():
        expected = refused(x)
        with caplog.at_level(logging.WARNING, logger="yolorep.nn.fuse"):
            refused.fuse()
        assert relative_error(refused(x), expected) <= 1e-6
    assert isinstance(refused.layers[1], ReluInside) and "ReluInside: not linear" in caplog.text
    assert refused.fuse_report == "fused 12 Conv; refused 1 ReluInside"
    assert refused.is_fused  # everything fusable was fused or refused: a checkpoint of it loads fused
    refused.fuse()
    assert refused.fuse_report == "fused 12 Conv; refused 1 ReluInside"  # idempotent
    with torch.no_grad():
        assert relative_error(yolorep.load(yolorep.save(refused, tmp_path / "r.pt"))(x), expected) <= 1e-6
    assert copy.deepcopy(refused).layers[1].fuse_refused  # the refusal travels with copies (fused_copy)
