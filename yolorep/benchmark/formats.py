"""``yolorep benchmark --formats``: the deployed forms of one model side by side, in one run.

Each format is exported from the same checkpoint at one fixed shape (``[batch, 3, imgsz, imgsz]``), loaded through
its backend, compared with the fused PyTorch model on the same images, and timed in interleaved rounds (so that
background load falls on every format alike). With ``--data`` and trained weights each format is also scored by
pycocotools on the same square letterboxed validation batches, so the mAP differences are the formats' alone.
"""

from __future__ import annotations

import logging
import shutil
import statistics
from functools import partial
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch

from yolorep.benchmark.report import environment
from yolorep.benchmark.timing import default_iters, default_warmup, time_calls, time_interleaved
from yolorep.checks import check_imgsz
from yolorep.datasets.spec import load_data_spec
from yolorep.engine.checkpoint import load_checkpoint, save_checkpoint
from yolorep.engine.deploy import FORMATS as DEPLOY_FORMATS
from yolorep.engine.deploy import Backend, PyTorchBackend, export, load_backend, load_fused
from yolorep.engine.deploy.quantize import calibration_batches, int8_agreement
from yolorep.engine.deploy.tolerance import output_diff
from yolorep.engine.validator import build_eval_loader, build_validator, eval_settings
from yolorep.errors import ArgumentError
from yolorep.nn.model import DetectionModel
from yolorep.options import ExportOptions

__all__ = ["FORMATS", "benchmark_formats", "parse_formats"]

LOGGER = logging.getLogger(__name__)
# --formats name -> (export format, precision): every deploy format, and its INT8 and fp16 forms where it has them
# (fp16 traced on a GPU for onnx, torchscript and tensorrt; converted on any device for ncnn, tflite and coreml);
# "torch" is the fused PyTorch model every other format is compared with
FORMATS: dict[str, tuple[str, str] | None] = {
    "torch": None,
    **{name: (name, "fp32") for name in DEPLOY_FORMATS},
    **{f"{name}-int8": (name, "int8") for name, deploy in DEPLOY_FORMATS.items() if deploy.int8},
    **{f"{name}-fp16": (name, "fp16") for name, deploy in DEPLOY_FORMATS.items() if deploy.half},
}
ROUNDS = 10
CHECK_IMAGES = 8  # images the outputs are compared on


def parse_formats(text: str) -> list[str]:
    """``"onnx,openvino-int8"`` -> ``["torch", "onnx", "openvino-int8"]``: the reference first, no repeats.

    Raises:
        ArgumentError: an unknown name.
    """
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in FORMATS]
    if unknown or not names:
        raise ArgumentError(f"--formats {text}: unknown format {unknown or text!r}; use some of {', '.join(FORMATS)}")
    return ["torch"] + [name for name in dict.fromkeys(names) if name != "torch"]


def benchmark_formats(
    formats: str,
    *,
    weights: str | None,
    random_model: DetectionModel | None,
    data: str | None,
    calib: int = ExportOptions.calib,
    imgsz: int | None = None,
    batch: int = 1,
    device: torch.device,
    iters: int | None = None,
    warmup: int | None = None,
    out: str | Path = "runs/benchmark",
) -> dict[str, Any]:
    """Export, check, time and (with ``data`` and trained ``weights``) score every format in ``formats``.

    Args:
        weights: a checkpoint (fused or not); else ``random_model`` is saved and exported.
        data: dataset YAML: its train split calibrates INT8 and gives the comparison images, its val split is scored.
        imgsz: the exported input size (default: the size the checkpoint was trained at, else 640).
        out: exports go to ``out/formats/``.

    Returns:
        The figures ``format_formats_table`` prints: per format ``rows`` with latency (``ms``, ``ms_min``),
        ``speedup`` over the fused PyTorch model, agreement with it and, when scored, ``map50_95`` and ``map_diff``.
    """
    names = parse_formats(formats)
    if data is None and any(FORMATS[name] and FORMATS[name][1] == "int8" for name in names):
        raise ArgumentError(f"--formats {formats}: INT8 formats need calibration images; add --data DATA.yaml")
    checkpoint = _checkpoint(weights, random_model, Path(out) / "formats")
    reference = PyTorchBackend(load_fused(checkpoint), device, source=str(checkpoint))
    imgsz = check_imgsz(imgsz or reference.info.imgsz or 640, reference.stride)
    backends: dict[str, Backend] = {"torch": reference}
    for name in names[1:]:
        backends[name] = _exported(name, checkpoint, imgsz, batch, data, calib, device)
    images = _check_images(data, imgsz, batch, reference.stride)
    rows = {name: _agreement(backend, reference, images) for name, backend in backends.items()}
    timing = _time(backends, imgsz, batch, device, iters, warmup)
    for name, row in rows.items():
        row.update(format=name, precision=backends[name].precision, source=backends[name].source)
        row.update(
            {k: v for k, v in timing[name].items() if k != "times"}, speedup=timing["torch"]["ms"] / timing[name]["ms"]
        )
    scored = data is not None and random_model is None
    if scored:
        scores = _score(backends, data, imgsz, batch)
        for name, figures in scores.items():
            rows[name].update(figures, map_diff=figures["map50_95"] - scores["torch"]["map50_95"])
    return {
        "model": reference.info.model,
        "source": str(weights or checkpoint),
        "nc": len(reference.names),
        **environment(device),
        "runtimes": _runtime_versions(),
        "imgsz": imgsz,
        "batch": batch,
        "random_weights": random_model is not None,
        "data": str(data) if data else None,
        "scored": scored,
        "iters": len(timing["torch"]["times"]),
        "rounds": ROUNDS,
        "rows": list(rows.values()),
    }


