"""What the foreign-checkpoint reader makes of the objects a pickle describes: inert records, never instances."""

from __future__ import annotations

import pickle
from collections import OrderedDict
from typing import Any

import torch

__all__ = ["PickledObject", "UnsafePickle", "record_type"]


class UnsafePickle(pickle.UnpicklingError):
    """The pickle asks to call something outside the allow-list; nothing of it was run."""


class PickledObject:
    """An object of a foreign class, recorded without running any of its code.

    Attributes:
        class_path: ``module.QualName`` the pickle named, e.g. ``ultralytics.nn.modules.conv.Conv``.
        args: the arguments the pickle passed to ``__new__`` (usually none).
        state: what the pickle's ``BUILD`` set: for a ``torch.nn.Module`` its ``__dict__`` (``_parameters``,
            ``_buffers``, ``_modules``, plain attributes), ``None`` if it set nothing.
    """

    class_path = "?"

    def __new__(cls, *args: Any, **kwargs: Any) -> PickledObject:
        record = object.__new__(cls)
        record.args, record.state = args, None
        return record

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Only a REDUCE (a call) reaches __init__; NEWOBJ and copyreg._reconstructor use __new__ alone.
        raise UnsafePickle(f"refusing to call {self.class_path}: calling it could run code")

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __repr__(self) -> str:
        return f"<pickled {self.class_path}>"

    @property
    def name(self) -> str:
        """The class name without its module: ``Conv``."""
        return self.class_path.rpartition(".")[2]

    def get(self, attribute: str, default: Any = None) -> Any:
        """A plain attribute of the pickled object (an entry of its ``__dict__``)."""
        return self.state.get(attribute, default) if isinstance(self.state, dict) else default

    @property
    def children(self) -> dict[str, PickledObject]:
        """The submodules of a pickled ``nn.Module``, by attribute name, in registration order (``None`` left out)."""
        modules = self.get("_modules") or {}
        return {k: v for k, v in modules.items() if isinstance(v, PickledObject)}

    def state_dict(self, prefix: str = "") -> OrderedDict[str, torch.Tensor]:
        """What ``nn.Module.state_dict()`` would return for this pickled module: parameters and persistent buffers
        of it and every submodule, under dotted names."""
        out: OrderedDict[str, torch.Tensor] = OrderedDict()
        non_persistent = self.get("_non_persistent_buffers_set") or set()
        for name, tensor in (self.get("_parameters") or {}).items():
            if isinstance(tensor, torch.Tensor):
                out[prefix + name] = tensor
        for name, tensor in (self.get("_buffers") or {}).items():
            if isinstance(tensor, torch.Tensor) and name not in non_persistent:
                out[prefix + name] = tensor
        for name, child in self.children.items():
            out.update(child.state_dict(f"{prefix}{name}."))
        return out


_RECORD_TYPES: dict[str, type[PickledObject]] = {}


def record_type(path: str) -> type[PickledObject]:
    """One ``PickledObject`` subclass per class path (NEWOBJ needs a type to call ``__new__`` on)."""
    if path not in _RECORD_TYPES:
        _RECORD_TYPES[path] = type(path.rpartition(".")[2], (PickledObject,), {"class_path": path})
    return _RECORD_TYPES[path]
