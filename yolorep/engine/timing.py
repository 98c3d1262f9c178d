"""Timers for the benchmark and the export's precision trial: synchronized per-call latency, interleaved rounds, and
per-phase step clocks."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Callable

import torch

__all__ = ["Clock", "default_iters", "default_warmup", "time_calls", "time_interleaved"]

# (seconds of timed calls to aim for, fewest, most) when --iters is not given; all models together
_BUDGET = {"cuda": (5.0, 50, 1000), "cpu": (10.0, 10, 200)}


class Clock:
    """Marks points in time on ``device``; ``intervals()`` returns the milliseconds between consecutive marks.

    On a GPU a mark is a CUDA event recorded on the current stream, so marking does not synchronize and the
    intervals measure device time; ``intervals()`` synchronizes once. On the CPU a mark is ``time.perf_counter``.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.is_cuda = device.type == "cuda"
        self._marks: list = []

    def mark(self) -> None:
        if self.is_cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record(torch.cuda.current_stream(self.device))
            self._marks.append(event)
        else:
            self._marks.append(time.perf_counter())

    def intervals(self) -> list[float]:
        """Milliseconds between consecutive marks since the last call; clears the marks."""
        marks, self._marks = self._marks, []
        if self.is_cuda:
            if marks:
                marks[-1].synchronize()
            return [a.elapsed_time(b) for a, b in zip(marks, marks[1:])]
        return [(b - a) * 1e3 for a, b in zip(marks, marks[1:])]


def time_calls(fn: Callable[[], object], n: int, device: torch.device) -> list[float]:
    """Latency in ms of each of ``n`` calls of ``fn``. Each call is synchronized before the next starts, so this
    is the latency of one call, not pipelined throughput."""
    clock = Clock(device)
    times: list[float] = []
    for _ in range(n):
        clock.mark()
        fn()
        clock.mark()
        times += clock.intervals()
    return times


def time_interleaved(
    fns: Sequence[Callable[[], object]], iters: int, rounds: int, device: torch.device
) -> list[list[float]]:
    """Time several callables in alternating blocks (A B, B A, A B, ...) so that a change in background load
    during the run falls on all of them alike.

    Returns:
        For each callable, the latencies (ms) of ``rounds * ceil(iters / rounds)`` calls.
    """
    rounds = max(1, min(rounds, iters))
    block = math.ceil(iters / rounds)
    times: list[list[float]] = [[] for _ in fns]
    for r in range(rounds):
        order = range(len(fns)) if r % 2 == 0 else reversed(range(len(fns)))
        for i in order:
            times[i] += time_calls(fns[i], block, device)
    return times


def default_warmup(device: torch.device, train: bool = False) -> int:
    """Warm-up calls before timing: enough for cuDNN autotuning and allocator caches on a GPU."""
    if device.type == "cuda":
        return 10 if train else 25
    return 2 if train else 3


def default_iters(ms_per_iter: float, device: torch.device) -> int:
    """Timed calls per model so that the run takes a few seconds: ``ms_per_iter`` is the cost of one call of
    every model being compared, together."""
    budget_s, fewest, most = _BUDGET["cuda" if device.type == "cuda" else "cpu"]
    return int(min(most, max(fewest, budget_s * 1e3 / max(ms_per_iter, 1e-3))))
