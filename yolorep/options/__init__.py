"""Every command's options, each declared once as a field of a frozen dataclass (``fields.option``).

The command line, the Python keyword arguments, the checks and their messages, and what checkpoints store are
generated from these classes: ``TrainOptions`` (with ``Hyperparameters``), ``ValOptions``, ``PredictOptions``,
``TrackOptions``, ``TrackEvalOptions``, ``ExportOptions``, one class per benchmark mode, ``DemoOptions``,
``InfoOptions``, ``ConvertOptions``, ``ImportOptions`` and ``CheckDataOptions``.
"""

from yolorep.options.benchmark import (
    BENCHMARK_MODES,
    BenchmarkOptions,
    EpochOptions,
    FormatsOptions,
    SweepOptions,
    TrainStepOptions,
    benchmark_options,
)
from yolorep.options.fields import Options, OptionSpec, option
from yolorep.options.hyp import Hyperparameters, describe_hyp, load_hyp
from yolorep.options.inference import ExportOptions, PredictOptions, ValOptions
from yolorep.options.tools import CheckDataOptions, ConvertOptions, DemoOptions, ImportOptions, InfoOptions
from yolorep.options.track import TrackEvalOptions, TrackOptions
from yolorep.options.train import TrainOptions

__all__ = [
    "BENCHMARK_MODES",
    "BenchmarkOptions",
    "CheckDataOptions",
    "ConvertOptions",
    "DemoOptions",
    "EpochOptions",
    "ExportOptions",
    "FormatsOptions",
    "Hyperparameters",
    "ImportOptions",
    "InfoOptions",
    "OptionSpec",
    "Options",
    "PredictOptions",
    "SweepOptions",
    "TrackEvalOptions",
    "TrackOptions",
    "TrainOptions",
    "TrainStepOptions",
    "ValOptions",
    "benchmark_options",
    "describe_hyp",
    "load_hyp",
    "option",
]
