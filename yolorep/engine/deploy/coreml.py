"""The CoreML format (iOS, iPadOS, macOS): the fused model converted by coremltools from ``torch.export`` into an ML
Program, saved as ``<stem>.mlpackage`` (fp32, or with ``--half`` fp16 weights and arithmetic, what the Neural
Engine runs), with yolorep's metadata, class names included, in the package's user-defined metadata.

Input ``images`` [batch, 3, imgsz, imgsz] float32 RGB in 0..1 and output ``output0`` [batch, N, 4 + nc] float32, as
for every other format. CoreML runs only on Apple systems: elsewhere the export is checked by its structure (one
``conv`` per convolution of the model, no batch norm, fp16 weights when asked for, the metadata), and
``CoreMLBackend`` runs it on macOS.
"""

from __future__ import annotations

import copy
import logging
import shutil
import tempfile
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from yolorep.atomic import atomic_dir
from yolorep.engine.deploy.base import Backend
from yolorep.engine.deploy.format import DeployFormat, ExportJob
from yolorep.engine.deploy.optional import require
from yolorep.engine.metadata import ModelMetadata
from yolorep.errors import YolorepError

__all__ = ["COREML", "CoreMLBackend", "coreml_program", "export_coreml", "read_coreml_metadata"]

LOGGER = logging.getLogger(__name__)
EXTRA = "coreml"
INPUT, OUTPUT = "images", "output0"


def _spec(path: Path) -> Any:
    """The protobuf ``Model`` spec of an ``.mlpackage``, read without loading the model (which needs macOS)."""
    ct = require("coremltools", f"--weights {path}", EXTRA)
    try:
        return ct.models.MLModel(str(path), skip_model_load=True).get_spec()
    except Exception as err:  # coremltools raises assorted types for a damaged package
        raise YolorepError(
            f"{path}: coremltools cannot read this package ({type(err).__name__}); export it again"
        ) from None


def read_coreml_metadata(path: Path) -> dict[str, str]:
    """The user-defined metadata strings of an ``.mlpackage`` (yolorep's keys among coremltools' own)."""
    return dict(_spec(path).description.metadata.userDefined)


def coreml_program(path: Path) -> dict[str, Any]:
    """What an ``.mlpackage`` holds, read without running it: ``ops`` (MIL op type -> count in ``main``),
    ``weight_types`` (element type of the constants feeding ``conv`` weights -> count), ``inputs`` and ``outputs``
    (name -> shape)."""
    from coremltools.proto import MIL_pb2  # the package is present: _spec required it

    spec = _spec(path)
    function = spec.mlProgram.functions["main"]
    operations = function.block_specializations[function.opset].operations
    const_types = {
        output.name: MIL_pb2.DataType.Name(output.type.tensorType.dataType)
        for op in operations
        if op.type == "const"
        for output in op.outputs
    }
    weights = [op.inputs["weight"].arguments[0].name for op in operations if op.type == "conv"]
    return {
        "ops": dict(Counter(op.type for op in operations)),
        "weight_types": dict(Counter(const_types.get(name, "computed") for name in weights)),
        "inputs": {f.name: list(f.type.multiArrayType.shape) for f in spec.description.input},
        "outputs": {f.name: list(f.type.multiArrayType.shape) for f in spec.description.output},
    }


class CoreMLBackend(Backend):
    """Runs a yolorep ``.mlpackage`` with Core ML (macOS only; on other systems loading it raises one line)."""

    format = "coreml"

    def __init__(self, path: Path, device: torch.device) -> None:
        info = ModelMetadata.from_strings(read_coreml_metadata(path), str(path))
        if not COREML.runs_here():
            raise YolorepError(
                f"{path}: CoreML models run on macOS and iOS only; run it there, or export --format onnx, openvino, "
                "ncnn or tflite for this system"
            )
        ct = require("coremltools", f"--weights {path}", EXTRA)
        self.model = ct.models.MLModel(str(path))
        super().__init__(str(path), info, device)

    def _forward(self, images: Tensor) -> Tensor:
        x = np.ascontiguousarray(images.detach().to("cpu", torch.float32).numpy())
        return torch.from_numpy(np.asarray(self.model.predict({INPUT: x})[OUTPUT], dtype=np.float32))


