"""INT8 post-training quantization of an exported detector: calibration images, ONNX Runtime static QDQ, NNCF.

Only the network is quantized. The decode tail (DFL softmax, anchor arithmetic, sigmoid, and the final concat of
pixel boxes with 0..1 scores) stays in float: an int8 tensor holding both would share one scale, and a 640-pixel
range leaves scores a single step. In the exported graph the network is every node under the ``/model/`` scope
(``DecodedModel.model``) and the tail is everything else.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torchvision.ops import box_iou

from yolorep.datasets.dataset import DetectionDataset
from yolorep.datasets.spec import load_data_spec
from yolorep.engine.deploy.optional import require
from yolorep.errors import ArgumentError
from yolorep.logs import root_logging_kept

__all__ = [
    "NETWORK_SCOPE",
    "calibration_batches",
    "float_convs",
    "int8_agreement",
    "quantize_onnx",
    "quantize_openvino",
    "tail_nodes",
    "unshare_initializers",
]

LOGGER = logging.getLogger(__name__)
NETWORK_SCOPE = "/model/"
TENSORRT_QDQ = {"ActivationSymmetric": True, "WeightSymmetric": True, "QuantizeBias": False}


def calibration_batches(data: str | Path, imgsz: int, batch: int, n: int, stride: int) -> list[np.ndarray]:
    """``n`` images of the data set's train split (a seeded random choice), letterboxed to ``imgsz x imgsz``
    exactly as validation and a fixed-shape export's inference do, in batches of ``batch``.

    Returns:
        ``n // batch`` arrays [batch, 3, imgsz, imgsz] float32 RGB in 0..1.

    Raises:
        ArgumentError: ``n`` is below ``batch`` or the split is empty.
    """
    if n < batch:
        raise ArgumentError(f"--calib {n}: calibrate on at least one batch ({batch} images); use --calib {batch}")
    dataset = DetectionDataset(load_data_spec(data), "train", imgsz, augment=False, rect=False, stride=stride)
    if len(dataset) < batch:
        raise ArgumentError(f"--data {data}: its train split has {len(dataset)} images; INT8 calibration needs {n}")
    if n > len(dataset):
        LOGGER.warning("--calib %d: the train split of %s has %d images; calibrating on all", n, data, len(dataset))
    chosen = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(0))[: min(n, len(dataset))]
    images = np.stack([dataset[int(i)][0].numpy() for i in chosen]).astype(np.float32) / 255  # [n, 3, H, W]
    return [images[i : i + batch] for i in range(0, len(images) - batch + 1, batch)]


def tail_nodes(graph: Any) -> list[str]:
    """Names of the decode-tail nodes of an exported ``onnx.GraphProto`` (every node outside ``/model/``)."""
    names = [node.name for node in graph.node]
    if not any(name.startswith(NETWORK_SCOPE) for name in names):
        raise RuntimeError(f"no node under {NETWORK_SCOPE} in the exported graph; the node naming has changed")
    return [name for name in names if not name.startswith(NETWORK_SCOPE)]


def quantize_onnx(src: Path, dst: Path, batches: list[np.ndarray], for_tensorrt: bool = False) -> Path:
    """ONNX Runtime static quantization of ``src`` into ``dst``: QDQ format, activations uint8 and weights int8
    per output channel, MinMax ranges from ``batches``; the decode tail stays fp32.

    uint8 activations with int8 weights are what ONNX Runtime's CPU kernels fuse into QLinearConv; int8 activations
    are left as dequantize -> fp32 conv and run slower than the fp32 model. So is a convolution whose bias is not an
    initializer of its own, which ``unshare_initializers`` prevents; a convolution left in fp32 anyway is logged.
    ``src``'s metadata is not carried over.

    ``for_tensorrt``: the explicit quantization TensorRT builds from (the only INT8 path of TensorRT 11): int8
    activations and weights, both symmetric (zero point 0), biases left in fp32 (TensorRT folds them itself).
    """
    onnx = require("onnx", "--int8 --format onnx", "export")
    quantization = require("onnxruntime.quantization", "--int8 --format onnx", "export")

    class Reader(quantization.CalibrationDataReader):
        def __init__(self) -> None:
            self.batches: Iterator[np.ndarray] = iter(batches)

        def get_next(self) -> dict[str, np.ndarray] | None:
            x = next(self.batches, None)
            return None if x is None else {"images": x}

        def rewind(self) -> None:
            self.batches = iter(batches)

    model = onnx.load(str(src))
    if unshare_initializers(model.graph):
        onnx.save(model, str(src))
    with _without_advice():
        quantization.quantize_static(
            model_input=str(src),
            model_output=str(dst),
            calibration_data_reader=Reader(),
            quant_format=quantization.QuantFormat.QDQ,
            per_channel=True,
            activation_type=quantization.QuantType.QInt8 if for_tensorrt else quantization.QuantType.QUInt8,
            weight_type=quantization.QuantType.QInt8,
            calibrate_method=quantization.CalibrationMethod.MinMax,
            nodes_to_exclude=tail_nodes(model.graph),
            extra_options=TENSORRT_QDQ if for_tensorrt else {},
        )
    left = [] if for_tensorrt else float_convs(onnx.load(str(dst)).graph)  # TensorRT keeps fp32 biases by design
    if left:
        LOGGER.warning("INT8: %d convolutions stayed fp32 (%s ...); they run slower than in the fp32 model", len(left),
                       left[0])  # fmt: skip
    return dst


def unshare_initializers(graph: Any) -> int:
    """Give every convolution of an ``onnx.GraphProto`` its own weight and bias initializers; returns how many
    inputs were given a copy.

    torch's exporter stores equal tensors once (the zero biases of convolutions fused from fresh BatchNorms, the
    equal class biases of an untrained head) and feeds the other readers through ``Identity`` nodes. ONNX Runtime's
    quantizer quantizes only a bias that is an initializer of its own: it left the bias of 32 of the 41 convolutions of
    a freshly built yolorep-n in float, and those convolutions ran in fp32 on dequantized weights, slower than in the
    fp32 model. A trained model's biases differ, so it is unaffected, but random-weight benchmarks were.
    """
    onnx = require("onnx", "--int8 --format onnx", "export")
    initializers = {tensor.name: tensor for tensor in graph.initializer}
    outputs = {output.name for output in graph.output}
    copies = 0
    for node in list(graph.node):  # Identity(initializer) -> an initializer of its own
        if node.op_type == "Identity" and node.input[0] in initializers and node.output[0] not in outputs:
            copy = onnx.TensorProto()
            copy.CopyFrom(initializers[node.input[0]])
            copy.name = node.output[0]
            graph.initializer.append(copy)
            initializers[copy.name] = copy
            graph.node.remove(node)
            copies += 1
    readers: dict[str, int] = {}
    for node in graph.node:  # one initializer read by several convolutions -> a copy for each after the first
        if node.op_type != "Conv":
            continue
        for i, name in enumerate(node.input[1:], start=1):
            if name in initializers and readers.setdefault(name, 0) > 0:
                copy = onnx.TensorProto()
                copy.CopyFrom(initializers[name])
                copy.name = f"{name}_{node.name}"
                graph.initializer.append(copy)
                node.input[i] = copy.name
                copies += 1
            if name in initializers:
                readers[name] += 1
    return copies


def float_convs(graph: Any) -> list[str]:
    """The network's convolutions (under ``/model/``) that a QDQ graph left in float: a weight or bias not
    dequantized from an integer initializer. ONNX Runtime fuses a convolution into an integer one only when both
    are; with a float bias it dequantizes the int8 weight and runs the convolution in fp32."""
    dequantized = {out for node in graph.node if node.op_type == "DequantizeLinear" for out in node.output}
    return [
        node.name
        for node in graph.node
        if node.op_type == "Conv"
        and node.name.startswith(NETWORK_SCOPE)
        and any(name not in dequantized for name in node.input[1:] if name)
    ]


def _is_advice(record: logging.LogRecord) -> bool:
    """The advice onnxruntime's quantizer logs to run its pre-processing (shape inference and graph folding;
    measured here to change neither speed nor accuracy of this graph)."""
    message = record.getMessage()
    return "consider" in message and "pre-processing" in message


class _AdviceFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not _is_advice(record)


class _QuantizerLog(logging.Handler):
    """Passes onnxruntime's root-logger warnings, less the advice, to this module's logger. Held on the root logger
    while it quantizes: its module-level ``logging.warning`` calls install a handler on a root logger that has none
    (``logging.basicConfig``), and every yolorep line after it was printed twice."""

    def emit(self, record: logging.LogRecord) -> None:
        if record.name == "root" and not _is_advice(record):  # yolorep's own records propagate here too
            LOGGER.log(record.levelno, "onnxruntime: %s", record.getMessage())


@contextlib.contextmanager
def _without_advice() -> Iterator[None]:
    """onnxruntime's quantizer logs without its advice: through the host application's root handlers when it has
    some, else through this module's logger (``_QuantizerLog``)."""
    root = logging.getLogger()
    if root.handlers:
        advice = _AdviceFilter()
        root.addFilter(advice)
        try:
            yield
        finally:
            root.removeFilter(advice)
        return
    forward = _QuantizerLog()
    root.addHandler(forward)
    try:
        with root_logging_kept():  # the quantizer's warnings would configure the root logger for good
            yield
    finally:
        root.removeHandler(forward)


