"""Tests that grow with the registry: every registered name is built from its example, run, checked against the
registry contract, and fuse-checked (random BatchNorm statistics) when it holds fusable parts."""

import copy
import importlib.util

import pytest
import torch
from helpers import has_batchnorm, relative_error
from registry_examples import EXAMPLES
from torch import nn

from yolorep.nn import fuse, is_fusable, randomize_batchnorm, register
from yolorep.nn.registry import lookup, registered_names

NAMES = registered_names()  # at collection: the built-in modules only


def _build(name: str) -> tuple[nn.Module, list[torch.Tensor] | torch.Tensor]:
    example = EXAMPLES[name]
    if example.requires:
        pytest.importorskip(example.requires)
    module = lookup(name).cls(*example.args, **example.kwargs)
    inputs = [torch.randn(*shape) for shape in example.inputs]
    return module, inputs if example.multi_input else inputs[0]


def _has_fusable_parts(name: str) -> bool:
    if name not in EXAMPLES or (EXAMPLES[name].requires and importlib.util.find_spec(EXAMPLES[name].requires) is None):
        return False
    return any(is_fusable(m) for m in _build(name)[0].modules())


@pytest.mark.parametrize("name", NAMES)
def test_every_registered_module_has_an_example(name):
    assert name in EXAMPLES, f"{name}: add an example to tests/nn/registry_examples.py so that it is tested"


@pytest.mark.parametrize("name", [n for n in NAMES if n in EXAMPLES])
def test_registry_contract(name):
    entry = lookup(name)
    params = list(entry.signature.parameters)
    module, x = _build(name)
    with torch.no_grad():
        y = module.eval()(x)
    outputs = y if isinstance(y, list) else [y]
    if not entry.takes_in_channels:  # keeps its input's channels
        assert all(o.shape[1] == x.shape[1] for o in outputs)
        return
    assert params[0] == "in_channels", f"{name}: the first parameter must be the input channels, got {params[0]}"
    per_map = module.out_channels if isinstance(module.out_channels, list) else [module.out_channels] * len(outputs)
    assert all(isinstance(c, int) and not isinstance(c, bool) for c in per_map), f"{name}: out_channels {per_map}"
    assert [o.shape[1] for o in outputs] == per_map, f"{name}: out_channels is not what it returns"
    if entry.out_channels is not None:
        bound = entry.signature.bind(*EXAMPLES[name].args, **EXAMPLES[name].kwargs).arguments
        assert module.out_channels == bound[entry.out_channels], f"{name}: out_channels ignores its width parameter"


@pytest.mark.parametrize("name", [n for n in NAMES if lookup(n).repeats is not None])
def test_repeats_parameter_sets_the_depth(name):
    entry, example = lookup(name), EXAMPLES[name]
    bound = entry.signature.bind(*example.args, **example.kwargs).arguments

    def n_params(repeats: int) -> int:
        module = entry.cls(**dict(bound, **{entry.repeats: repeats}))
        return sum(p.numel() for p in module.parameters())

    sizes = {repeats: n_params(repeats) for repeats in (1, 2, 3, 4, 8)}
    # more repeats never shrink a module and doubling them adds blocks (YOLOv6's BepC3 counts its repeats in single
    # blocks but stacks max(n // 2, 1) pairs: 1, 2 and 3 repeats all give one pair)
    assert list(sizes.values()) == sorted(sizes.values()) and sizes[1] < sizes[4] < sizes[8]


@pytest.mark.parametrize("name", [n for n in NAMES if _has_fusable_parts(n)])
def test_every_fusable_entry_fuses_exactly(name):
    module, x = _build(name)
    randomize_batchnorm(module, seed=3)
    with torch.no_grad():
        for p in module.parameters():  # non-trivial conv weights and biases too
            p.add_(torch.randn_like(p) * 0.1)
    module.eval()
    with torch.no_grad():
        expected = module(x)
        fused = fuse(copy.deepcopy(module))
        got = fused(x)
        assert relative_error(got, expected) <= 1e-5
        assert not has_batchnorm(fused) and not any(is_fusable(m) for m in fused.modules())
        state = {k: v.clone() for k, v in fused.state_dict().items()}
        again = fuse(fused)
        assert again is fused, "fusing a fused module must change nothing"
        assert all(torch.equal(state[k], v) for k, v in again.state_dict().items())
        assert relative_error(again(x), got) == 0.0


def test_custom_module_registers_with_one_decorator():
    @register(name="TestDoubleConv")
    class TestDoubleConv(nn.Module):
        def __init__(self, in_channels: int, out_channels: int):
            super().__init__()
            self.conv = nn.Conv2d(in_channels, out_channels, 1)
            self.out_channels = out_channels

        def forward(self, x):
            return self.conv(x) * 2

    entry = lookup("TestDoubleConv")
    assert entry.cls is TestDoubleConv and entry.out_channels == "out_channels" and entry.repeats is None
    assert "TestDoubleConv" in registered_names()
    register(name="TestDoubleConv")(TestDoubleConv)  # registering the same class again is harmless


def test_duplicate_name_for_another_class_is_refused():
    other = type("Other", (nn.Module,), {"__init__": lambda self, in_channels, out_channels: None})
    with pytest.raises(ValueError, match="'RepVGGBlock' is already registered for RepVGGBlock"):
        register(name="RepVGGBlock")(other)


def test_contract_parameters_must_exist():
    class NoWidth(nn.Module):
        def __init__(self, in_channels: int, channels: int):
            super().__init__()

    with pytest.raises(ValueError, match="NoWidth has no parameter 'out_channels'; parameters: \\['in_channels'"):
        register(NoWidth)
    with pytest.raises(ValueError, match="has no parameter 'depth'"):
        register(out_channels="channels", repeats="depth")(NoWidth)
    assert "NoWidth" not in registered_names()
