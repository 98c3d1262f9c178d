"""``yolorep benchmark``: what fusing buys, measured side by side (latency, throughput, agreement, training steps)."""

from yolorep.benchmark.command import benchmark

__all__ = ["benchmark"]
