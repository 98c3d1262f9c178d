"""``yolorep benchmark --formats``: the deployed forms of one model side by side, in one run.

Each path (a format in a precision) is exported from the same checkpoint at one fixed shape (``[batch, 3, imgsz,
imgsz]``), loaded through its backend, compared with the fused PyTorch model on the same images, and timed in
interleaved rounds (so that background load falls on every path alike). With ``--data`` and trained weights each
path is also scored by pycocotools on the same square letterboxed validation batches, so the mAP differences are
the paths' alone. ``--formats auto`` measures every path this machine runs and recommends one (``recommend``).
"""

from __future__ import annotations

import importlib.util
import logging
import shutil
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch

from yolorep.benchmark.recommend import recommend
from yolorep.benchmark.report import environment
from yolorep.checks import check_imgsz
from yolorep.engine.checkpoint import load_checkpoint, save_checkpoint
from yolorep.engine.deploy import FORMATS as DEPLOY_FORMATS
from yolorep.engine.deploy import Backend, PyTorchBackend, export, load_backend, load_fused
from yolorep.engine.deploy.cpu import CpuFeatures, cpu_features
from yolorep.engine.deploy.quantize import calibration_batches, int8_agreement
from yolorep.engine.deploy.tolerance import output_diff
from yolorep.engine.deploy.trial import ROUNDS, score_backends, time_backends
from yolorep.errors import ArgumentError, YolorepError
from yolorep.nn.model import DetectionModel
from yolorep.options import FormatsOptions

__all__ = ["FORMATS", "available_paths", "benchmark_formats", "parse_formats"]

LOGGER = logging.getLogger(__name__)
TORCH = "torch"
# --formats name -> (export format or "torch", precision): "torch" is the fused PyTorch model every other path is
# compared with, "torch-bf16" the same under bf16 autocast (``--half`` on a CPU with native bf16); every deploy
# format in fp32, in the reduced precisions its runtime computes (openvino-bf16), in INT8 where it quantizes, and in
# fp16 where it has --half (traced on a GPU for onnx, torchscript and tensorrt; converted on any device for ncnn,
# tflite and coreml)
FORMATS: dict[str, tuple[str, str]] = {
    TORCH: (TORCH, "fp32"),
    f"{TORCH}-bf16": (TORCH, "bf16"),
    **{name: (name, "fp32") for name in DEPLOY_FORMATS},
    **{f"{name}-{p}": (name, p) for name, deploy in DEPLOY_FORMATS.items() for p in deploy.reduced},
    **{f"{name}-int8": (name, "int8") for name, deploy in DEPLOY_FORMATS.items() if deploy.int8},
    **{f"{name}-fp16": (name, "fp16") for name, deploy in DEPLOY_FORMATS.items() if deploy.half},
}
CHECK_IMAGES = 8  # images the outputs are compared on


def parse_formats(text: str, paths: list[str] | None = None) -> list[str]:
    """``"onnx,openvino-int8"`` -> ``["torch", "onnx", "openvino-int8"]``: the reference first, no repeats;
    ``auto`` stands for ``paths`` (``available_paths``).

    Raises:
        ArgumentError: an unknown name.
    """
    names = [name.strip() for name in text.split(",") if name.strip()]
    names = [found for name in names for found in (paths or [] if name == "auto" else [name])]
    unknown = [name for name in names if name not in FORMATS]
    if unknown or not names:
        raise ArgumentError(
            f"--formats {text}: unknown format {unknown or text!r}; use auto or some of {', '.join(FORMATS)}"
        )
    return [TORCH] + [name for name in dict.fromkeys(names) if name != TORCH]


def available_paths(device: torch.device, cpu: CpuFeatures, calibrated: bool) -> list[str]:
    """Every path ``--formats auto`` measures here: the formats whose packages are installed, in fp32, in each
    reduced precision this CPU computes natively, and in INT8 when there are calibration images."""
    native = {"bf16": cpu.native_bf16, "fp16": cpu.native_fp16} if device.type == "cpu" else {}
    paths = [TORCH] + ([f"{TORCH}-bf16"] if native.get("bf16") else [])
    for name, fmt in DEPLOY_FORMATS.items():
        if not all(importlib.util.find_spec(m.split(".")[0]) for m in fmt.packages + fmt.runtime):
            continue
        paths += [name] + [f"{name}-{p}" for p in fmt.reduced if native.get(p)]
        if fmt.int8 and calibrated and all(importlib.util.find_spec(m.split(".")[0]) for m in fmt.int8_packages):
            paths.append(f"{name}-int8")
    return paths


