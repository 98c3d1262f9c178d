"""Turn a ``ModelSpec`` into modules: infer input channels, bind YAML args to constructor signatures, scale."""

from __future__ import annotations

import inspect
import math
import os
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from yolorep.config import LayerInputs, LayerSpec, ModelSpec
from yolorep.errors import ConfigError
from yolorep.nn.registry import ModuleEntry, lookup

__all__ = ["BuiltLayers", "build_layers", "make_divisible"]


@dataclass
class BuiltLayers:
    """The layers of a model and how they are wired."""

    layers: nn.ModuleList
    inputs: list[LayerInputs]  # absolute indices each layer reads; -1 is the input image
    saved: set[int]  # layers whose outputs a later non-adjacent layer reads
    channels: list[int]  # output channels of each layer


def make_divisible(value: float, divisor: int = 8) -> int:
    return max(int(math.ceil(value / divisor) * divisor), divisor)


def _memory_bytes() -> float:
    """Physical memory of this machine (infinite where the OS does not say)."""
    try:
        return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return math.inf


def _weight_bytes(build: Callable[[], nn.Module]) -> int:
    """Bytes of the parameters and buffers ``build()`` would allocate, measured on the meta device (nothing is
    allocated); 0 when the module cannot be built there (the real build then reports its own error)."""
    try:
        with torch.device("meta"):
            module = build()
    except Exception:
        return 0
    return sum(t.numel() * t.element_size() for t in (*module.parameters(), *module.buffers()))


def build_layers(spec: ModelSpec, in_channels: int = 3) -> BuiltLayers:
    """Build every row of ``spec``, refusing (before allocating) a model whose weights exceed the machine's memory."""
    layers, channels, saved = nn.ModuleList(), [], set()
    memory, needed = _memory_bytes(), 0
    for layer in spec.layers:
        sources = layer.inputs if isinstance(layer.inputs, tuple) else (layer.inputs,)
        saved.update(s for s in sources if s not in (-1, layer.index - 1))
        c_ins = [channels[s] if s >= 0 else in_channels for s in sources]
        c_in = c_ins if isinstance(layer.inputs, tuple) else c_ins[0]
        needed += _weight_bytes(lambda layer=layer, c_in=c_in: _build_one(layer, spec, c_in))
        if needed > memory:
            raise ConfigError(
                f"{layer.where}: the weights up to this row need {needed / 1e9:,.1f} GB, more than this machine's "
                f"{memory / 1e9:,.1f} GB of memory; lower the scale's width or max_channels"
            )
        module = _build_one(layer, spec, c_in)
        layers.append(module)
        channels.append(getattr(module, "out_channels", None) or _passthrough_channels(c_ins, layer))
    return BuiltLayers(layers, [layer.inputs for layer in spec.layers], saved, channels)


def _passthrough_channels(c_in: list[int], layer: LayerSpec) -> int:
    if len(c_in) != 1:
        raise ConfigError(f"{layer.where}: module reads several layers but does not report out_channels")
    return c_in[0]


def _build_one(layer: LayerSpec, spec: ModelSpec, c_in: int | list[int]) -> nn.Module:
    entry = lookup(layer.module, where=layer.where)
    bound = _bind(entry, layer, c_in)
    if entry.out_channels is not None and entry.out_channels in bound.arguments:
        requested = bound.arguments[entry.out_channels]
        if isinstance(requested, int) and not isinstance(requested, bool):
            bound.arguments[entry.out_channels] = make_divisible(min(requested, spec.max_channels) * spec.width)
    repeats = max(round(layer.repeats * spec.depth), 1) if layer.repeats > 1 else 1
    if entry.repeats is not None:
        bound.arguments[entry.repeats] = repeats
        return _construct(entry, bound, layer)
    first = _construct(entry, bound, layer)
    if repeats == 1:
        return first
    copies = [first]
    params = list(entry.signature.parameters)
    for _ in range(repeats - 1):
        if entry.takes_in_channels:
            bound.arguments[params[0]] = first.out_channels
        if "stride" in params:
            bound.arguments["stride"] = 1
        copies.append(_construct(entry, bound, layer))
    stack = nn.Sequential(*copies)
    stack.out_channels = getattr(first, "out_channels", None)
    return stack


def _bind(entry: ModuleEntry, layer: LayerSpec, c_in: int | list[int]) -> inspect.BoundArguments:
    leading = (c_in,) if entry.takes_in_channels else ()
    try:
        bound = entry.signature.bind(*leading, *layer.args, **layer.kwargs)
    except TypeError as err:
        written = list(layer.args) if layer.args or not layer.kwargs else layer.kwargs
        inferred = " (the first parameter, the input channels, is inferred from 'from')" if leading else ""
        raise ConfigError(
            f"{layer.where}: arguments {written!r} do not fit {entry.name}({_describe(entry)}){inferred}: {err}"
        ) from None
    _check_types(entry, bound, layer)
    return bound


def _check_types(entry: ModuleEntry, bound: inspect.BoundArguments, layer: LayerSpec) -> None:
    """YAML values for parameters annotated ``int`` or ``float`` must be numbers of that kind, and the width-scaled
    channel count at least 1: caught here, they would fail deep inside torch with a message naming nothing."""
    for name, value in bound.arguments.items():
        annotation = entry.signature.parameters[name].annotation
        kind = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", "")
        is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if (kind == "int" and not (is_number and float(value).is_integer())) or (kind == "float" and not is_number):
            noun = "an integer" if kind == "int" else "a number"
            raise ConfigError(f"{layer.where}: {name}={value!r} must be {noun}; {entry.name}({_describe(entry)})")
    channels = bound.arguments.get(entry.out_channels) if entry.out_channels else None
    if isinstance(channels, (int, float)) and channels < 1:
        raise ConfigError(f"{layer.where}: {entry.out_channels}={channels} must be at least 1")


def _describe(entry: ModuleEntry) -> str:
    """The constructor's parameters as a user writes them, without annotations."""
    return ", ".join(
        name if p.default is inspect.Parameter.empty else f"{name}={p.default!r}"
        for name, p in entry.signature.parameters.items()
    )


def _construct(entry: ModuleEntry, bound: inspect.BoundArguments, layer: LayerSpec) -> nn.Module:
    try:
        return entry.cls(*bound.args, **bound.kwargs)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{layer.where}: cannot build {entry.name} with {dict(bound.arguments)}: {err}") from None
