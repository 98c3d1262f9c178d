"""The TensorRT format (NVIDIA GPUs, Jetson): the model's ONNX graph built by TensorRT's ONNX parser into an engine
for the GPU it runs on, ``<stem>.engine``, in fp32, fp16 (the graph traced in fp16 on that GPU) or INT8 (the graph
quantized explicitly, with Q/DQ nodes calibrated on training images by ONNX Runtime); and ``TensorRTBackend``, which
runs it on CUDA.

The precisions live in the ONNX graph rather than in builder flags: TensorRT 11 builds only strongly typed networks
(its FP16 and INT8 flags and INT8 calibrators are gone), and TensorRT 8.6 to 10 build the same graphs (with the
flags on 8.6, which has no strong typing). An engine file is ``MAGIC``, the length of the metadata (4 bytes, little
endian), the metadata as JSON, then TensorRT's serialized plan.
"""

from __future__ import annotations

import json
import logging
import struct
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from yolorep.atomic import atomic_path
from yolorep.engine.deploy.base import Backend
from yolorep.engine.deploy.format import DeployFormat, ExportJob
from yolorep.engine.deploy.onnx import write_onnx
from yolorep.engine.deploy.optional import require
from yolorep.engine.deploy.quantize import quantize_onnx
from yolorep.engine.metadata import ModelMetadata, strings_from_json
from yolorep.errors import YolorepError

__all__ = [
    "TENSORRT",
    "TensorRTBackend",
    "build_engine",
    "export_tensorrt",
    "read_engine_file",
    "tensorrt_onnx",
    "write_engine_file",
]

LOGGER = logging.getLogger(__name__)
EXTRA = "tensorrt"
MAGIC = b"YOLOREP-TRT\n"
WORKSPACE_BYTES = 4 << 30  # the builder's scratch memory limit; tactics needing more are skipped


def write_engine_file(path: Path, plan: bytes, strings: dict[str, str]) -> None:
    """Write ``plan`` (a serialized TensorRT engine) with ``strings`` as its metadata header (atomically)."""
    header = json.dumps(strings).encode()
    with atomic_path(path) as tmp:
        tmp.write_bytes(MAGIC + struct.pack("<I", len(header)) + header + plan)


def read_engine_file(data: bytes, where: str) -> tuple[dict[str, str], bytes]:
    """The metadata strings and the serialized plan of an engine file written by ``write_engine_file``.

    Raises:
        YolorepError: ``data`` has no yolorep header (an engine from trtexec or another tool) or a damaged one.
    """
    if not data.startswith(MAGIC):
        raise YolorepError(
            f"{where}: no yolorep metadata (class names, image size, stride) in this engine; build it with "
            "`yolorep export --weights best.pt --format tensorrt --device 0`"
        )
    start = len(MAGIC) + 4
    size = struct.unpack("<I", data[len(MAGIC) : start])[0] if len(data) >= start else len(data)
    if start + size > len(data):
        raise YolorepError(f"{where}: a truncated TensorRT engine file; export it again")
    return strings_from_json(data[start : start + size], where, "engine header"), data[start + size :]


def tensorrt_onnx(job: ExportJob, path: Path) -> Path:
    """The ONNX graph TensorRT builds ``job`` from, written to ``path``: the model as traced (fp32, or fp16 when
    ``job.model`` is fp16), or for INT8 its fp32 graph with symmetric int8 Q/DQ nodes calibrated on
    ``job.calibration`` (the decode tail stays fp32). Runs anywhere: ONNX Runtime runs and checks it on a CPU."""
    if job.calibration is None:
        return write_onnx(job.model, job.example, path, job.opset, job.info.dynamic, {})
    with tempfile.TemporaryDirectory(prefix="yolorep_export_") as tmp:
        fp32 = write_onnx(job.model, job.example, Path(tmp) / "fp32.onnx", job.opset, job.info.dynamic, {})
        return quantize_onnx(fp32, path, job.calibration, for_tensorrt=True)


def _network_flags(trt: Any, precision: str) -> tuple[int, list[Any]]:
    """Network creation flags and builder flags for this TensorRT: strongly typed (the graph's own precisions)
    where it exists (9 and newer), else explicit batch with the flag that allows ``precision``'s kernels (8.6)."""
    creation = trt.NetworkDefinitionCreationFlag
    if hasattr(creation, "STRONGLY_TYPED"):
        return 1 << int(creation.STRONGLY_TYPED), []
    allowed = {"fp16": [trt.BuilderFlag.FP16], "int8": [trt.BuilderFlag.INT8]}.get(precision, [])
    return 1 << int(creation.EXPLICIT_BATCH), allowed


