"""The registry that maps the module names written in model YAMLs to classes.

Contract for a registered class (checked by ``tests/nn/test_registry.py`` over every entry):

* its first constructor parameter is the input channel count, inferred by the builder from the row's ``from``
  (an ``int``, or a ``list[int]`` when ``from`` lists several layers), unless the entry says
  ``takes_in_channels=False`` (for example ``nn.Upsample``), in which case the module keeps its channel count;
* instances expose ``out_channels`` (modules that do not take channels keep the input's): an ``int``, or a list of
  ints for a module that returns one map per level (``TimmBackbone``; a ``Select`` row picks one for later rows);
* the parameter named by ``out_channels`` (default ``"out_channels"``) is multiplied by the scale's width and
  capped by its max channels; ``None`` means the class has no width-scaled parameter;
* if ``repeats`` names a parameter, it receives the depth-scaled repeat count and the module is built once;
  otherwise the builder stacks that many copies, where copies after the first take the first's output channels
  and stride 1 (RepVGG's rule: only the first block of a stage downsamples).

Register a user module with ``@register`` (or ``@register(name=..., out_channels=..., repeats=...)``); it is then
usable by name in any model YAML, with no change to the parser. The built-in modules register themselves when
``yolorep.nn`` is imported; this module imports none of them.
"""

from __future__ import annotations

import difflib
import inspect
from dataclasses import dataclass
from typing import Callable, TypeVar

from yolorep.errors import ConfigError

__all__ = ["ModuleEntry", "lookup", "register", "register_alias", "registered_names"]

T = TypeVar("T", bound=type)


@dataclass(frozen=True)
class ModuleEntry:
    """How the builder constructs one registered class from a YAML row."""

    name: str
    cls: type
    out_channels: str | None = "out_channels"
    repeats: str | None = None
    takes_in_channels: bool = True

    @property
    def signature(self) -> inspect.Signature:
        return inspect.signature(self.cls)


_REGISTRY: dict[str, ModuleEntry] = {}


def _add(entry: ModuleEntry) -> None:
    existing = _REGISTRY.get(entry.name)
    if existing is not None and existing.cls is not entry.cls:
        raise ValueError(f"module name {entry.name!r} is already registered for {existing.cls.__qualname__}")
    params = entry.signature.parameters
    for arg in (entry.out_channels, entry.repeats):
        if arg is not None and arg not in params:
            raise ValueError(f"{entry.cls.__qualname__} has no parameter {arg!r}; parameters: {list(params)}")
    _REGISTRY[entry.name] = entry


def register(
    cls: T | None = None,
    *,
    name: str | None = None,
    out_channels: str | None = "out_channels",
    repeats: str | None = None,
) -> T | Callable[[T], T]:
    """Class decorator making ``cls`` usable in model YAMLs under ``name`` (default: the class name).

    Args:
        out_channels: constructor parameter that is width-scaled, or ``None``.
        repeats: constructor parameter that receives the depth-scaled repeat count, or ``None`` to stack copies.
    """

    def decorate(klass: T) -> T:
        _add(ModuleEntry(name or klass.__name__, klass, out_channels=out_channels, repeats=repeats))
        return klass

    return decorate(cls) if cls is not None else decorate


def register_alias(name: str, cls: type, *, out_channels: str | None = None, takes_in_channels: bool = False) -> None:
    """Register a class we do not own (a torch module) under the name YOLO users write, e.g. ``nn.Upsample``."""
    _add(ModuleEntry(name, cls, out_channels=out_channels, takes_in_channels=takes_in_channels))


def registered_names() -> list[str]:
    return sorted(_REGISTRY)


def lookup(name: str, where: str = "") -> ModuleEntry:
    """Return the entry for ``name``; an unknown name raises ConfigError suggesting the closest names."""
    entry = _REGISTRY.get(name)
    if entry is not None:
        return entry
    close = difflib.get_close_matches(name, list(_REGISTRY), n=3, cutoff=0.6)
    hint = (
        f"did you mean {' or '.join(repr(c) for c in close)}?"
        if close
        else "registered modules: " + ", ".join(sorted(_REGISTRY))
    )
    prefix = f"{where}: " if where else ""
    raise ConfigError(
        f"{prefix}unknown module {name!r}; {hint} (a custom module becomes usable with @yolorep.nn.register)"
    )
