"""The TFLite / LiteRT format (Android, embedded Linux, microcontrollers): the fused model converted by litert-torch
(``torch.export`` straight to a ``.tflite`` flatbuffer, no TensorFlow), fp32, fp16 weights, or full-integer INT8
calibrated on training images with AI Edge Quantizer; and ``TFLiteBackend``, which runs it with the LiteRT
interpreter (``ai-edge-litert``).

litert-torch rather than onnx2tf: onnx2tf needs TensorFlow and, resolved beside torch 2.14, pins older numpy, onnx,
onnxruntime and protobuf than yolorep's other formats use, where litert-torch installs beside them unchanged; and it
converts the PyTorch graph itself, without an ONNX detour. The metadata is a ``yolorep`` entry of the flatbuffer's
own ``metadata`` table (JSON text), which every TFLite reader keeps and ignores.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from yolorep.atomic import atomic_path
from yolorep.engine.deploy.base import Backend
from yolorep.engine.deploy.format import DeployFormat, ExportJob
from yolorep.engine.deploy.optional import require, require_installed
from yolorep.engine.metadata import ModelMetadata, strings_from_json
from yolorep.errors import YolorepError

__all__ = ["TFLITE", "TFLiteBackend", "export_tflite", "read_tflite_metadata", "write_tflite_metadata"]

LOGGER = logging.getLogger(__name__)
EXTRA = "tflite"
METADATA_NAME = "yolorep"
IDENTIFIER = b"TFL3"  # bytes 4..8 of every TFLite flatbuffer
# Tensor names carry the module path, "<top class>/<class>_<attribute>/...": the network is everything under
# DecodedModel.model (the decode tail's tensors are named "<top class>;<n>" and stay float, see quantize.py)
NETWORK_SCOPE = r"^[^/;]+/[^/;]+_model/.*"


def read_tflite_metadata(data: bytes, where: str) -> str:
    """The ``yolorep`` metadata entry of a TFLite flatbuffer (JSON text; empty when there is none).

    Raises:
        YolorepError: ``data`` is not a TFLite model.
    """
    schema = require("ai_edge_litert.schema_py_generated", where, EXTRA)
    if data[4:8] != IDENTIFIER:
        raise YolorepError(f"{where}: not a TFLite model (no TFL3 identifier); export it with yolorep")
    try:
        model = schema.Model.GetRootAs(data, 0)
        for i in range(model.MetadataLength()):
            entry = model.Metadata(i)
            if entry.Name() == METADATA_NAME.encode():
                buffer = model.Buffers(entry.Buffer())
                # small buffers sit inside the flatbuffer; a serializer may also place them after it (offset, size)
                raw = (
                    buffer.DataAsNumpy().tobytes() if buffer.DataLength() else data[buffer.Offset() :][: buffer.Size()]
                )
                return raw.decode("utf-8", errors="replace")
    except (IndexError, ValueError, TypeError, AttributeError):  # a truncated or corrupted flatbuffer
        raise YolorepError(f"{where}: a damaged TFLite model; export it again") from None
    return ""


def write_tflite_metadata(data: bytes, strings: dict[str, str]) -> bytes:
    """``data`` (a TFLite flatbuffer) with ``strings`` as JSON in its ``yolorep`` metadata entry."""
    schema = require("ai_edge_litert.schema_py_generated", "--format tflite", EXTRA)
    flatbuffers = require("flatbuffers", "--format tflite", EXTRA)
    model = schema.ModelT.InitFromPackedBuf(data, 0)
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(json.dumps(strings).encode(), dtype=np.uint8)
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name, entry.buffer = METADATA_NAME, len(model.buffers) - 1
    model.metadata = [m for m in model.metadata or [] if m.name != METADATA_NAME.encode()] + [entry]
    builder = flatbuffers.Builder(len(data) + 4096)
    builder.Finish(model.Pack(builder), file_identifier=IDENTIFIER)
    return bytes(builder.Output())


class TFLiteBackend(Backend):
    """Runs a yolorep ``.tflite`` file with the LiteRT interpreter on the CPU (XNNPACK); outputs are moved to
    ``device``. Input and output are float32 for every precision (an INT8 model quantizes inside)."""

    format = "tflite"
    own_threads = True

    def __init__(self, path: Path, device: torch.device) -> None:
        interpreter = require("ai_edge_litert.interpreter", f"--weights {path}", EXTRA)
        data = path.read_bytes()
        info = ModelMetadata.from_strings(
            strings_from_json(read_tflite_metadata(data, str(path)), str(path), f"{METADATA_NAME} metadata entry"),
            str(path),
        )
        try:
            self.interpreter = interpreter.Interpreter(model_content=data, num_threads=torch.get_num_threads())
            self.interpreter.allocate_tensors()
        except (RuntimeError, ValueError) as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise YolorepError(f"{path}: LiteRT cannot load this model ({first})") from None
        (self.input,), (self.output,) = self.interpreter.get_input_details(), self.interpreter.get_output_details()
        super().__init__(str(path), info, device)

    def _forward(self, images: Tensor) -> Tensor:
        x = np.ascontiguousarray(images.detach().to("cpu", torch.float32).numpy())
        self.interpreter.set_tensor(self.input["index"], x)
        self.interpreter.invoke()
        return torch.from_numpy(self.interpreter.get_tensor(self.output["index"]))  # a copy


# litert-torch converts in a child process: it imports JAX, whose threads make a later fork (a DataLoader's workers,
# as when the benchmark scores the export) prone to deadlock; and it prints a line per step unless told not to
CONVERT = """
import sys, torch, litert_torch
program = torch.export.load(sys.argv[1])
shape = [int(n) for n in sys.argv[2].split(",")]
litert_torch.convert(program.module(), (torch.zeros(shape),)).export(sys.argv[3])
"""
CONVERT_TIMEOUT_S = 1800


def _convert(job: ExportJob, path: Path) -> None:
    """The fp32 flatbuffer of ``job.model`` at ``job.example``'s shape, written to ``path`` by litert-torch from the
    model's ``torch.export`` program."""
    require_installed("litert_torch", "--format tflite", EXTRA)
    model, example = job.model, job.example
    if example.device.type != "cpu":  # converted on the CPU; the caller's model stays where it is
        model, example = copy.deepcopy(model).cpu(), example.cpu()
    program = path.with_suffix(".pt2")
    torch.export.save(torch.export.export(model.eval(), (torch.zeros_like(example),)), str(program))
    command = [sys.executable, "-c", CONVERT, str(program), ",".join(map(str, example.shape)), str(path)]
    environment = dict(os.environ, LITERT_TORCH_SHOW_PROGRESS="n")
    try:
        done = subprocess.run(command, capture_output=True, text=True, env=environment, timeout=CONVERT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise YolorepError(f"export: litert-torch did not finish in {CONVERT_TIMEOUT_S} s; please report it") from None
    LOGGER.debug("litert-torch output:\n%s%s", done.stdout, done.stderr)
    if done.returncode != 0 or not path.is_file():
        tail = " | ".join((done.stdout + done.stderr).strip().splitlines()[-3:])
        raise YolorepError(f"export: litert-torch failed converting the model ({tail}); please report it")


def _quantized(path: Path, job: ExportJob) -> bytes:
    """fp16: the convolution weights stored as fp16 (dequantized when loaded; GPU delegates run them in fp16).
    INT8: weights (per channel) and activations of the network in int8, ranges from ``job.calibration``; the
    graph's float32 input and output and the decode tail stay float (see quantize.py)."""
    aeq = require("ai_edge_quantizer", f"--format tflite {'--int8' if job.calibration else '--half'}", EXTRA)
    operations, algorithms = aeq.qtyping.TFLOperationName, aeq.algorithm_manager.AlgorithmName
    quantizer = aeq.quantizer.Quantizer(str(path))
    if job.calibration is None:
        quantizer.add_weight_only_config(
            regex=".*", operation_name=operations.CONV_2D, num_bits=16, algorithm_key=algorithms.FLOAT_CASTING
        )
        return bytes(quantizer.quantize(enable_progress_bar=False, enable_progress_report=False).quantized_model)
    quantizer.add_static_config(
        regex=NETWORK_SCOPE, operation_name=operations.ALL_SUPPORTED, activation_num_bits=8, weight_num_bits=8
    )
    for boundary in (operations.INPUT, operations.OUTPUT):
        quantizer.update_quantization_recipe(regex=".*", operation_name=boundary, algorithm_key=algorithms.NO_QUANTIZE)
    signature = _signature_input(path)
    samples = [{signature: batch} for batch in job.calibration]
    calibration = quantizer.calibrate({"serving_default": samples}, num_threads=torch.get_num_threads())
    result = quantizer.quantize(calibration, enable_progress_bar=False, enable_progress_report=False)
    return bytes(result.quantized_model)


def _signature_input(path: Path) -> str:
    """The name of the converted model's one input in its ``serving_default`` signature (``args_0``)."""
    interpreter = require("ai_edge_litert.interpreter", "--format tflite", EXTRA)
    (name,) = interpreter.Interpreter(model_path=str(path)).get_signature_list()["serving_default"]["inputs"]
    return name


def export_tflite(job: ExportJob) -> None:
    """Convert ``job.model``, quantize it for ``job.info.precision`` (fp16 weights, or INT8 calibrated on
    ``job.calibration``), and write ``job.path`` with the metadata."""
    with tempfile.TemporaryDirectory(prefix="yolorep_export_") as tmp:
        fp32 = Path(tmp) / "fp32.tflite"
        _convert(job, fp32)
        # the quantizer keeps metadata entries, but may store buffers after the flatbuffer, where the repacking
        # write_tflite_metadata does would lose them: the metadata goes into the converter's plain flatbuffer
        fp32.write_bytes(write_tflite_metadata(fp32.read_bytes(), job.info.to_strings()))
        if job.info.precision == "fp32":
            data = fp32.read_bytes()
        else:
            with warnings.catch_warnings():
                # the calibrating interpreter keeps every intermediate tensor on purpose, and LiteRT warns about it
                warnings.filterwarnings("ignore", message=".*experimental_preserve_all_tensors")
                data = _quantized(fp32, job)
    with atomic_path(job.path) as out:
        out.write_bytes(data)
        types = tensor_types(out)
        LOGGER.info("TFLite tensors: %s", ", ".join(f"{n} {t}" for t, n in sorted(types.items(), key=lambda x: -x[1])))
        wanted = {"int8": "int8", "fp16": "float16"}.get(job.info.precision)
        if wanted and not types.get(wanted):
            raise YolorepError(
                f"export: the {job.info.precision} TFLite model holds no {wanted} tensor; the quantizer matched no "
                "layer (its tensor naming may have changed); please report it"
            )


def tensor_types(path: Path) -> dict[str, int]:
    """Element type -> number of tensors in a ``.tflite`` file (``float32``, ``float16``, ``int8`` ...)."""
    interpreter = require("ai_edge_litert.interpreter", f"--weights {path}", EXTRA)
    counts: dict[str, int] = {}
    for tensor in interpreter.Interpreter(model_path=str(path)).get_tensor_details():
        name = np.dtype(tensor["dtype"]).name
        counts[name] = counts.get(name, 0) + 1
    return counts


TFLITE = DeployFormat(
    name="tflite",
    suffix=".tflite",
    export=export_tflite,
    backend=TFLiteBackend,
    extra=EXTRA,
    packages=("litert_torch", "ai_edge_quantizer"),
    runtime=("ai_edge_litert",),
    int8=True,
    half=True,
    half_on_cpu=True,
)
