"""``DeployFormat``: everything yolorep knows about one deploy format, in one record.

Each format lives in one module (``onnx.py``, ``torchscript.py``, ``openvino.py``, ``ncnn.py``, ``tflite.py``,
``coreml.py``, ``tensorrt.py``) that defines its export
function, its ``Backend`` and this record; ``registry.py`` lists the records. The exporter, ``load_backend``, the
CLI's ``--format`` and ``benchmark --formats`` all read them, so adding a format is one new module and one line in
``registry.py``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from torch import Tensor, nn

if TYPE_CHECKING:
    from yolorep.engine.deploy.base import Backend
    from yolorep.engine.metadata import ModelMetadata

__all__ = ["DeployFormat", "ExportJob"]


@dataclass(frozen=True)
class ExportJob:
    """What a format's export function gets.

    Attributes:
        model: the fused, decoding, eval-mode model on the export device (``DecodedModel``: [B, 3, H, W] in 0..1 ->
            [B, N, 4 + nc]), in fp32 or (``--half``) fp16.
        example: an input of the exported shape, [batch, 3, imgsz, imgsz].
        path: where to write (a file, or a folder for formats that are folders).
        info: the metadata the file must carry (its ``precision`` says fp32, fp16, bf16 or int8).
        opset: the ONNX opset, for formats converted from ONNX.
        calibration: for INT8, batches [batch, 3, imgsz, imgsz] float32 in 0..1 of training images; else None.
    """

    model: nn.Module
    example: Tensor
    path: Path
    info: ModelMetadata
    opset: int
    calibration: list[np.ndarray] | None = None


@dataclass(frozen=True)
class DeployFormat:
    """One deploy format.

    Attributes:
        name: the ``--format`` name (``onnx``); ``benchmark --formats`` also takes ``<name>-int8`` when ``int8`` and
            ``<name>-fp16`` when ``half``.
        suffix: what follows the weights' stem in the exported name (``.onnx``; ``_openvino_model`` for a folder).
        export: writes ``job.path`` from ``job.model`` (the exporter then checks it through ``backend``).
        backend: runs an exported file: ``backend(path, device)``.
        extra: the pip extra that installs what it needs (``pip install 'yolorep[extra]'``).
        packages: modules the export needs (checked before minutes of work).
        runtime: modules the backend needs; without them an export is written but not checked.
        int8_packages: modules an INT8 export needs besides.
        int8, half, dynamic: whether ``--int8``, ``--half`` and ``--dynamic`` are supported.
        reduced: float precisions below fp32 that its CPU runtime computes in when the CPU has native units for them,
            chosen when the file is loaded while the file itself stays fp32 (OpenVINO's ``bf16`` and ``fp16``
            inference precision); ``--precision`` may ask for them, and ``auto`` picks bf16 where the CPU has it.
        int8_needs_vnni: its CPU runtime's INT8 pays only on a CPU with VNNI (ONNX Runtime computes it exactly
            without, but no faster than fp32), so ``auto`` suggests calibrating it only there.
        half_on_cpu: ``--half`` is a conversion of the fp32 model's weights while writing (NCNN, TFLite, CoreML),
            so it needs no CUDA device: the model is traced in fp32 and ``job.info.precision`` says ``fp16``.
        needs_cuda: the export builds for the GPU it runs on (TensorRT), so it needs a CUDA ``--device``.
        platforms: ``sys.platform`` values where ``backend`` runs (CoreML: ``darwin``); empty: everywhere. Elsewhere
            an export is written and checked by its structure only.
        uses_opset: the export goes through ONNX, so ``--opset`` applies.
        is_folder: the export is a folder (``path`` may also be a file inside it, such as OpenVINO's ``.xml``).
    """

    name: str
    suffix: str
    export: Callable[[ExportJob], None]
    backend: Callable[..., Backend]
    extra: str
    packages: tuple[str, ...] = ()
    runtime: tuple[str, ...] = ()
    int8_packages: tuple[str, ...] = ()
    int8: bool = False
    half: bool = False
    dynamic: bool = False
    reduced: tuple[str, ...] = ()
    int8_needs_vnni: bool = False
    half_on_cpu: bool = False
    needs_cuda: bool = False
    platforms: tuple[str, ...] = ()
    uses_opset: bool = False
    is_folder: bool = False
    file_suffix: str = ""  # the model file inside a folder format, which may be passed instead (.xml, .param)

    def runs_here(self) -> bool:
        """Whether ``backend`` can run on this operating system."""
        return not self.platforms or sys.platform in self.platforms

    def path_for(self, weights: str | Path, int8: bool = False, half: bool = False) -> Path:
        """Where an export of ``weights`` goes: beside it, ``best.onnx``, ``best_int8_openvino_model/``,
        ``best_fp16.tflite`` ... (``_fp16`` for the formats that convert to fp16 on any device; an ONNX or TorchScript
        ``--half`` export keeps the plain name it always had)."""
        weights = Path(weights)
        tag = "_int8" if int8 else "_fp16" if half and self.half_on_cpu else ""
        return weights.with_name(weights.stem + tag + self.suffix)

    def holds(self, path: Path) -> bool:
        """Whether ``path`` (an existing file or folder) is an export of this format."""
        if self.is_folder:
            if path.is_dir():  # named as exported, or (renamed) holding the format's model file
                return (
                    path.name.endswith(self.suffix) or bool(self.file_suffix) and any(path.glob(f"*{self.file_suffix}"))
                )
            return bool(self.file_suffix) and path.suffix == self.file_suffix
        return path.is_file() and path.name.endswith(self.suffix)
