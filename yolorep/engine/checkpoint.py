"""Checkpoints: plain config + state dict + metadata, written atomically, read with ``weights_only=True``.

A checkpoint never holds a pickled module, so loading an untrusted file cannot run code. A fused checkpoint is
rebuilt by building the model from its config, fusing it and loading the fused state dict.

Format 2 stores the model's name and scale beside its YAML mapping (format 1 wrote them into the mapping) and no
longer stores the head's strides, which the model measures when it is built; format 1 files are read as well.
"""

from __future__ import annotations

import io
import pickle
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from yolorep.atomic import atomic_path
from yolorep.engine.metadata import ModelMetadata, eval_args_problem, legacy_metadata, metadata_of
from yolorep.errors import CheckpointError
from yolorep.foreign import import_checkpoint
from yolorep.nn.model import DetectionModel, build_model
from yolorep.nn.modules.timm_backbone import without_pretrained_weights
from yolorep.version import __version__

__all__ = ["FORMAT_VERSION", "load_checkpoint", "read_checkpoint", "save_checkpoint", "write_atomic"]

FORMAT_VERSION = 2
_PLAIN = (str, int, float, bool, type(None))


def _check_plain(value: Any, where: str) -> None:
    """Reject anything ``torch.load(weights_only=True)`` could not read back (modules, arbitrary objects)."""
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, (str, int)):
                raise TypeError(f"{where}: checkpoint keys must be str or int, got {type(key).__name__}")
            _check_plain(item, f"{where}.{key}")
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_plain(item, f"{where}[{i}]")
    elif type(value) not in _PLAIN and not isinstance(value, torch.Tensor):
        raise TypeError(
            f"{where}: {type(value).__name__} cannot be stored in a weights-only checkpoint; "
            "store state dicts, tensors, numbers, strings, lists and dicts"
        )


def write_atomic(obj: dict[str, Any], path: str | Path) -> Path:
    """Serialize in memory, write to a temporary file beside ``path``, then rename: a crash never leaves a torn
    file, and a full disk raises ``OSError`` naming the file (``torch.save`` writing to disk itself raises a
    bare ``RuntimeError`` instead)."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(buffer.getbuffer())
    return Path(path)


def save_checkpoint(model: DetectionModel, path: str | Path, **meta: Any) -> Path:
    """Save ``model`` (unwrapped from DDP if needed) with ``meta`` (epoch, metrics, optimizer state, ...)."""
    model = getattr(model, "module", model)
    checkpoint = {
        "format_version": FORMAT_VERSION,
        "metadata": _record(model, meta).to_strings(),
        "model_cfg": model.cfg,
        "model_name": model.spec.name,
        "scale": model.spec.scale,
        "names": list(model.names),
        "fused": model.is_fused,
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "versions": {"yolorep": __version__, "torch": str(torch.__version__)},
        **meta,
    }
    _check_plain(checkpoint, "checkpoint")
    return write_atomic(checkpoint, path)


def _record(model: DetectionModel, meta: dict[str, Any]) -> ModelMetadata:
    """The model's metadata with what ``meta`` says of its training (image size, data set, evaluation settings)."""
    train_args = meta.get("train_args") if isinstance(meta.get("train_args"), dict) else {}
    updates: dict[str, Any] = {"batch": 1, "dynamic": True}
    if train_args.get("imgsz"):
        updates["imgsz"] = int(train_args["imgsz"])
    if train_args.get("data"):
        updates["data"] = str(train_args["data"])
    if "single_cls" in train_args:
        updates["single_cls"] = bool(train_args["single_cls"])
    if isinstance(meta.get("eval_args"), dict):
        updates["eval_args"] = dict(meta["eval_args"])
    return replace(metadata_of(model), **updates)


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint dict safely and check that it is a yolorep checkpoint.

    A YOLOv6 or ultralytics checkpoint (a pickled module tree, which ``weights_only`` refuses) is imported in memory
    (:func:`yolorep.foreign.import_checkpoint`), so every command that reads weights accepts those files too."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found; pass the path of a .pt file written by yolorep")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if "global" in str(err).lower():  # the pickle names a function or class: a YOLOv6/ultralytics module tree?
            return import_checkpoint(path)  # read without running anything; refused in one line otherwise
        raise CheckpointError(f"{path}: not a readable checkpoint (a corrupt or foreign file); pass a .pt file "
                              "written by yolorep (weights/last.pt or best.pt of a run)") from None  # fmt: skip
    except Exception as err:  # a random or truncated file makes torch.load fail in many ways (IndexError, ...)
        raise CheckpointError(
            f"{path}: not a readable checkpoint ({type(err).__name__}: {str(err)[:120]}); pass a .pt file written by "
            "yolorep (weights/last.pt or best.pt of a run)"
        ) from None
    _check_fields(checkpoint, path)
    if checkpoint["format_version"] > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format {checkpoint['format_version']} is newer than this yolorep reads "
            f"({FORMAT_VERSION}); upgrade yolorep"
        )
    return _upgrade(checkpoint)


