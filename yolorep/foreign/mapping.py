"""From a pickled foreign module tree to the state dict of a yolorep model built from a YAML.

Each family gives rename rules per foreign class: ``(pattern, replacement)`` pairs applied, with ``re.sub`` at the
start of a key, to the keys of that module's own state dict, after its submodules' rules have rewritten theirs
(bottom-up). A replacement of ``None`` drops the key (branches used only in training, constant buffers). Keys
of activation modules, which hold no tensor, are carried as ``<path>.__act__`` entries holding the activation's
class name, so that the activations are checked against the built model too.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Union

import torch
from torch import nn

from yolorep.config import ModelSpec
from yolorep.nn.builder import build_layers
from yolorep.nn.registry import lookup

__all__ = [
    "ACT_KEY",
    "Rules",
    "expected_entries",
    "mismatch",
    "row_with_args",
    "skeleton",
    "translate",
    "verify_activations",
]

ACT_KEY = "__act__"
Replacement = Union[str, Callable[[re.Match], str], None]
Rules = dict[str, list[tuple[str, Replacement]]]  # class path -> [(pattern, replacement), ...]
_ACTIVATION_MODULES = ("torch.nn.modules.activation.", "torch.nn.modules.linear.Identity")


def _is_activation(record: Any) -> bool:
    return any(record.class_path.startswith(prefix) for prefix in _ACTIVATION_MODULES)


def translate(record: Any, rules: Rules, rule_key: Callable[[Any], str] = lambda r: r.class_path) -> dict[str, Any]:
    """The renamed state dict of a pickled module tree (tensors, plus ``.__act__`` entries naming activations);
    ``rule_key(record)`` picks a module's rules (its class path by default)."""
    own: dict[str, Any] = {}
    non_persistent = record.get("_non_persistent_buffers_set") or set()
    for group in ("_parameters", "_buffers"):
        for name, tensor in (record.get(group) or {}).items():
            if isinstance(tensor, torch.Tensor) and name not in non_persistent:
                own[name] = tensor
    for name, child in record.children.items():
        if _is_activation(child):
            own[f"{name}.{ACT_KEY}"] = child.name
            continue
        for key, value in translate(child, rules, rule_key).items():
            own[f"{name}.{key}"] = value
    return _apply(own, rules.get(rule_key(record), []))


def _apply(entries: dict[str, Any], rules: list[tuple[str, Replacement]]) -> dict[str, Any]:
    if not rules:
        return entries
    out: dict[str, Any] = {}
    for key, value in entries.items():
        for pattern, replacement in rules:
            match = re.match(pattern, key)
            if match:
                if replacement is None:
                    break
                new = replacement(match) if callable(replacement) else match.expand(replacement)
                out[new + key[match.end() :]] = value
                break
        else:
            out[key] = value
    return out


def skeleton(spec: ModelSpec) -> nn.Module:
    """The layers ``spec`` builds, on the meta device (no memory, no stride probe), under ``.layers``."""
    holder = nn.Module()
    with torch.device("meta"):
        holder.layers = build_layers(spec).layers
    return holder


def expected_entries(model: nn.Module) -> dict[str, tuple[int, ...]]:
    """Tensor names and shapes of a model's state dict."""
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def mismatch(expected: dict[str, tuple[int, ...]], given: dict[str, Any]) -> str:
    """What differs between a model's tensor shapes and the translated tensors ("" when they match)."""
    tensors = {k: v for k, v in given.items() if not k.endswith(ACT_KEY)}
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    shapes = [
        f"{k}: file {tuple(tensors[k].shape)} vs model {shape}"
        for k, shape in expected.items()
        if k in tensors and tuple(tensors[k].shape) != shape
    ]
    parts = []
    for label, keys in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", shapes)):
        if keys:
            parts.append(f"{label}: " + ", ".join(keys[:4]) + (f" ... ({len(keys)} in all)" if len(keys) > 4 else ""))
    return "; ".join(parts)


def verify_activations(model: nn.Module, given: dict[str, Any]) -> str:
    """Activations of the file that the built model does not have at the same place ("" when all agree)."""
    wrong = []
    for key, name in given.items():
        if not key.endswith(ACT_KEY):
            continue
        path = key[: -len(ACT_KEY) - 1]
        try:
            ours = type(model.get_submodule(path)).__name__
        except AttributeError:
            ours = "nothing"
        if ours != name:
            wrong.append(f"{path}: file {name} vs model {ours}")
    return "; ".join(wrong[:4]) + (f" ... ({len(wrong)} in all)" if len(wrong) > 4 else "")


def row_with_args(cfg: dict[str, Any], index: int, **values: Any) -> None:
    """Set named arguments of row ``index`` (backbone rows first, then head rows) of a model config, in place;
    positional arguments become named ones so that the row reads the same."""
    rows = cfg["backbone"] + cfg["head"]
    row = rows[index]
    args = row[3] if len(row) > 3 else []
    entry = lookup(row[2])
    names = list(entry.signature.parameters)[1 if entry.takes_in_channels else 0 :]
    named = dict(args) if isinstance(args, dict) else dict(zip(names, args))
    named.update(values)
    row[3:] = [named]
