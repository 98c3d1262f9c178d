"""The metadata an exported model carries, so that it runs and is scored with nothing but the file.

Every format stores the same string -> string mapping: ONNX as ``metadata_props``, TorchScript as the JSON file
``config.txt`` among its extra files, OpenVINO IR in ``rt_info`` under ``yolorep``. The key ``yolorep`` (the
version that wrote the file) marks a yolorep export; a file without it is refused with one line.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import nn

from yolorep.errors import YolorepError
from yolorep.version import __version__

__all__ = ["PRECISIONS", "ModelMetadata", "legacy_metadata", "metadata_of"]

PRECISIONS = ("fp32", "fp16", "int8")


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
        precision: ``fp32``, ``fp16`` or ``int8`` (quantized weights and activations).
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

    def with_precision(self, precision: str, calibration: str = "") -> ModelMetadata:
        return replace(self, precision=precision, calibration=calibration)

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
        if self.calibration:
            strings["calibration"] = self.calibration
        if self.data:
            strings["data"] = self.data
        if self.single_cls:
            strings["single_cls"] = "true"
        strings.update({key: getattr(self, key) for key in ("scale", "family", "source") if getattr(self, key)})
        return strings

    @classmethod
    def from_strings(cls, strings: Mapping[str, str], where: str) -> ModelMetadata:
        """Parse what ``to_strings`` wrote (files from before ``fused``/``precision`` existed read as fused fp32
        or fp16 from their ``half`` flag).

        Raises:
            YolorepError: ``where`` holds no yolorep metadata, or a value is malformed.
        """
        if "yolorep" not in strings:
            raise YolorepError(
                f"{where}: no yolorep metadata (class names, image size, stride) in this file; it was not written "
                "by yolorep export. Export the model with `yolorep export --weights best.pt --format ...`"
            )
        try:
            imgsz = json.loads(strings.get("imgsz", "null"))
            half = json.loads(strings.get("half", "false"))
            info = cls(
                names=tuple(str(n) for n in json.loads(strings["names"])),
                stride=int(strings["stride"]),
                imgsz=int(imgsz[0]) if isinstance(imgsz, list) and imgsz[0] is not None else None,
                batch=int(strings.get("batch", "1")),
                dynamic=bool(json.loads(strings.get("dynamic", "false"))),
                fused=bool(json.loads(strings.get("fused", "true"))),
                precision=strings.get("precision", "fp16" if half else "fp32"),
                model=strings.get("model", ""),
                version=strings["yolorep"],
                task=strings.get("task", "detect"),
                eval_args=json.loads(strings.get("eval_args", "{}")) or None,
                calibration=strings.get("calibration", ""),
                data=strings.get("data", ""),
                single_cls=bool(json.loads(strings.get("single_cls", "false"))),
                scale=strings.get("scale", ""),
                family=strings.get("family", ""),
                source=strings.get("source", ""),
            )
        except (KeyError, ValueError, TypeError, IndexError) as err:
            raise YolorepError(
                f"{where}: malformed yolorep metadata ({type(err).__name__}: {err}); re-export the model"
            ) from None
        if info.precision not in PRECISIONS or info.task != "detect" or info.stride < 1 or not info.names:
            raise YolorepError(
                f"{where}: unsupported yolorep metadata (task {info.task!r}, precision {info.precision!r}, stride "
                f"{info.stride}, {len(info.names)} classes); re-export the model with this yolorep ({__version__})"
            )
        return info


def metadata_of(model: nn.Module, precision: str = "fp32") -> ModelMetadata:
    """The metadata of an in-memory detector (a ``DetectionModel`` or a ``DecodedModel`` around one): what a
    checkpoint recorded (``model.metadata``, set by ``load_checkpoint``), with what the model is now (names,
    stride, fused) and ``precision``; for a model built from a YAML, what it knows of itself."""
    inner = getattr(model, "model", model)
    stored = getattr(inner, "metadata", None)
    spec = getattr(inner, "spec", None)
    if not isinstance(stored, ModelMetadata):
        scale = getattr(spec, "scale", None) or ""
        name = getattr(spec, "name", "") or ""
        stored = ModelMetadata(names=(), stride=1, model=f"{name}-{scale}" if scale else name, scale=scale,
                               family="yolorep")  # fmt: skip
    return replace(
        stored,
        names=tuple(model.names),
        stride=int(torch.as_tensor(model.stride).max()),
        fused=bool(getattr(model, "is_fused", False)),
        precision=precision,
    )


def legacy_metadata(checkpoint: Mapping[str, Any]) -> ModelMetadata:
    """The record of a checkpoint written before checkpoints stored one (format 1 and 2): read from its
    ``train_args`` and ``eval_args``; names and stride are filled in from the model it rebuilds."""
    train_args = checkpoint.get("train_args") if isinstance(checkpoint.get("train_args"), Mapping) else {}
    eval_args = checkpoint.get("eval_args") if isinstance(checkpoint.get("eval_args"), Mapping) else None
    imgsz = train_args.get("imgsz")
    name, scale = str(checkpoint.get("model_name") or ""), str(checkpoint.get("scale") or "")
    return ModelMetadata(
        names=(),
        stride=1,
        imgsz=imgsz if isinstance(imgsz, int) and not isinstance(imgsz, bool) else None,
        eval_args=dict(eval_args) if eval_args else None,
        data=str(train_args.get("data") or ""),
        single_cls=bool(train_args.get("single_cls")),
        model=f"{name}-{scale}" if scale else name,
        scale=scale,
        family="yolorep",
    )