# field -> (accepted types, what it should hold); None is accepted for the optional ones
_FIELDS: dict[str, tuple[tuple[type, ...], str]] = {
    "format_version": ((int,), "an integer"),
    "model_cfg": ((dict,), "the model YAML as a mapping"),
    "state_dict": ((dict,), "a mapping of tensor names to tensors"),
    "names": ((list,), "a list of class names"),
    "fused": ((bool,), "true or false"),
    "scale": ((str,), "a scale name"),
    "model_name": ((str,), "a model name"),
    "train_state": ((dict,), "a mapping"),
    "train_args": ((dict,), "a mapping"),
    "epoch": ((int,), "an integer"),
    "metadata": ((dict,), "a mapping of strings"),
    "eval_args": ((dict,), "a mapping"),
}
# train_args fields read outside training (validation, export), and their types
_TRAIN_ARGS: dict[str, tuple[tuple[type, ...], str]] = {
    "imgsz": ((int,), "an integer"),
    "data": ((str,), "a data YAML path"),
    "single_cls": ((bool, int), "true or false"),
}
_REQUIRED = ("format_version", "model_cfg", "state_dict")


def _check_fields(checkpoint: Any, path: Path) -> None:
    """The fields yolorep reads exist (where required) and have the types it expects."""
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f"{path}: not a yolorep checkpoint (it holds a {type(checkpoint).__name__})")
    missing = [k for k in _REQUIRED if k not in checkpoint]
    if missing:
        raise CheckpointError(f"{path}: not a yolorep checkpoint (missing {', '.join(missing)})")
    for key, (types, meaning) in _FIELDS.items():
        value = checkpoint.get(key)
        wrong_bool = isinstance(value, bool) and bool not in types
        if (value is None and key in _REQUIRED) or (value is not None and (not isinstance(value, types) or wrong_bool)):
            got = type(value).__name__
            raise CheckpointError(f"{path}: field {key!r} should be {meaning}, got {got}; the file is corrupt")
    state = checkpoint["state_dict"]
    if not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise CheckpointError(f"{path}: state_dict holds entries that are not named tensors; the file is corrupt")
    names = checkpoint.get("names")
    if names is not None and not all(isinstance(n, str) for n in names):
        raise CheckpointError(f"{path}: field 'names' should be a list of class names; the file is corrupt")
    train_args = checkpoint.get("train_args") or {}
    for key, (types, meaning) in _TRAIN_ARGS.items():
        value = train_args.get(key)
        if value is not None and (not isinstance(value, types) or (isinstance(value, bool) and bool not in types)):
            raise CheckpointError(f"{path}: field 'train_args.{key}' should be {meaning}; the file is corrupt")
    problem = eval_args_problem(checkpoint.get("eval_args"))
    if problem:
        raise CheckpointError(f"{path}: field {problem}; the file is corrupt")


def _upgrade(checkpoint: dict[str, Any]) -> dict[str, Any]:
    """Read a format 1 checkpoint as format 2: name and scale out of the config, head strides out of the weights."""
    if checkpoint["format_version"] >= 2:
        return checkpoint
    cfg = dict(checkpoint["model_cfg"])
    scale, yaml_file = cfg.pop("scale", None), cfg.pop("yaml_file", "model.yaml")
    upgraded = dict(checkpoint, format_version=2, model_cfg=cfg, model_name=Path(yaml_file).stem, scale=scale)
    upgraded["state_dict"] = _without_head_strides(checkpoint["state_dict"])
    train_state = checkpoint.get("train_state")
    if isinstance(train_state, dict) and "model" in train_state:
        upgraded["train_state"] = dict(train_state, model=_without_head_strides(train_state["model"]))
    return upgraded


def _without_head_strides(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v for k, v in state_dict.items() if not k.endswith(".strides")}


def load_state_dict_strict(model: torch.nn.Module, state_dict: dict[str, torch.Tensor], where: str) -> None:
    """Load strictly; on mismatch raise CheckpointError listing missing, unexpected and mis-shaped keys."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    shapes = [
        f"{k}: checkpoint {tuple(state_dict[k].shape)} vs model {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state_dict and state_dict[k].shape != v.shape
    ]
    if missing or unexpected or shapes:
        parts = []
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", shapes)):
            if keys:
                shown = ", ".join(keys[:8]) + (f" ... ({len(keys)} in all)" if len(keys) > 8 else "")
                parts.append(f"{label}: {shown}")
        raise CheckpointError(f"{where}: state dict does not match the model config; " + "; ".join(parts))
    model.load_state_dict(state_dict, strict=True)


def load_checkpoint(path: str | Path) -> DetectionModel:
    """Rebuild the model in a checkpoint (fused if it was saved fused) on the CPU, in eval mode.

    Its metadata record (names, image size, data, evaluation settings ...) is ``model.metadata`` (read it with
    ``metadata_of(model)``); everything else the checkpoint holds (epoch, metrics, train_args, ...) is
    ``model.meta``.
    """
    checkpoint = read_checkpoint(path)
    cfg, scale, name = checkpoint["model_cfg"], checkpoint.get("scale"), checkpoint.get("model_name")
    try:
        with without_pretrained_weights():  # the checkpoint holds the weights: nothing to download
            model = build_model(cfg, scale=scale, name=name)
    except Exception as err:
        raise CheckpointError(f"{path}: cannot rebuild the model from the stored config: {err}") from None
    if checkpoint.get("fused"):
        model.fuse()
    load_state_dict_strict(model, checkpoint["state_dict"], str(path))
    names = checkpoint.get("names") or model.names
    if len(names) != model.nc:
        raise CheckpointError(f"{path}: {len(names)} class names for a {model.nc}-class model; the file is corrupt")
    model.names = list(names)
    stored = checkpoint.get("metadata")
    model.metadata = (
        ModelMetadata.from_strings(stored, str(path)) if stored else legacy_metadata(checkpoint, model, str(path))
    )
    model.meta = {k: v for k, v in checkpoint.items() if k not in ("state_dict", "model_cfg")}
    return model.eval()
