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

__all__ = [
    "NETWORK_SCOPE",
    "calibration_batches",
    "int8_agreement",
    "quantize_onnx",
    "quantize_openvino",
    "tail_nodes",
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
    are left as dequantize -> fp32 conv and run slower than the fp32 model. ``src``'s metadata is not carried over.

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
            nodes_to_exclude=tail_nodes(onnx.load(str(src)).graph),
            extra_options=TENSORRT_QDQ if for_tensorrt else {},
        )
    return dst


class _AdviceFilter(logging.Filter):
    """Drops two warnings onnxruntime's quantizer logs on the root logger: to run its pre-processing (shape
    inference and graph folding; measured here to change neither speed nor accuracy of this graph), and that a
    bias is not an initializer (the exporter shares identical biases, e.g. of an untrained head; they stay fp32)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not ("consider" in message and "pre-processing" in message or "to be an initializer" in message)


@contextlib.contextmanager
def _without_advice() -> Iterator[None]:
    root, advice = logging.getLogger(), _AdviceFilter()
    root.addFilter(advice)
    try:
        yield
    finally:
        root.removeFilter(advice)


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
