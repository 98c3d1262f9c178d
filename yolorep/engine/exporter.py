"""Export the fused detector to ONNX or TorchScript, and check the export reproduces PyTorch.

Exported graph: input ``images`` [B, 3, H, W] float RGB in 0..1, output ``output0`` [B, N, 4 + nc] (boxes xyxy in
input pixels, then class scores), exactly what ``DecodedModel`` returns; NMS is left to the caller.
onnx and onnxruntime are optional (``pip install yolorep[export]``) and imported only here.
"""

from __future__ import annotations

import inspect
import json
import logging
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import torch
from torch import nn

from yolorep.checks import check_batch, check_imgsz
from yolorep.engine.device import select_device
from yolorep.engine.predictor import imgsz_or_trained, load_fused
from yolorep.errors import ArgumentError, YolorepError
from yolorep.version import __version__

__all__ = ["export", "export_onnx", "export_torchscript", "max_difference"]

LOGGER = logging.getLogger(__name__)

FORMATS = {"onnx": ".onnx", "torchscript": ".torchscript"}
MIN_OPSET = 11  # the head's chunk of the box distances has no export before opset 11


def max_opset() -> int:
    """The newest opset torch's TorchScript-based ONNX exporter writes."""
    from torch.onnx import _constants  # private, hence the fallback

    return int(getattr(_constants, "ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET", 17))


# Largest allowed |export - PyTorch|, relative to the output's scale (pixels for boxes, 1 for scores).
TOLERANCE = {torch.float32: 1e-3, torch.float16: 2e-2}


def max_difference(expected: torch.Tensor, actual: torch.Tensor) -> tuple[float, float]:
    """Largest absolute difference between two [B, N, 4 + nc] outputs, and the tolerance it must meet.

    Boxes (pixels) and scores (0..1) are compared on their own scales, so a score error is not hidden by the
    size of pixel coordinates. Returns ``(difference relative to scale, largest absolute difference)``.
    """
    expected, actual = expected.float().cpu(), actual.float().cpu()
    if expected.shape != actual.shape:
        raise YolorepError(f"export: output shape {tuple(actual.shape)} differs from PyTorch {tuple(expected.shape)}")
    diff = (expected - actual).abs()
    box_scale = expected[..., :4].abs().max().clamp(min=1.0)
    relative = max(float(diff[..., :4].max() / box_scale), float(diff[..., 4:].max()))
    return relative, float(diff.max())


def _check(name: str, expected: torch.Tensor, actual: torch.Tensor, dtype: torch.dtype) -> float:
    """Log the largest difference; raise YolorepError when it is out of tolerance."""
    relative, absolute = max_difference(expected, actual)
    tolerance = TOLERANCE[dtype]
    LOGGER.info(
        "%s check on %s: largest |difference| %.3g (%.3g relative to output scale, tolerance %.0e)",
        name, tuple(expected.shape), absolute, relative, tolerance,
    )  # fmt: skip
    if not relative <= tolerance:  # also catches NaN
        raise YolorepError(
            f"export: {name} output differs from PyTorch by {absolute:.3g} ({relative:.3g} relative, tolerance "
            f"{tolerance:.0e}); the exported file is wrong; try another --opset or report it"
        )
    return absolute


def _metadata(model: nn.Module, imgsz: int, batch: int, dynamic: bool, half: bool) -> dict[str, str]:
    return {
        "names": json.dumps(list(model.names)),
        "stride": str(int(model.stride.max())),
        "imgsz": json.dumps([imgsz, imgsz]),
        "batch": str(batch),
        "dynamic": json.dumps(dynamic),
        "half": json.dumps(half),
        "yolorep": __version__,
    }


def export_onnx(model: nn.Module, x: torch.Tensor, path: Path, opset: int, dynamic: bool, meta: dict[str, str]) -> Path:
    """Export with the TorchScript-based exporter, add ``meta`` as metadata_props, check the graph and outputs.

    The dynamo exporter needs onnxscript, which yolorep does not depend on; the TorchScript-based one handles this
    model's shape arithmetic (anchor points from feature-map sizes) for dynamic axes as well.
    """
    try:
        import onnx
    except ImportError:
        raise YolorepError("export: --format onnx needs the onnx package; pip install 'yolorep[export]'") from None
    kwargs: dict[str, Any] = {}
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        kwargs["dynamo"] = False
    if dynamic:
        kwargs["dynamic_axes"] = {
            "images": {0: "batch", 2: "height", 3: "width"},
            "output0": {0: "batch", 1: "anchors"},
        }
    with warnings.catch_warnings():
        # the exporter warns that it is the legacy one and that iterating over the head's strides is traced
        # unrolled: both expected (the number of levels is fixed)
        warnings.simplefilter("ignore", category=DeprecationWarning)
        warnings.simplefilter("ignore", category=torch.jit.TracerWarning)
        torch.onnx.export(
            model, (x,), str(path), input_names=["images"], output_names=["output0"], opset_version=opset, **kwargs
        )
    graph = onnx.load(str(path))
    for key, value in meta.items():
        graph.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(graph)
    onnx.save(graph, str(path))
    ops = Counter(node.op_type for node in graph.graph.node)
    LOGGER.info("ONNX graph (opset %d): %s", opset, ", ".join(f"{n} {op}" for op, n in ops.most_common()))
    expected_convs = sum(isinstance(m, nn.Conv2d) for m in model.modules())
    if ops["BatchNormalization"] or ops["Conv"] != expected_convs:
        raise YolorepError(
            f"export: the ONNX graph has {ops['BatchNormalization']} BatchNormalization and {ops['Conv']} Conv nodes "
            f"(expected 0 and {expected_convs}); the model was not exported fused; please report it"
        )
    _verify_onnx(model, path, x, dynamic)
    return path


