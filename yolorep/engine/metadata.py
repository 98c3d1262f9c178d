"""The metadata an exported model carries, so that it runs and is scored with nothing but the file.

Every format stores the same string -> string mapping: ONNX as ``metadata_props``, TorchScript as the JSON file
``config.txt`` among its extra files, OpenVINO IR in ``rt_info`` under ``yolorep``. The key ``yolorep`` (the
version that wrote the file) marks a yolorep export; a file without it is refused with one line.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import nn

from yolorep.errors import YolorepError
from yolorep.version import __version__

__all__ = [
    "EVAL_ARGS",
    "PRECISIONS",
    "ModelMetadata",
    "eval_args_problem",
    "legacy_metadata",
    "metadata_of",
    "metadata_problem",
    "strings_from_json",
]

PRECISIONS = ("fp32", "fp16", "bf16", "int8")


@dataclass(frozen=True)
class ModelMetadata:
    """What a runtime needs to know about a detector besides its weights.

    Attributes:
        names: class names; the output has ``4 + len(names)`` columns.
        stride: the largest head stride; input sides must be multiples of it.
        imgsz: the square input side the model was exported (or trained) at; ``None`` when unknown.
        batch: the exported batch size (fixed unless ``dynamic``).
        dynamic: batch, height and width may change; otherwise the input is ``[batch, 3, imgsz, imgsz]``.
        fused: the re-parameterizable blocks were fused before export.
        precision: ``fp32``, ``fp16``, ``bf16`` or ``int8`` (quantized weights and activations): what the export was
            checked in and what its runtime computes in where the CPU has the units (else fp32).
        precision_reason: why that precision was chosen (``this CPU has AMX``, measured latency and mAP ...).
        model: model name and scale, e.g. ``yolorep-n``.
        version: the yolorep version that wrote the file.
        task: ``detect``.
        eval_args: the checkpoint's evaluation settings (conf, iou, max_det, imgsz), reused by ``yolorep val``.
        calibration: for INT8, which images calibrated the quantization.
        data: the dataset YAML the model was trained on (``yolorep val`` uses it when no ``--data`` is given).
        single_cls: trained with every class merged into one (``--single-cls``).
        scale: the model's scale (``n``, ``s``, ...), empty when its YAML has none.
        family: the architecture family (``yolorep``; an imported model's source family).
        source: where the weights came from (an imported file and its sha256), empty for yolorep's own.
    """

    names: tuple[str, ...]
    stride: int
    imgsz: int | None = None
    batch: int = 1
    dynamic: bool = True
    fused: bool = True
    precision: str = "fp32"
    precision_reason: str = ""
    model: str = ""
    version: str = __version__
    task: str = "detect"
    eval_args: dict[str, Any] | None = None
    calibration: str = ""
    data: str = ""
    single_cls: bool = False
    scale: str = ""
    family: str = ""
    source: str = ""

    def with_precision(self, precision: str, calibration: str = "", reason: str = "") -> ModelMetadata:
        return replace(self, precision=precision, calibration=calibration, precision_reason=reason)

    def to_strings(self) -> dict[str, str]:
        """The mapping written into an exported file (every value a string; JSON where it is not one)."""
        strings = {
            "yolorep": self.version,
            "task": self.task,
            "model": self.model,
            "names": json.dumps(list(self.names)),
            "stride": str(self.stride),
            "imgsz": json.dumps([self.imgsz, self.imgsz]),
            "batch": str(self.batch),
            "dynamic": json.dumps(self.dynamic),
            "fused": json.dumps(self.fused),
            "precision": self.precision,
            "eval_args": json.dumps(self.eval_args or {}),
        }
        if self.precision_reason:
            strings["precision_reason"] = self.precision_reason
        if self.calibration:
            strings["calibration"] = self.calibration
        if self.data:
            strings["data"] = self.data
        if self.single_cls:
            strings["single_cls"] = "true"
        strings.update({key: getattr(self, key) for key in ("scale", "family", "source") if getattr(self, key)})
        return strings

    def __post_init__(self) -> None:
        problem = metadata_problem(self)
        if problem:
            raise ValueError(problem)

    @classmethod
    def checked(cls, where: str, **fields: Any) -> ModelMetadata:
        """Build from untrusted values (a file's metadata), checked by type and range.

        Raises:
            YolorepError: a value is missing, of the wrong type or out of range; the message names the field and
                what it should hold, never the value itself.
        """
        try:
            return cls(**fields)
        except (TypeError, ValueError) as err:
            raise YolorepError(
                f"{where}: malformed yolorep metadata ({err}); the file was altered or not written by yolorep "
                f"{__version__}: export or save the model again"
            ) from None

    @classmethod
    def from_strings(cls, strings: Mapping[str, str], where: str) -> ModelMetadata:
        """Parse what ``to_strings`` wrote (files from before ``fused``/``precision`` existed read as fused fp32
        or fp16 from their ``half`` flag). Every value is untrusted: checked by type and range, never echoed.

        Raises:
            YolorepError: ``where`` holds no yolorep metadata, or a value is malformed.
        """
        if "yolorep" not in strings:
            raise YolorepError(
                f"{where}: no yolorep metadata (class names, image size, stride) in this file; it was not written "
                "by yolorep export. Export the model with `yolorep export --weights best.pt --format ...`"
            )
        half = _parsed(strings, "half", "false", where)
        imgsz = _parsed(strings, "imgsz", "null", where)
        if isinstance(imgsz, list) and len(imgsz) == 2 and imgsz[0] == imgsz[1]:
            imgsz = imgsz[0]
        names = _parsed(strings, "names", None, where)
        return cls.checked(
            where,
            names=tuple(names) if isinstance(names, list) else names,
            stride=_parsed(strings, "stride", None, where),
            imgsz=imgsz,
            batch=_parsed(strings, "batch", "1", where),
            dynamic=_parsed(strings, "dynamic", "false", where),
            fused=_parsed(strings, "fused", "true", where),
            precision=strings.get("precision", "fp16" if half is True else "fp32"),
            precision_reason=strings.get("precision_reason", ""),
            model=strings.get("model", ""),
            version=strings["yolorep"],
            task=strings.get("task", "detect"),
            eval_args=_parsed(strings, "eval_args", "{}", where) or None,
            calibration=strings.get("calibration", ""),
            data=strings.get("data", ""),
            single_cls=_parsed(strings, "single_cls", "false", where),
            scale=strings.get("scale", ""),
            family=strings.get("family", ""),
            source=strings.get("source", ""),
        )


def strings_from_json(text: str | bytes, where: str, stored_as: str) -> dict[str, str]:
    """The metadata mapping of a format that stores it as JSON text (TorchScript's ``config.txt``, NCNN's
    ``metadata.json``, a TFLite metadata entry, a TensorRT engine's header); empty when ``text`` is. Untrusted:
    checked to be a mapping of strings, never echoed.

    Raises:
        YolorepError: ``text`` is not a JSON mapping of strings.
    """
    try:
        strings = json.loads(text) if text else {}
    except ValueError:  # includes UnicodeDecodeError
        strings = None
    if not isinstance(strings, dict) or not all(isinstance(v, str) for v in strings.values()):
        raise YolorepError(
            f"{where}: malformed yolorep metadata ({stored_as}: not a JSON mapping of strings); export the model again"
        )
    return strings


def _parsed(strings: Mapping[str, str], key: str, default: str | None, where: str) -> Any:
    """The JSON value of ``key`` (numbers, lists, booleans and objects are stored as JSON text)."""
    text = strings.get(key, default)
    if text is None:
        raise YolorepError(f"{where}: malformed yolorep metadata ({key}: missing); re-export the model")
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        raise YolorepError(
            f"{where}: malformed yolorep metadata ({key}: not a JSON value); re-export the model"
        ) from None


def _is_int(value: Any, least: int = 1) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= least


def _is_fraction(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0.0 <= value <= 1.0


# eval_args key -> (check, what it should hold)
EVAL_ARGS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "imgsz": (_is_int, "a positive integer"),
    "conf": (_is_fraction, "a number in 0..1"),
    "iou": (_is_fraction, "a number in 0..1"),
    "max_det": (_is_int, "a positive integer"),
}


def eval_args_problem(eval_args: Any) -> str | None:
    """What is wrong with stored evaluation settings (``{imgsz, conf, iou, max_det}``, each optional; other keys, of
    a newer yolorep, are not read), or None."""
    if eval_args is None:
        return None
    if not isinstance(eval_args, dict):
        return f"eval_args: expected a mapping, got {type(eval_args).__name__}"
    for key, (check, meaning) in EVAL_ARGS.items():
        if key in eval_args and not check(eval_args[key]):
            return f"eval_args.{key}: expected {meaning}"
    return None


def metadata_problem(info: ModelMetadata) -> str | None:
    """What is wrong with ``info``'s types and ranges (the first problem found), or None."""
    names = info.names
    if not isinstance(names, tuple) or not names or not all(isinstance(n, str) for n in names):
        return f"names: expected a non-empty list of class names, got {type(names).__name__}"
    checks = (
        ("stride", _is_int(info.stride), "a positive integer"),
        ("imgsz", info.imgsz is None or _is_int(info.imgsz), "a positive integer"),
        ("batch", _is_int(info.batch), "a positive integer"),
        ("precision", info.precision in PRECISIONS, f"one of {', '.join(PRECISIONS)}"),
        ("task", info.task == "detect", "detect"),
    )
    checks += tuple((key, isinstance(getattr(info, key), bool), "true or false") for key in _FLAGS)
    checks += tuple((key, isinstance(getattr(info, key), str), "a string") for key in _STRINGS)
    for key, ok, meaning in checks:
        if not ok:
            return f"{key}: expected {meaning}"
    return eval_args_problem(info.eval_args)


_FLAGS = ("dynamic", "fused", "single_cls")
_STRINGS = ("model", "version", "precision_reason", "calibration", "data", "scale", "family", "source")


def metadata_of(model: nn.Module, precision: str = "fp32") -> ModelMetadata:
    """The metadata of an in-memory detector (a ``DetectionModel`` or a ``DecodedModel`` around one): what a
    checkpoint recorded (``model.metadata``, set by ``load_checkpoint``), with what the model is now (names,
    stride, fused) and ``precision``; for a model built from a YAML, what it knows of itself."""
    inner = getattr(model, "model", model)
    now = {
        "names": tuple(model.names),
        "stride": int(torch.as_tensor(model.stride).max()),
        "fused": bool(getattr(model, "is_fused", False)),
        "precision": precision,
    }
    stored = getattr(inner, "metadata", None)
    if isinstance(stored, ModelMetadata):
        return replace(stored, **now)
    spec = getattr(inner, "spec", None)
    name, scale = getattr(spec, "name", "") or "", getattr(spec, "scale", None) or ""
    return ModelMetadata(**now, model=f"{name}-{scale}" if scale else name, scale=scale, family="yolorep")


def legacy_metadata(checkpoint: Mapping[str, Any], model: nn.Module, where: str) -> ModelMetadata:
    """The record of a checkpoint written before checkpoints stored one (format 1 and 2), read from its
    ``train_args`` and ``eval_args`` (untrusted: checked by type and range, never echoed)."""
    train_args = checkpoint.get("train_args") if isinstance(checkpoint.get("train_args"), Mapping) else {}
    name, scale = str(checkpoint.get("model_name") or ""), str(checkpoint.get("scale") or "")
    imported = checkpoint.get("source") if isinstance(checkpoint.get("source"), Mapping) else {}
    origin = " ".join(f"{k}={imported[k]}" for k in ("file", "sha256") if isinstance(imported.get(k), str))
    return ModelMetadata.checked(
        where,
        names=tuple(model.names),
        stride=int(torch.as_tensor(model.stride).max()),
        imgsz=train_args.get("imgsz"),
        eval_args=checkpoint.get("eval_args"),
        data=train_args.get("data") or "",
        single_cls=bool(train_args.get("single_cls")),
        fused=bool(checkpoint.get("fused")),
        model=f"{name}-{scale}" if scale else name,
        scale=scale,
        family=str(imported.get("family") or "yolorep"),
        source=origin,
    )
