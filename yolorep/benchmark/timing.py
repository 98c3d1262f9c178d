"""The old import path of the timers, kept for scripts and code written against it: they live in
``yolorep.engine.timing``, where ``yolorep export --precision auto`` times its candidate precisions too (the engine
never imports the benchmark package)."""

from yolorep.engine.timing import Clock, default_iters, default_warmup, time_calls, time_interleaved

__all__ = ["Clock", "default_iters", "default_warmup", "time_calls", "time_interleaved"]
