"""Optional dependencies (onnx, onnxruntime, openvino, nncf), imported only by the function that needs one."""

from __future__ import annotations

import importlib
from types import ModuleType

from yolorep.errors import YolorepError

__all__ = ["EXTRAS", "require"]

# package -> the pip extra of yolorep that installs it
EXTRAS = {"onnx": "export", "onnxruntime": "export", "openvino": "openvino", "nncf": "openvino"}


def require(module: str, purpose: str) -> ModuleType:
    """Import ``module`` (e.g. ``openvino`` or ``onnxruntime.quantization``), or raise one line naming what needed
    it and the pip extra that installs its package.

    Raises:
        YolorepError: ``<purpose>: needs the openvino package, which is not installed; pip install
            'yolorep[openvino]'``
    """
    try:
        return importlib.import_module(module)
    except ImportError:
        package = module.split(".")[0]
        raise YolorepError(
            f"{purpose}: needs the {package} package, which is not installed; pip install 'yolorep[{EXTRAS[package]}]'"
        ) from None
