"""The ONNX format: export with torch's TorchScript-based exporter (fp32, fp16, or INT8 QDQ through ONNX Runtime's
static quantization), and ``ONNXBackend``, which runs it with ONNX Runtime."""

from __future__ import annotations

import inspect
import logging
import tempfile
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from yolorep.atomic import atomic_path
from yolorep.engine.deploy.base import Backend
from yolorep.engine.deploy.cpu import cpu_features
from yolorep.engine.deploy.format import DeployFormat, ExportJob
from yolorep.engine.deploy.optional import require
from yolorep.engine.deploy.quantize import quantize_onnx
from yolorep.engine.metadata import ModelMetadata
from yolorep.errors import YolorepError

__all__ = ["ONNX", "ONNXBackend", "ort_session", "write_onnx", "write_onnx_metadata"]

LOGGER = logging.getLogger(__name__)
EXTRA = "export"


def ort_session(path: str | Path, device: torch.device, purpose: str) -> Any:
    """An ``onnxruntime.InferenceSession`` on ``device`` (CUDA when asked for and available, else the CPU) using
    torch's intra-op thread count.

    Thread spinning is off: spinning workers keep burning the cores between calls, which here are shared with
    PyTorch (NMS, data loading) and, in the benchmark, with other runtimes timed in alternation.

    On a CPU without VNNI, ONNX Runtime's fast u8 x s8 kernels add pairs of products in 16 bits, which saturate
    (one RepVGG-fused yolorep-n lost 0.061 mAP50-95 of 0.411 on an AVX2 EPYC); ``session.x64quantprecision``
    makes it compute such INT8 convolutions exactly, in u8 x u8. It changes nothing for a float model, or on a CPU
    with VNNI, whose dot products accumulate in 32 bits.
    """
    ort = require("onnxruntime", purpose, EXTRA)
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if not cpu_features().vnni:
        options.add_session_config_entry("session.x64quantprecision", "1")
    cuda = device.type == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers()
    providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if cuda else ["CPUExecutionProvider"]
    try:
        return ort.InferenceSession(str(path), options, providers=providers)
    except Exception as err:  # onnxruntime raises its own exception types, not importable portably
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise YolorepError(f"{path}: onnxruntime cannot load this file ({first}); is it an ONNX model?") from None


class ONNXBackend(Backend):
    """Runs a yolorep ONNX export with onnxruntime; class names, image size and stride come from its metadata."""

    format = "onnx"
    own_threads = True

    def __init__(self, path: Path, device: torch.device) -> None:
        self.session = ort_session(path, device, f"--weights {path}")
        info = ModelMetadata.from_strings(self.session.get_modelmeta().custom_metadata_map, str(path))
        (inp,) = self.session.get_inputs()
        self.input_name = inp.name
        self.input_dtype = np.float16 if inp.type == "tensor(float16)" else np.float32
        super().__init__(str(path), info, device)
        cpu = cpu_features()
        if info.precision == "int8" and self.device.type == "cpu" and not cpu.vnni:
            LOGGER.info(
                "%s: this CPU has no VNNI (%s); ONNX Runtime computes INT8 exactly here but little faster than fp32 "
                "(1.05-1.13x on an AVX2 EPYC, where OpenVINO INT8 was 1.5-1.7x its fp32: --format openvino "
                "--precision int8)", path, cpu.kind,
            )  # fmt: skip

    def _forward(self, images: Tensor) -> Tensor:
        x = images.detach().to("cpu", torch.float32).numpy().astype(self.input_dtype, copy=False)
        (output,) = self.session.run(None, {self.input_name: x})
        return torch.from_numpy(output)


def write_onnx(model: nn.Module, x: Tensor, path: Path, opset: int, dynamic: bool, meta: dict[str, str]) -> Path:
    """Export with the TorchScript-based exporter, add ``meta`` as metadata_props, check the graph's structure
    (fused: no BatchNormalization, one Conv per convolution of the model).

    The dynamo exporter needs onnxscript, which yolorep does not depend on; the TorchScript-based one handles this
    model's shape arithmetic (anchor points from feature-map sizes) for dynamic axes as well.
    """
    onnx = require("onnx", "--format onnx", EXTRA)
    kwargs: dict[str, Any] = {}
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        kwargs["dynamo"] = False
    if dynamic:
        kwargs["dynamic_axes"] = {
            "images": {0: "batch", 2: "height", 3: "width"},
            "output0": {0: "batch", 1: "anchors"},
        }
    with atomic_path(path) as tmp:  # a full disk or a failed check leaves no .onnx that looks complete
        with warnings.catch_warnings():
            # the exporter warns that it is the legacy one and that iterating over the head's strides is traced
            # unrolled: both expected (the number of levels is fixed)
            warnings.simplefilter("ignore", category=DeprecationWarning)
            warnings.simplefilter("ignore", category=torch.jit.TracerWarning)
            torch.onnx.export(
                model, (x,), str(tmp), input_names=["images"], output_names=["output0"], opset_version=opset, **kwargs
            )
        graph = onnx.load(str(tmp))
        _set_metadata_props(graph, meta)
        onnx.checker.check_model(graph)
        onnx.save(graph, str(tmp))
    ops = Counter(node.op_type for node in graph.graph.node)
    LOGGER.info("ONNX graph (opset %d): %s", opset, ", ".join(f"{n} {op}" for op, n in ops.most_common()))
    expected_convs = sum(isinstance(m, nn.Conv2d) for m in model.modules())
    if ops["BatchNormalization"] or ops["Conv"] != expected_convs:
        raise YolorepError(
            f"export: the ONNX graph has {ops['BatchNormalization']} BatchNormalization and {ops['Conv']} Conv nodes "
            f"(expected 0 and {expected_convs}); the model was not exported fused; please report it"
        )
    return path


def _set_metadata_props(graph: Any, meta: dict[str, str]) -> None:
    """Replace the ``metadata_props`` of an ``onnx.ModelProto`` with ``meta``."""
    del graph.metadata_props[:]
    for key, value in meta.items():
        graph.metadata_props.add(key=key, value=value)


def write_onnx_metadata(path: Path, meta: dict[str, str]) -> None:
    """Replace the metadata of the ONNX file at ``path`` (atomically)."""
    onnx = require("onnx", "--format onnx", EXTRA)
    graph = onnx.load(str(path))
    _set_metadata_props(graph, meta)
    with atomic_path(path) as tmp:
        onnx.save(graph, str(tmp))


def export_onnx(job: ExportJob) -> None:
    """fp32/fp16: the model's graph with its metadata; INT8: that graph quantized (``quantize_onnx``)."""
    meta = job.info.to_strings()
    if job.calibration is None:
        write_onnx(job.model, job.example, job.path, job.opset, job.info.dynamic, meta)
        return
    with tempfile.TemporaryDirectory(prefix="yolorep_export_") as tmp:
        fp32 = write_onnx(job.model, job.example, Path(tmp) / "fp32.onnx", job.opset, job.info.dynamic, {})
        quantize_onnx(fp32, job.path, job.calibration)
    write_onnx_metadata(job.path, meta)


ONNX = DeployFormat(
    name="onnx",
    suffix=".onnx",
    export=export_onnx,
    backend=ONNXBackend,
    extra=EXTRA,
    packages=("onnx",),
    runtime=("onnxruntime",),
    int8_packages=("onnxruntime.quantization",),
    int8=True,
    int8_needs_vnni=True,
    half=True,
    dynamic=True,
    uses_opset=True,
)
