"""Importing a YOLOv6 or ultralytics checkpoint as a yolorep checkpoint dict, in memory.

The file is read by :func:`~yolorep.foreign.unpickler.read_pickled` (nothing of it runs), its family is told from
the model's class path, and its tensors are renamed into one of the shipped model YAMLs. Every tensor and every
activation must find its place, with its shape: a file of any other architecture is refused in one line, never
half-loaded.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import pickle
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
import yaml

import yolorep.foreign.ultralytics as ultralytics
import yolorep.foreign.yolov6 as yolov6
from yolorep.assets import MODELS_DIR
from yolorep.config import load_model_spec
from yolorep.errors import CheckpointError
from yolorep.foreign.mapping import (
    ACT_KEY,
    expected_entries,
    mismatch,
    row_with_args,
    skeleton,
    translate,
    verify_activations,
)
from yolorep.foreign.unpickler import PickledObject, UnsafePickle, read_pickled
from yolorep.nn.builder import make_divisible
from yolorep.version import __version__

__all__ = ["EVAL_PROTOCOLS", "import_checkpoint"]

LOGGER = logging.getLogger(__name__)
_FORMAT_VERSION = 2  # of the yolorep checkpoint dict this returns (yolorep.engine.checkpoint.FORMAT_VERSION)

# The evaluation settings behind each family's published COCO numbers (docs/PRETRAINED.md): YOLOv6's
# tools/eval.py --reproduce_640_eval (square 640 x 640 letterbox) and ultralytics' `yolo val` (rectangular batches).
EVAL_PROTOCOLS: dict[str, dict[str, Any]] = {
    "yolov6": {"imgsz": 640, "conf": 0.03, "iou": 0.65, "max_det": 300, "rect": False},
    "ultralytics": {"imgsz": 640, "conf": 0.001, "iou": 0.7, "max_det": 300, "rect": True},
}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _model_record(content: Any, path: Path) -> PickledObject:
    """The model a foreign checkpoint holds: its EMA when there is one (what both projects evaluate), else model."""
    if isinstance(content, dict):
        for key in ("ema", "model"):
            if isinstance(content.get(key), PickledObject):
                return content[key]
    found = type(content).__name__ if not isinstance(content, PickledObject) else content.class_path
    raise CheckpointError(
        f"{path}: refused: not a weights-only yolorep checkpoint, nor a YOLOv6 or ultralytics one (it holds "
        f"{found}); yolorep reads its own checkpoints and imports YOLOv6 v3.0, YOLOv8 and YOLO11 detection files"
    )


def _candidates(model: PickledObject) -> tuple[str, list[tuple[str, str | None, dict[str, Any]]]]:
    """The family and the configs (YAML name, scale, mapping) the file may be."""
    if yolov6.is_yolov6(model):
        yolov6.check_trainable(model)
        head = yolov6.head_settings(model)
        configs = []
        for yaml_name, scale in yolov6.candidates(model):
            cfg = yaml.safe_load((MODELS_DIR / yaml_name).read_text())
            cfg["nc"] = head["nc"]
            row_with_args(cfg, len(cfg["backbone"]) + len(cfg["head"]) - 1, nc="nc", reg_max=head["reg_max"])
            configs.append((yaml_name, scale, cfg))
        return "yolov6", configs
    if ultralytics.is_ultralytics(model):
        yaml_name = ultralytics.family_yaml(model)
        cfg = yaml.safe_load((MODELS_DIR / yaml_name).read_text())
        ultralytics.configure(model, cfg)
        return "ultralytics", [
            (yaml_name, s, copy.deepcopy(cfg)) for s in ultralytics.scales(model, list(cfg["scales"]))
        ]
    raise CheckpointError(
        f"a pickled {model.class_path}; yolorep imports YOLOv6 v3.0 (yolov6.*) and ultralytics YOLOv8 / YOLO11 "
        "(ultralytics.*) detection models"
    )


def _first_width(tensors: dict[str, Any]) -> int | None:
    """Output channels of the first layer's first convolution in the file."""
    for key, value in tensors.items():
        if key.startswith("layers.0.") and isinstance(value, torch.Tensor) and value.ndim == 4:
            return int(value.shape[0])
    return None


def _may_match(spec: Any, width: int | None) -> bool:
    """Cheap pre-check before building a candidate: its first layer's width is the file's."""
    first = spec.layers[0]
    requested = first.args[0] if first.args else first.kwargs.get("out_channels")
    return (
        width is None
        or not isinstance(requested, int)
        or width == make_divisible(min(requested, spec.max_channels) * spec.width)
    )