def benchmark_formats(o: FormatsOptions, random_model: DetectionModel | None, device: torch.device) -> dict[str, Any]:
    """Export, check, time and (with ``o.data`` and trained ``o.weights``) score every path in ``o.formats``, and
    recommend the fastest within 0.005 mAP50-95 of fp32 (``recommend``).

    ``o.weights`` is a checkpoint (fused or not); else ``random_model`` is saved and exported. ``o.data``'s train
    split calibrates INT8 and gives the comparison images, its val split is scored. Exports go to
    ``o.out/formats/`` (reduced precisions in a folder of their own, ``o.out/formats/bf16/``).

    Returns:
        The figures ``format_formats_table`` prints: per path ``rows`` with latency (``ms``, ``ms_min``),
        ``speedup`` over the fused PyTorch model, agreement with it and, when scored, ``map50_95`` and ``map_diff``;
        and the ``recommendation``.
    """
    auto = "auto" in [name.strip() for name in o.formats.split(",")]
    names = parse_formats(o.formats, available_paths(device, cpu_features(), o.data is not None) if auto else None)
    if o.data is None and any(FORMATS[name][1] == "int8" for name in names):
        raise ArgumentError(f"--formats {o.formats}: INT8 formats need calibration images; add --data DATA.yaml")
    checkpoint = _checkpoint(o.weights, random_model, Path(o.out) / "formats")
    reference = PyTorchBackend(load_fused(checkpoint), device, source=str(checkpoint))
    imgsz = check_imgsz(o.imgsz or reference.info.imgsz or 640, reference.stride)
    backends: dict[str, Backend] = {TORCH: reference}
    for name in names[1:]:
        try:
            backends[name] = _load_path(name, checkpoint, o, imgsz, device)
        except YolorepError as err:
            if not auto:
                raise
            LOGGER.warning("--formats auto: %s skipped (%s)", name, err)
    images = _check_images(o.data, imgsz, o.batch, reference.stride)
    rows = {name: _agreement(backend, reference, images) for name, backend in backends.items()}
    timing = time_backends(backends, imgsz, o.batch, device, o.iters, o.warmup)
    for name, row in rows.items():
        row.update(format=name, precision=backends[name].precision, source=backends[name].source)
        row.update(
            {k: v for k, v in timing[name].items() if k != "times"}, speedup=timing[TORCH]["ms"] / timing[name]["ms"]
        )
    scored = o.data is not None and random_model is None
    if scored:
        scores = score_backends(backends, o.data, imgsz, o.batch)
        for name, figures in scores.items():
            rows[name].update(figures, map_diff=figures["map50_95"] - scores[TORCH]["map50_95"])
    weights = str(o.weights or checkpoint)
    return {
        "model": reference.info.model,
        "source": weights,
        "nc": len(reference.names),
        **environment(device),
        "cpu_flags": cpu_features().summary(),
        "runtimes": _runtime_versions(),
        "imgsz": imgsz,
        "batch": o.batch,
        "random_weights": random_model is not None,
        "data": str(o.data) if o.data else None,
        "scored": scored,
        "iters": len(timing[TORCH]["times"]),
        "rounds": ROUNDS,
        "rows": list(rows.values()),
        "recommendation": recommend(list(rows.values()), FORMATS, weights, o, imgsz) if auto else None,
    }


def _load_path(name: str, checkpoint: Path, o: FormatsOptions, imgsz: int, device: torch.device) -> Backend:
    """The backend of one path: PyTorch under bf16 autocast, or an export in its precision (reduced precisions
    into a folder of their own, since they share the fp32 file name)."""
    fmt, precision = FORMATS[name]
    if fmt == TORCH:
        return PyTorchBackend(load_fused(checkpoint), device, half=True, source=f"{checkpoint} ({name})")
    weights = checkpoint
    if precision in DEPLOY_FORMATS[fmt].reduced:
        (checkpoint.parent / precision).mkdir(exist_ok=True)
        weights = Path(shutil.copy(checkpoint, checkpoint.parent / precision / checkpoint.name))
    data = o.data if precision == "int8" else None
    path = export(
        weights, format=fmt, precision=precision, imgsz=imgsz, batch=o.batch, data=data, calib=o.calib,
        device=_export_device(fmt, precision, device),
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


def _runtime_versions() -> dict[str, str]:
    versions = {}
    for package in ("onnxruntime", "openvino", "nncf", "ncnn", "pnnx", "litert-torch", "ai-edge-litert", "tensorrt"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return versions
