"""The OpenVINO format: the exported ONNX graph converted to OpenVINO IR (``<stem>_openvino_model/`` holding
``.xml`` + ``.bin``), optionally quantized to INT8 with NNCF, with yolorep's metadata in its ``rt_info``; and
``OpenVINOBackend``, which runs it on the CPU. A bf16 or fp16 export is the fp32 IR whose metadata names the
precision OpenVINO computes it in (its inference precision hint), so one file runs natively wherever it goes."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from yolorep.engine.deploy.base import Backend
from yolorep.engine.deploy.cpu import cpu_features
from yolorep.engine.deploy.format import DeployFormat, ExportJob
from yolorep.engine.deploy.onnx import write_onnx
from yolorep.engine.deploy.optional import require
from yolorep.engine.deploy.precision import PrecisionChoice, runtime_precision
from yolorep.engine.deploy.quantize import quantize_openvino
from yolorep.engine.metadata import ModelMetadata
from yolorep.errors import YolorepError

__all__ = [
    "INFERENCE_PRECISION",
    "OPENVINO",
    "RT_INFO_KEY",
    "OpenVINOBackend",
    "compile_openvino",
    "export_openvino",
    "find_openvino_xml",
    "read_rt_metadata",
]

LOGGER = logging.getLogger(__name__)
RT_INFO_KEY = "yolorep"  # metadata lives in rt_info[RT_INFO_KEY][key]
EXTRA = "openvino"


def find_openvino_xml(path: Path) -> Path:
    """The model ``.xml`` of an OpenVINO model folder (or ``path`` itself when it is the ``.xml``)."""
    if path.is_file():
        return path
    found = sorted(path.glob("*.xml"))
    if len(found) != 1:
        raise YolorepError(
            f"{path}: an OpenVINO model folder holds exactly one .xml (with its .bin), found {len(found)}; pass the "
            "folder written by `yolorep export --format openvino` or its .xml file"
        )
    return found[0]


def read_rt_metadata(model: Any) -> dict[str, str]:
    """The metadata strings stored in an ``openvino.Model``'s rt_info (empty when there are none)."""
    if not model.has_rt_info([RT_INFO_KEY]):
        return {}
    return {key: value.astype(str) for key, value in model.get_rt_info()[RT_INFO_KEY].items()}


# yolorep precision -> OpenVINO's inference precision for what is not quantized (an INT8 model's remaining float
# ops stay f32: with bf16 they were not faster on an AMX CPU, and the decode tail keeps its pixel resolution)
INFERENCE_PRECISION = {"fp32": "f32", "bf16": "bf16", "fp16": "f16", "int8": "f32"}


def compile_openvino(model: Any, core: Any, precision: str = "fp32") -> Any:
    """Compile for the CPU: latency mode, torch's thread count, and the inference precision of ``precision``.

    The hint is always given: without one OpenVINO runs fp32 models in bf16 on CPUs that have it, and what a file
    computes in must be the precision it was checked in (its metadata), not the machine's default.
    """
    config = {
        "PERFORMANCE_HINT": "LATENCY",
        "INFERENCE_NUM_THREADS": torch.get_num_threads(),
        "INFERENCE_PRECISION_HINT": INFERENCE_PRECISION[precision],
    }
    return core.compile_model(model, "CPU", config)


class OpenVINOBackend(Backend):
    """Runs a yolorep OpenVINO IR on the CPU in the precision its metadata names (``runtime_precision``: fp32 where a
    bf16 or fp16 file meets a CPU without native units for it); outputs are moved to ``device``."""

    format = "openvino"
    own_threads = True

    def __init__(self, path: Path, device: torch.device) -> None:
        ov = require("openvino", f"--weights {path}", EXTRA)
        xml = find_openvino_xml(path)
        core = ov.Core()
        try:
            model = core.read_model(str(xml))
        except RuntimeError as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise YolorepError(f"{xml}: OpenVINO cannot read this model ({first})") from None
        info = ModelMetadata.from_strings(read_rt_metadata(model), str(path))
        if device.type != "cpu":
            LOGGER.info("%s: OpenVINO runs on the CPU; outputs are moved to %s", path, device)
        precision = _runnable(info.precision, core, path)
        compiled = compile_openvino(model, core, precision)
        self.request = compiled.create_infer_request()
        output = compiled.outputs[0].get_partial_shape()
        # a fixed output shape: each call writes into a tensor of its own, which the caller keeps
        self._output_shape = tuple(d.get_length() for d in output) if output.is_static else None
        self._tensor = ov.Tensor
        super().__init__(str(path), info, device)
        self.precision = precision

    def _forward(self, images: Tensor) -> Tensor:
        x = np.ascontiguousarray(images.detach().to("cpu", torch.float32).numpy())
        # the input is read in place and no output dict is built (each would copy several MB a call)
        if self._output_shape is not None:
            out = torch.empty(self._output_shape)
            self.request.set_output_tensor(0, self._tensor(out.numpy(), shared_memory=True))
            self.request.infer({0: x}, share_inputs=True, share_outputs=True)
            return out
        self.request.infer({0: x}, share_inputs=True, share_outputs=True)
        # the request reuses its output buffer on the next call
        return torch.from_numpy(self.request.get_output_tensor(0).data.copy())


def _runnable(stored: str, core: Any, path: Path) -> str:
    """What to compile a file whose metadata says ``stored`` in: ``runtime_precision`` on this CPU's flags, and fp32
    where OpenVINO's CPU plugin does not list the precision among its capabilities."""
    choice = runtime_precision(stored, cpu_features())
    capability = {"bf16": "BF16", "fp16": "FP16"}.get(choice.precision)
    if capability and capability not in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
        choice = PrecisionChoice("fp32", f"OpenVINO does not compute {stored} on this CPU; the file runs in fp32")
    if choice.precision != stored:
        LOGGER.info("%s: %s", path, choice.reason)
    return choice.precision


def export_openvino(job: ExportJob) -> None:
    """Convert the model's fp32 ONNX graph, quantize it with NNCF when ``job.calibration`` is given, and save it as
    ``job.path/<folder stem without _openvino_model>.xml`` (and ``.bin``) with the metadata in ``rt_info``."""
    ov = require("openvino", "--format openvino", EXTRA)
    with tempfile.TemporaryDirectory(prefix="yolorep_export_") as tmp:  # the IR is saved before the ONNX goes
        onnx_path = write_onnx(job.model, job.example, Path(tmp) / "fp32.onnx", job.opset, job.info.dynamic, {})
        model = ov.convert_model(str(onnx_path))
        if job.calibration is not None:
            model = quantize_openvino(model, job.calibration)
        for key, value in job.info.to_strings().items():
            model.set_rt_info(value, [RT_INFO_KEY, key])
        job.path.mkdir(parents=True, exist_ok=True)
        xml = job.path / (job.path.name.removesuffix("_openvino_model") + ".xml")
        # compress_to_fp16 defaults to True and would store the fp32 weights as fp16
        ov.save_model(model, str(xml), compress_to_fp16=False)


OPENVINO = DeployFormat(
    name="openvino",
    suffix="_openvino_model",
    export=export_openvino,
    backend=OpenVINOBackend,
    extra=EXTRA,
    packages=("onnx", "openvino"),
    runtime=("openvino",),
    int8_packages=("nncf",),
    int8=True,
    dynamic=True,
    reduced=("bf16", "fp16"),
    uses_opset=True,
    is_folder=True,
    file_suffix=".xml",
)
