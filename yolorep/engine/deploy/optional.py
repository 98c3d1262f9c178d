"""Optional dependencies (onnx, onnxruntime, openvino, nncf ...), imported only by the function that needs one."""

from __future__ import annotations

import importlib
import importlib.util
import logging
from types import ModuleType

from yolorep.errors import YolorepError

__all__ = ["QUIET_ON_IMPORT", "require", "require_installed"]

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


def require_installed(module: str, purpose: str, extra: str) -> None:
    """Check that ``module`` is installed without importing it (a converter whose import is heavy or starts threads
    runs in a child process), or raise ``require``'s one line."""
    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package of a dotted name is missing, or an import was blocked
        found = False
    if not found:
        package = module.split(".")[0]
        raise YolorepError(
            f"{purpose}: needs the {package} package, which is not installed; pip install 'yolorep[{extra}]'"
        )