def _check_inputs(x: torch.Tensor, dynamic: bool, stride: int) -> list[torch.Tensor]:
    """Random inputs to compare outputs on: the export shape and, for dynamic axes, another batch and width."""
    inputs = [torch.rand_like(x)]
    if dynamic:
        inputs.append(torch.rand(x.shape[0] + 1, 3, x.shape[2], max(x.shape[3] - 2 * stride, stride)).to(x))
    return inputs


def _reference(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """PyTorch output in true fp32: cuDNN would otherwise run fp32 convolutions in TF32 on recent GPUs."""
    with torch.no_grad(), torch.backends.cudnn.flags(enabled=True, allow_tf32=False):
        return model(images)


def _verify_onnx(model: nn.Module, path: Path, x: torch.Tensor, dynamic: bool) -> None:
    try:
        import onnxruntime as ort
    except ImportError:
        LOGGER.warning("export: onnxruntime is not installed; outputs not checked (pip install 'yolorep[export]')")
        return
    # fp32 is checked on the CPU, the reference implementation; fp16 kernels are complete only on CUDA
    has_cuda = "CUDAExecutionProvider" in ort.get_available_providers()
    providers = ["CUDAExecutionProvider"] if x.dtype == torch.float16 and has_cuda else ["CPUExecutionProvider"]
    for images in _check_inputs(x, dynamic, int(model.stride.max())):
        try:
            session = ort.InferenceSession(str(path), providers=providers)
            actual = session.run(["output0"], {"images": images.cpu().numpy()})[0]
        except Exception as err:  # onnxruntime raises its own exception types, not importable portably
            if x.dtype != torch.float16 or has_cuda:
                raise
            LOGGER.warning("export: onnxruntime cannot run this fp16 model on the CPU (%s); outputs not checked", err)
            return
        _check("onnxruntime", _reference(model, images), torch.from_numpy(actual), x.dtype)


def export_torchscript(model: nn.Module, x: torch.Tensor, path: Path, dynamic: bool, meta: dict[str, str]) -> Path:
    """Trace the model, store ``meta`` as ``config.txt`` (JSON) in ``_extra_files``, reload and check outputs.

    The trace records the head's shape arithmetic, so the file also runs at other batch and image sizes; with
    ``dynamic`` that is checked.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=FutureWarning)  # torch.jit deprecation notice
        warnings.simplefilter("ignore", category=torch.jit.TracerWarning)
        traced = torch.jit.trace(model, x, check_trace=False)
        traced.save(str(path), _extra_files={"config.txt": json.dumps(meta)})
        extra = {"config.txt": ""}
        reloaded = torch.jit.load(str(path), map_location=x.device, _extra_files=extra)
    if json.loads(extra["config.txt"]) != meta:
        raise YolorepError(f"export: {path} does not hold its metadata after reloading; please report it")
    for images in _check_inputs(x, dynamic, int(model.stride.max())):
        with torch.no_grad():
            actual = reloaded(images)
        _check("TorchScript", _reference(model, images), actual, x.dtype)
    return path


def export(
    weights: str | Path,
    format: str = "onnx",
    imgsz: int | None = None,
    batch: int = 1,
    dynamic: bool = False,
    half: bool = False,
    opset: int = 17,
    device: str | None = "cpu",
) -> Path:
    """``yolorep export``: write the fused model beside the weights as ``<stem>.onnx`` or ``<stem>.torchscript``.

    Args:
        weights: checkpoint path.
        format: ``onnx`` or ``torchscript``.
        imgsz: square input size the export is traced (and, without ``dynamic``, fixed) at; a stride multiple
            (default: the size the checkpoint was trained at, else 640).
        batch: batch size of the traced input (fixed unless ``dynamic``).
        dynamic: batch, height and width become dynamic axes (ONNX); checked at a second shape (both formats).
        half: fp16 weights and input; needs a CUDA device.
        opset: ONNX opset version.
        device: device to trace on.

    Returns:
        The exported file.
    """
    if format not in FORMATS:
        raise YolorepError(f"--format {format}: unknown export format; use one of {', '.join(FORMATS)}")
    check_batch(batch)
    if format == "onnx" and not MIN_OPSET <= opset <= max_opset():
        raise ArgumentError(f"--opset {opset}: this model exports with opsets {MIN_OPSET} to {max_opset()}; use 17")
    torch_device = select_device(device)
    if half and torch_device.type != "cuda":
        raise YolorepError(
            f"--half: fp16 export needs a CUDA device, got {torch_device}; add --device 0 or drop --half"
        )
    model = load_fused(weights)
    dtype = torch.float16 if half else torch.float32
    model = model.to(torch_device, dtype).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    imgsz = check_imgsz(imgsz_or_trained(imgsz, model.meta), int(model.stride.max()))
    x = torch.zeros(batch, 3, imgsz, imgsz, device=torch_device, dtype=dtype)
    path = Path(weights).with_suffix(FORMATS[format])
    meta = _metadata(model, imgsz, batch, dynamic, half)
    LOGGER.info("exporting %s -> %s (input %s %s)", weights, path, tuple(x.shape), str(dtype).removeprefix("torch."))
    if format == "onnx":
        export_onnx(model, x, path, opset, dynamic, meta)
    else:
        export_torchscript(model, x, path, dynamic, meta)
    size_mb = path.stat().st_size / 1e6
    LOGGER.info("export done: %s (%.1f MB)", path, size_mb)
    return path