def quantize_openvino(model: Any, batches: list[np.ndarray]) -> Any:
    """NNCF post-training quantization of an ``openvino.Model``: MIXED preset (symmetric int8 weights, asymmetric
    activations), full bias correction, ranges from ``batches``; the decode tail stays fp32.

    Returns:
        The quantized ``openvino.Model``.
    """
    nncf = require("nncf", "--int8 --format openvino", "openvino")
    logging.getLogger("nncf").setLevel(logging.WARNING)  # its per-step INFO lines and progress bars
    return nncf.quantize(
        model,
        nncf.Dataset(batches, lambda x: {"images": x}),
        preset=nncf.QuantizationPreset.MIXED,
        subset_size=len(batches),  # dataset items, i.e. batches
        fast_bias_correction=False,
        # every op outside /model/ (OpenVINO keeps the ONNX node names as friendly names)
        ignored_scope=nncf.IgnoredScope(patterns=[rf"^/(?!{NETWORK_SCOPE.strip('/')}/).*"], validate=False),
    )


def int8_agreement(reference: Tensor, actual: Tensor, top: int = 100) -> dict[str, float]:
    """How closely an INT8 model follows the fp32 one where it matters: at each image's ``top`` anchors by fp32
    class score.

    Args:
        reference, actual: [B, N, 4 + nc] outputs of the fp32 and the INT8 model on the same images.

    Returns:
        ``box_iou``: mean IoU of the paired boxes; ``score_mean`` / ``score_max``: mean and largest absolute
        difference of those anchors' class scores.
    """
    reference, actual = reference.float().cpu(), actual.float().cpu()
    ious, score_diffs = [], []
    for ref, out in zip(reference, actual):  # [N, 4 + nc] each
        index = ref[:, 4:].amax(1).topk(min(top, ref.shape[0])).indices
        ious.append(box_iou(ref[index, :4], out[index, :4]).diagonal())
        score_diffs.append((ref[index, 4:] - out[index, 4:]).abs())
    iou, diff = torch.cat(ious), torch.cat(score_diffs)
    return {"box_iou": float(iou.mean()), "score_mean": float(diff.mean()), "score_max": float(diff.max())}