def export_coreml(job: ExportJob) -> None:
    """Convert ``job.model`` (fp16 arithmetic and weights when ``job.info.precision`` is fp16), name its input and
    output, store the metadata, write ``job.path`` and check its structure."""
    ct = require("coremltools", "--format coreml", EXTRA)
    model, example = job.model, job.example
    if example.device.type != "cpu":  # coremltools converts on the CPU; the caller's model stays where it is
        model, example = copy.deepcopy(model).cpu(), example.cpu()
    program = torch.export.export(model.eval(), (example,)).run_decompositions()
    precision = ct.precision.FLOAT16 if job.info.precision == "fp16" else ct.precision.FLOAT32
    with warnings.catch_warnings():  # coremltools' own use of its deprecated op registry warns per op
        warnings.simplefilter("ignore", category=DeprecationWarning)
        mlmodel = ct.convert(program, convert_to="mlprogram", compute_precision=precision)
    spec = mlmodel.get_spec()
    ct.utils.rename_feature(spec, spec.description.output[0].name, OUTPUT)
    spec.description.metadata.userDefined.update(job.info.to_strings())
    spec.description.metadata.shortDescription = (
        f"{job.info.model or 'yolorep'} detector: {INPUT} [B, 3, H, W] RGB 0..1 -> {OUTPUT} [B, N, 4 + nc] (boxes "
        "xyxy in input pixels, class scores; no NMS)"
    )
    spec.description.metadata.author = f"yolorep {job.info.version}"
    mlmodel = ct.models.MLModel(spec, weights_dir=mlmodel.weights_dir, skip_model_load=True)
    with tempfile.TemporaryDirectory(prefix="yolorep_export_") as tmp, atomic_dir(job.path) as folder:
        package = Path(tmp) / "model.mlpackage"
        mlmodel.save(str(package))
        shutil.copytree(package, folder, dirs_exist_ok=True)
    _check_structure(job)


def _check_structure(job: ExportJob) -> None:
    """One ``conv`` per convolution of the fused model, no batch norm, fp16 weights for an fp16 export, the named
    input and output: what can be verified of a CoreML model where it cannot run."""
    found = coreml_program(job.path)
    ops, weight_types = found["ops"], found["weight_types"]
    LOGGER.info("CoreML program: %s", ", ".join(f"{n} {op}" for op, n in sorted(ops.items(), key=lambda x: -x[1])))
    expected_convs = sum(isinstance(m, nn.Conv2d) for m in job.model.modules())
    if ops.get("batch_norm", 0) or ops.get("conv", 0) != expected_convs:
        raise YolorepError(
            f"export: the CoreML program has {ops.get('batch_norm', 0)} batch_norm and {ops.get('conv', 0)} conv ops "
            f"(expected 0 and {expected_convs}); the model was not exported fused; please report it"
        )
    weight_type = "FLOAT16" if job.info.precision == "fp16" else "FLOAT32"
    if set(weight_types) != {weight_type} or list(found["inputs"]) != [INPUT] or list(found["outputs"]) != [OUTPUT]:
        raise YolorepError(
            f"export: the CoreML program's conv weights are {weight_types} (expected {weight_type}), its input "
            f"{list(found['inputs'])} and output {list(found['outputs'])}; please report it"
        )


COREML = DeployFormat(
    name="coreml",
    suffix=".mlpackage",
    export=export_coreml,
    backend=CoreMLBackend,
    extra=EXTRA,
    packages=("coremltools",),
    runtime=("coremltools",),
    half=True,
    half_on_cpu=True,
    platforms=("darwin",),
    is_folder=True,
)
