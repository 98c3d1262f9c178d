"""Optional dependencies (onnx, onnxruntime, openvino, nncf ...), imported only by the function that needs one."""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import warnings
from collections.abc import Iterator, Mapping
from types import ModuleType

from yolorep.errors import YolorepError

__all__ = ["QUIET_ON_IMPORT", "quiet", "require"]

# loggers that warn while a package is imported, about nothing yolorep uses: importing nncf probes torch's C++
# extension toolchain, which warns "No CUDA runtime is found" on every CPU-only machine
QUIET_ON_IMPORT = {"nncf": ("torch.utils.cpp_extension",)}


def require(module: str, purpose: str, extra: str) -> ModuleType:
    """Import ``module`` (e.g. ``openvino`` or ``onnxruntime.quantization``), or raise one line naming what needed
    it and the pip ``extra`` of yolorep that installs its package.

    Raises:
        YolorepError: ``<purpose>: needs the openvino package, which is not installed; pip install
            'yolorep[openvino]'``
    """
    loggers = [logging.getLogger(name) for name in QUIET_ON_IMPORT.get(module, ())]
    levels = [logger.level for logger in loggers]
    try:
        for logger in loggers:
            logger.setLevel(logging.ERROR)
        return importlib.import_module(module)
    except ImportError:
        package = module.split(".")[0]
        raise YolorepError(
            f"{purpose}: needs the {package} package, which is not installed; pip install 'yolorep[{extra}]'"
        ) from None
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


@contextlib.contextmanager
def quiet(environment: Mapping[str, str], expected_warnings: tuple[str, ...] = ()) -> Iterator[None]:
    """Run a converter with ``environment`` set (the switches that turn off its progress printing) and the
    ``expected_warnings`` (message patterns) ignored; the caller's environment is restored after the block."""
    previous = {key: os.environ.get(key) for key in environment}
    os.environ.update(environment)
    try:
        with warnings.catch_warnings():
            for pattern in expected_warnings:
                warnings.filterwarnings("ignore", message=pattern)
            yield
    finally:
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
