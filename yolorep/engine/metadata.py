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

from yolorep.errors import YolorepError
from yolorep.version import __version__

__all__ = ["PRECISIONS", "ModelMetadata"]

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
