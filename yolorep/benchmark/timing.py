"""The benchmark's timers: ``yolorep.engine.timing`` (where ``yolorep export --precision auto`` also times the
precisions it chooses between), under the name the benchmark modules and scripts import them by."""

from yolorep.engine.timing import Clock, default_iters, default_warmup, time_calls, time_interleaved

__all__ = ["Clock", "default_iters", "default_warmup", "time_calls", "time_interleaved"]