def _exported(
    name: str, checkpoint: Path, imgsz: int, batch: int, data: str | None, calib: int, device: torch.device
) -> Backend:
    """The ``--formats`` entry ``name`` exported from ``checkpoint`` and loaded on ``device``."""
    fmt, precision = FORMATS[name]
    path = export(
        weights=checkpoint, format=fmt, imgsz=imgsz, batch=batch, int8=precision == "int8", half=precision == "fp16",
        data=data, calib=calib, device=_export_device(fmt, precision, device),
    )  # fmt: skip
    return load_backend(path, device)


def _export_device(fmt: str, precision: str, device: torch.device) -> str:
    """Where a format is exported: on the benchmarked device when it builds for a GPU (TensorRT) or traces fp16 on
    one (ONNX, TorchScript); else on the CPU (the exported file then runs wherever its backend puts it)."""
    deploy = DEPLOY_FORMATS[fmt]
    return str(device) if deploy.needs_cuda or (precision == "fp16" and not deploy.half_on_cpu) else "cpu"


def _checkpoint(weights: str | None, random_model: DetectionModel | None, folder: Path) -> Path:
    """The checkpoint to export, copied into ``folder`` (or ``random_model`` saved there), so that the exports are
    written beside it and not beside the user's weights."""
    folder.mkdir(parents=True, exist_ok=True)
    if weights:
        load_checkpoint(weights)  # a readable error before anything is written
        return Path(shutil.copy(weights, folder / Path(weights).name))
    assert random_model is not None
    spec = random_model.spec
    return save_checkpoint(random_model, folder / f"{spec.name}{'-' + spec.scale if spec.scale else ''}.pt")


def _check_images(data: str | None, imgsz: int, batch: int, stride: int) -> torch.Tensor:
    """Real images (the data set's train split) when there is a data set, else seeded random ones."""
    if data is None:
        return torch.rand(CHECK_IMAGES, 3, imgsz, imgsz, generator=torch.Generator().manual_seed(0))
    return torch.from_numpy(np.concatenate(calibration_batches(data, imgsz, batch, CHECK_IMAGES, stride)))


def _agreement(backend: Backend, reference: Backend, images: torch.Tensor) -> dict[str, float]:
    expected, actual = reference(images), backend(images)
    box_px, score = output_diff(actual, expected)
    return {
        "max_box_diff_px": box_px,
        "max_score_diff": score,
        "top100_iou": int8_agreement(expected, actual)["box_iou"],
    }


def _time(
    backends: dict[str, Backend],
    imgsz: int,
    batch: int,
    device: torch.device,
    iters: int | None,
    warmup: int | None,
) -> dict[str, dict[str, Any]]:
    """Median and fastest latency (ms per batch) of every backend, timed in interleaved rounds on one input.

    Host clocks time every call, each ending with a device synchronize: OpenVINO (and ONNX Runtime without its CUDA
    provider) run on the CPU even when ``device`` is a GPU, where CUDA events would not see their work.
    """
    x = torch.rand(batch, 3, imgsz, imgsz, generator=torch.Generator().manual_seed(1)).to(device)
    calls = [partial(_synchronized, backend, x) for backend in backends.values()]
    host = torch.device("cpu")
    warmup = default_warmup(device) if warmup is None else warmup
    warm = [time_calls(call, max(warmup, 1), host) for call in calls]
    iters = iters or default_iters(sum(w[-1] for w in warm), device)
    times = time_interleaved(calls, iters, ROUNDS, host)
    return {
        name: {"ms": statistics.median(t), "ms_min": min(t), "images_per_s": batch * 1e3 / statistics.median(t),
               "times": t}
        for name, t in zip(backends, times)
    }  # fmt: skip


def _synchronized(backend: Backend, x: torch.Tensor) -> None:
    output = backend(x)
    if output.is_cuda:
        torch.cuda.synchronize(output.device)


def _score(backends: dict[str, Backend], data: str, imgsz: int, batch: int) -> dict[str, dict[str, float]]:
    """mAP by pycocotools of every backend on the same square letterboxed validation batches."""
    spec = load_data_spec(data)
    reference = backends["torch"]
    single_cls = reference.info.single_cls
    if (1 if single_cls else len(spec.names)) != len(reference.names):
        raise ArgumentError(
            f"--data {data}: has {len(spec.names)} classes but the model {len(reference.names)}; score on the data "
            "set the model was trained on"
        )
    dataset, loader = build_eval_loader(spec, "val", imgsz, batch, reference.stride, single_cls=single_cls, rect=False)
    settings = eval_settings(reference.info.eval_args, imgsz=imgsz)
    scores = {}
    for name, backend in backends.items():
        results = build_validator(dataset, loader, settings)(backend)
        scores[name] = {"map50_95": results["map50_95"], "map50": results["map50"], "val_images": results["images"]}
        LOGGER.info("%s: mAP50-95 %.4f, mAP50 %.4f (pycocotools)", name, results["map50_95"], results["map50"])
    return scores


def _runtime_versions() -> dict[str, str]:
    versions = {}
    for package in ("onnxruntime", "openvino", "nncf", "ncnn", "pnnx", "litert-torch", "ai-edge-litert", "tensorrt"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return versions
