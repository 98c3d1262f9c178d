"""Measuring deployed models side by side: latency in interleaved rounds, and pycocotools mAP on the same square
letterboxed validation batches. ``yolorep export --precision auto --data`` runs every candidate precision through
``choose_by_trial``; ``yolorep benchmark --formats`` uses the same two measurements for its table.
"""

from __future__ import annotations

import logging
import statistics
import tempfile
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from typing import Any

import torch

from yolorep.datasets.spec import load_data_spec
from yolorep.engine.deploy.base import Backend
from yolorep.engine.deploy.format import DeployFormat
from yolorep.engine.deploy.precision import MAX_MAP_DROP, PrecisionChoice, Trial, pick_fastest
from yolorep.engine.timing import default_iters, default_warmup, time_calls, time_interleaved
from yolorep.errors import ArgumentError

__all__ = ["ROUNDS", "choose_by_trial", "format_trials", "score_backends", "time_backends"]

LOGGER = logging.getLogger(__name__)
ROUNDS = 10


def time_backends(
    backends: Mapping[str, Backend],
    imgsz: int,
    batch: int,
    device: torch.device,
    iters: int | None = None,
    warmup: int | None = None,
) -> dict[str, dict[str, Any]]:
    """Median and fastest latency (ms per batch) of every backend, timed in interleaved rounds on one input, so that
    background load falls on all of them alike.

    Host clocks time every call, each ending with a device synchronize: OpenVINO (and ONNX Runtime without its CUDA
    provider) run on the CPU even when ``device`` is a GPU, where CUDA events would not see their work.

    Returns:
        Per backend: ``ms`` (median), ``ms_min``, ``images_per_s`` and the ``times`` of every call.
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


def score_backends(backends: Mapping[str, Backend], data: str, imgsz: int, batch: int) -> dict[str, dict[str, float]]:
    """mAP by pycocotools of every backend on the same square letterboxed batches of the val split of ``data``,
    with the first backend's evaluation settings (conf, iou, max_det).

    Raises:
        ArgumentError: ``data`` has another number of classes than the models.
    """
    # imported here: the validator imports the deploy package, whose exporter imports this module
    from yolorep.engine.val.validator import build_eval_loader, build_validator, eval_settings

    spec = load_data_spec(data)
    reference = next(iter(backends.values()))
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


def choose_by_trial(
    precisions: list[str],
    write: Callable[[str, Path], Path],
    fmt: DeployFormat,
    data: str,
    imgsz: int,
    batch: int,
) -> PrecisionChoice:
    """``--precision auto`` with data: export every candidate precision (``write(precision, folder) -> path``, each
    into its own temporary folder), time them side by side on the CPU, score them on the val split of ``data``,
    and choose the fastest within ``MAX_MAP_DROP`` mAP50-95 of fp32 (``precision.pick_fastest``)."""
    device = torch.device("cpu")
    LOGGER.info("--precision auto: measuring %s on this CPU and on the val split of %s", ", ".join(precisions), data)
    with tempfile.TemporaryDirectory(prefix="yolorep_precision_") as tmp:
        backends = {p: fmt.backend(write(p, Path(tmp) / p), device) for p in precisions}
        timing = time_backends(backends, imgsz, batch, device)
        scores = score_backends(backends, data, imgsz, batch)
        del backends  # runtimes hold their files open until released
    # decided on each one's fastest call: the latency least disturbed by whatever else the machine runs
    trials = [Trial(p, p, timing[p]["ms_min"], scores[p]["map50_95"]) for p in precisions]
    best, reason, notes = pick_fastest(trials, Path(data).name)
    LOGGER.info("%s", format_trials(trials, best, {p: timing[p]["ms"] for p in precisions}))
    for note in notes:
        LOGGER.info("passed over %s", note)
    return PrecisionChoice(best.precision, reason)


def format_trials(trials: list[Trial], chosen: Trial, median: Mapping[str, float]) -> str:
    """The table ``choose_by_trial`` logs: latency and mAP of every candidate, the chosen one marked."""
    reference = next(t for t in trials if t.precision == "fp32")
    lines = [
        f"precision trial (ms per batch, interleaved in {ROUNDS} rounds, chosen on the fastest call; mAP50-95 by "
        f"pycocotools; a precision qualifies within {MAX_MAP_DROP} of fp32)",
        f"{'precision':<12}{'min ms':>9}{'median':>9}{'mAP50-95':>10}{'diff':>9}",
    ]
    for t in trials:
        diff = t.map50_95 - reference.map50_95 if t.map50_95 is not None and reference.map50_95 is not None else 0.0
        mark = "  <- chosen" if t is chosen else ""
        lines.append(f"{t.name:<12}{t.ms:>9.1f}{median[t.name]:>9.1f}{t.map50_95 or 0:>10.4f}{diff:>+9.4f}{mark}")
    return "\n".join(lines)