def parse_onnx(onnx_path: Path, precision: str, trt: Any, logger: Any) -> tuple[Any, Any, Any]:
    """TensorRT's builder, network definition and builder config for the ONNX file (no GPU work yet).

    Raises:
        YolorepError: the ONNX parser rejects the graph (its first errors are named).
    """
    builder = trt.Builder(logger)
    flags, builder_flags = _network_flags(trt, precision)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_path.read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(min(parser.num_errors, 3)))
        raise YolorepError(f"export: TensorRT's ONNX parser rejects the graph ({errors}); please report it")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
    for flag in builder_flags:
        config.set_flag(flag)
    return builder, network, config


def build_engine(onnx_path: Path, precision: str) -> bytes:
    """Build and serialize the engine of ``onnx_path`` (whose graph holds ``precision``) on the current CUDA
    device.

    Raises:
        YolorepError: the graph does not parse, or TensorRT builds no engine.
    """
    trt = require("tensorrt", "--format tensorrt", EXTRA)
    logger = trt.Logger(trt.Logger.WARNING)
    builder, network, config = parse_onnx(onnx_path, precision, trt, logger)
    LOGGER.info("TensorRT %s: building the engine (%d layers); this takes minutes", trt.__version__, network.num_layers)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise YolorepError("export: TensorRT built no engine (its log above says why); please report it")
    return bytes(plan)


def export_tensorrt(job: ExportJob) -> None:
    """Write the ONNX graph for ``job``'s precision, build its engine on ``job.example``'s GPU, save it with the
    metadata."""
    with tempfile.TemporaryDirectory(prefix="yolorep_export_") as tmp:
        onnx_path = tensorrt_onnx(job, Path(tmp) / "model.onnx")
        with torch.cuda.device(job.example.device):
            plan = build_engine(onnx_path, job.info.precision)
    write_engine_file(job.path, plan, job.info.to_strings())


class TensorRTBackend(Backend):
    """Runs a yolorep ``.engine`` with TensorRT on the CUDA device it was built for (outputs stay there)."""

    format = "tensorrt"

    def __init__(self, path: Path, device: torch.device) -> None:
        info, plan = read_engine_file(path.read_bytes(), str(path))
        if device.type != "cuda":
            raise YolorepError(f"{path}: a TensorRT engine runs on the NVIDIA GPU it was built for; add --device 0")
        trt = require("tensorrt", f"--weights {path}", EXTRA)
        with torch.cuda.device(device):
            self.engine = trt.Runtime(trt.Logger(trt.Logger.WARNING)).deserialize_cuda_engine(plan)
            if self.engine is None:
                raise YolorepError(
                    f"{path}: TensorRT cannot load this engine (built by another TensorRT version or for another GPU); "
                    "export it again on this machine"
                )
            self.context = self.engine.create_execution_context()
        self.input_dtype = (
            torch.float16 if self.engine.get_tensor_dtype("images") == trt.DataType.HALF else torch.float32
        )
        super().__init__(str(path), ModelMetadata.from_strings(info, str(path)), device)

    def _forward(self, images: Tensor) -> Tensor:
        x = images.to(self.device, self.input_dtype).contiguous()
        output = torch.empty(tuple(self.engine.get_tensor_shape("output0")), device=self.device)
        self.context.set_tensor_address("images", x.data_ptr())
        self.context.set_tensor_address("output0", output.data_ptr())
        stream = torch.cuda.current_stream(self.device)
        if not self.context.execute_async_v3(stream.cuda_stream):
            raise YolorepError(f"{self.source}: TensorRT failed to run the engine")
        stream.synchronize()
        return output


TENSORRT = DeployFormat(
    name="tensorrt",
    suffix=".engine",
    export=export_tensorrt,
    backend=TensorRTBackend,
    extra=EXTRA,
    packages=("onnx", "tensorrt"),
    runtime=("tensorrt",),
    int8_packages=("onnxruntime.quantization",),
    int8=True,
    half=True,
    needs_cuda=True,
    uses_opset=True,
)
