"""Checking and timing the unfused model against the fused one at one input shape.

The fused model in exact fp32 (no TF32) is the reference. Both models are run on the requested path, the outputs
are checked against the reference, and only then are the two timed, in interleaved rounds.
"""

from __future__ import annotations

import copy
import statistics
from dataclasses import asdict, replace
from functools import partial
from typing import Any

import torch

from yolorep.benchmark.paths import Runner, RunOptions
from yolorep.engine.deploy.tolerance import DTYPE_NAMES, Check, exact_fp32
from yolorep.engine.device import cudnn_autotune
from yolorep.engine.timing import default_iters, default_warmup, time_calls, time_interleaved
from yolorep.errors import YolorepError
from yolorep.nn.model import DecodedModel, DetectionModel

__all__ = ["ROUNDS", "compare"]

ROUNDS = 10


def compare(
    unfused: DetectionModel,
    fused: DetectionModel,
    options: RunOptions,
    *,
    batch: int,
    imgsz: int,
    iters: int | None = None,
    warmup: int | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Check and time ``unfused`` against ``fused`` (both fp32, eval, on ``options.device``; left unchanged).

    Both run with decoding (``DecodedModel``), as deployed: outputs are [B, N, 4 + nc] boxes and scores.

    Raises:
        YolorepError: a model or path disagrees with the fused fp32 model beyond its tolerance.
    """
    device = options.device
    images = torch.rand(batch, 3, imgsz, imgsz, generator=torch.Generator().manual_seed(seed)).to(device)
    sizes = unfused.info(imgsz, verbose=False), fused.info(imgsz, verbose=False)
    unfused, fused = DecodedModel(unfused), DecodedModel(fused)
    with exact_fp32(), torch.no_grad():
        ref_unfused, ref_fused = unfused(images), fused(images)
    checks = [Check.of("unfused vs fused, fp32", ref_unfused, ref_fused, "fp32", imgsz)]
    warmup = default_warmup(device) if warmup is None else warmup
    with cudnn_autotune():
        fused_runner, options, probe = _fused_runner(fused, options, images, warmup)
        unfused_runner = Runner(copy.deepcopy(unfused), options, images)
        if not options.is_plain:
            for name, runner in (("fused", fused_runner), ("unfused", unfused_runner)):
                output = runner(runner.prepare(images)).clone()
                checks.append(Check.of(f"{name}, {options.describe()}", output, ref_fused, options.precision, imgsz))
        _raise_if_failed(checks)
        calls = [partial(r, r.prepare(images)) for r in (unfused_runner, fused_runner)]
        warm = [time_calls(call, max(warmup, 1), device) for call in calls]
        iters = iters or default_iters(sum(w[-1] for w in warm), device)
        unfused_times, fused_times = time_interleaved(calls, iters, ROUNDS, device)
    return {
        "dtype": DTYPE_NAMES[options.dtype],
        "precision": options.precision,
        "precision_mode": ("weights" if options.cast_weights else "autocast") if options.is_reduced else None,
        "precision_probe_ms": probe,
        "path": options.describe(),
        "params": sizes[0]["params"],
        "gflops": sizes[0]["gflops"],
        "fused_params": sizes[1]["params"],
        "fused_gflops": sizes[1]["gflops"],
        **_timing_figures(unfused_times, fused_times, batch),
        "max_abs_diff": float((ref_unfused - ref_fused).abs().max()),
        "max_box_diff_px": checks[0].box_px,
        "max_score_diff": checks[0].score,
        "checks": [{**asdict(c), "ok": c.ok} for c in checks],
        "iters": len(fused_times),
        "warmup": warmup,
        "rounds": min(ROUNDS, iters),
        "timer": "CUDA events" if device.type == "cuda" else "time.perf_counter",
    }


def _timing_figures(unfused_times: list[float], fused_times: list[float], batch: int) -> dict[str, float]:
    """Median and fastest call of each model (ms), the speedup of the fused one and the images per second."""
    unfused_ms, fused_ms = statistics.median(unfused_times), statistics.median(fused_times)
    return {
        "unfused_ms": unfused_ms,
        "fused_ms": fused_ms,
        "unfused_ms_min": min(unfused_times),
        "fused_ms_min": min(fused_times),
        "speedup": unfused_ms / fused_ms,
        "images_per_s_unfused": batch * 1e3 / unfused_ms,
        "images_per_s_fused": batch * 1e3 / fused_ms,
    }


def _fused_runner(
    fused: DecodedModel, options: RunOptions, images: torch.Tensor, warmup: int
) -> tuple[Runner, RunOptions, dict[str, float] | None]:
    """The fused model's runner; for fp16/bf16, the faster of casting the weights and autocast, by a short probe.

    Returns:
        The runner, the options it was built with, and the probe's median ms per way (None at fp32).
    """
    if not options.is_reduced:
        return Runner(copy.deepcopy(fused), options, images), options, None
    candidates = [replace(options, cast_weights=cast) for cast in (True, False)]
    runners = [Runner(copy.deepcopy(fused), candidate, images) for candidate in candidates]
    calls = [partial(r, r.prepare(images)) for r in runners]
    for call in calls:
        time_calls(call, max(warmup, 1), options.device)
    probe_iters = 20 if options.device.type == "cuda" else 6
    medians = [statistics.median(t) for t in time_interleaved(calls, probe_iters, 2, options.device)]
    best = medians.index(min(medians))
    return runners[best], candidates[best], {"weights": medians[0], "autocast": medians[1]}


def _raise_if_failed(checks: list[Check]) -> None:
    failed = [c for c in checks if not c.ok]
    if failed:
        details = "; ".join(
            f"{c.name}: boxes differ by {c.box_px:.3g} px (tolerance {c.box_tol_px:.3g}), scores by {c.score:.3g} "
            f"(tolerance {c.score_tol:.3g})"
            for c in failed
        )
        raise YolorepError(
            f"benchmark: outputs disagree with the fused fp32 model beyond tolerance: {details}; nothing was timed. "
            "If the first check fails, fusing is broken; otherwise run without the failing path's flag"
        )