def _match(model: PickledObject, family: str, configs: list) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """The first config whose every tensor shape and activation the file fills; (spec, cfg, tensors)."""
    rules, key = (yolov6.RULES, None) if family == "yolov6" else (ultralytics.RULES, ultralytics.rule_key)
    tensors = translate(model, rules, key) if key else translate(model, rules)
    width, reports = _first_width(tensors), []
    for yaml_name, scale, cfg in configs:
        spec = load_model_spec(cfg, scale=scale, name=Path(yaml_name).stem)
        label = f"{yaml_name}{f' scale {scale}' if scale else ''}"
        if not _may_match(spec, width):
            reports.append(f"{label}: its first layer is not {width} channels wide")
            continue
        built = skeleton(spec)
        problem = mismatch(expected_entries(built), tensors) or verify_activations(built, tensors)
        if not problem:
            return spec, cfg, tensors
        reports.append(f"{label}: {problem}")
    closest = min(reports, key=lambda r: ("first layer" in r, len(r)))
    raise CheckpointError(f"a {family} model of an architecture yolorep does not know; closest: {closest}")


def _batchnorm_settings(model: PickledObject) -> dict[str, float]:
    """The one epsilon and momentum the file's BatchNorms use (both projects set 1e-3 and 0.03 on every one)."""
    found: dict[str, set[float]] = {"bn_eps": set(), "bn_momentum": set()}
    stack = [model]
    while stack:
        record = stack.pop()
        if record.name in ("BatchNorm2d", "SyncBatchNorm"):
            found["bn_eps"].add(float(record.get("eps", 1e-5)))
            momentum = record.get("momentum")
            found["bn_momentum"].add(float(momentum) if momentum is not None else 0.1)
        stack.extend(record.children.values())
    if len(found["bn_eps"]) > 1:
        raise CheckpointError(f"BatchNorms with different epsilons {sorted(found['bn_eps'])}; yolorep sets one")
    return {key: min(values) for key, values in found.items() if values}


def _convert(model: PickledObject, path: Path) -> dict[str, Any]:
    family, configs = _candidates(model)
    for _, _, cfg in configs:
        cfg.update(_batchnorm_settings(model))
    spec, cfg, tensors = _match(model, family, configs)
    # copy_ into new tensors: 20x faster than .to() on tensors viewing a file's bytes
    state = {
        k: torch.empty(v.shape, dtype=torch.float32 if v.is_floating_point() else v.dtype).copy_(v)
        for k, v in tensors.items()
        if not k.endswith(ACT_KEY)
    }
    nc = spec.nc
    names = yolov6.names(nc) if family == "yolov6" else ultralytics.names(model, nc)
    return {
        "format_version": _FORMAT_VERSION,
        "model_cfg": cfg,
        "model_name": spec.name,
        "scale": spec.scale,
        "names": names,
        "fused": False,
        "state_dict": state,
        "versions": {"yolorep": __version__, "torch": str(torch.__version__)},
        "eval_args": {k: v for k, v in EVAL_PROTOCOLS[family].items() if k != "rect"},
        "source": {"family": family, "architecture": spec.name + (f"-{spec.scale}" if spec.scale else "")},
    }


@lru_cache(maxsize=2)
def _import_cached(path: str, size: int, mtime_ns: int) -> dict[str, Any]:
    file = Path(path)
    try:
        content = read_pickled(file)
    except UnsafePickle as err:
        raise CheckpointError(
            f"{file}: refused: not a weights-only yolorep checkpoint, and its pickle asks for code ({err}); nothing "
            "of it was run. Import only files whose origin you trust"
        ) from None
    except pickle.UnpicklingError as err:
        raise CheckpointError(f"{file}: not a readable checkpoint ({err}); the file is truncated or damaged") from None
    model = _model_record(content, file)
    try:
        checkpoint = _convert(model, file)
    except CheckpointError as err:
        raise CheckpointError(f"{file}: {err}") from None
    imgsz = ultralytics.image_size(content, model) if checkpoint["source"]["family"] == "ultralytics" else 640
    checkpoint["source"].update(file=file.name, sha256=_sha256(file), imported_by=f"yolorep {__version__}")
    checkpoint["imgsz"] = imgsz
    checkpoint["train_args"] = {"imgsz": imgsz}  # where yolorep's commands look for a model's image size
    checkpoint["eval_args"]["imgsz"] = imgsz
    return checkpoint


def import_checkpoint(path: str | Path) -> dict[str, Any]:
    """A YOLOv6 or ultralytics checkpoint as a yolorep checkpoint dict (``model_cfg``, ``state_dict`` in fp32,
    ``names``, ``source``: family, architecture, file name and sha256; ``imgsz``; ``eval_args``: the family's
    evaluation protocol). The last two files imported are kept in memory, so a command that reads its weights
    twice imports them once.

    Raises:
        CheckpointError: the file asks to run code, is damaged, or holds an architecture yolorep does not know.
    """
    file = Path(path)
    stat = file.stat()
    checkpoint = _import_cached(str(file.resolve()), stat.st_size, stat.st_mtime_ns)
    LOGGER.info("%s: imported %s %s (%d classes)", file, checkpoint["source"]["family"],
                checkpoint["source"]["architecture"], len(checkpoint["names"]))  # fmt: skip
    # the tensors are shared (readers copy them into models); the mappings are the caller's to change
    return {**checkpoint, **{k: copy.deepcopy(checkpoint[k]) for k in ("model_cfg", "names", "source", "eval_args",
                                                                       "train_args")}}  # fmt: skip
