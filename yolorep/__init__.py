"""yolorep: YOLO-style detection built around structural re-parameterization.

Importing the package is cheap and has no side effects: torch is imported by the functions that need it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from yolorep.version import __version__

__all__ = ["YOLO", "__version__", "build_model", "load", "save"]

if TYPE_CHECKING:
    from pathlib import Path

    from yolorep.api import YOLO
    from yolorep.nn.model import DetectionModel


def __getattr__(name: str) -> Any:
    # `yolorep.YOLO` imports the engine on first use, so `import yolorep` stays light
    if name == "YOLO":
        from yolorep.api import YOLO

        return YOLO
    raise AttributeError(f"module 'yolorep' has no attribute {name!r}")


def build_model(cfg: str | Path | dict, nc: int | None = None, scale: str | None = None) -> DetectionModel:
    """Build a detector from a model YAML path, a scale-suffixed name (``yolorep-s.yaml``) or a dict."""
    from yolorep.nn.model import build_model as _build

    return _build(cfg, nc=nc, scale=scale)


def save(model: DetectionModel, path: str | Path, **meta: Any) -> Path:
    """Write ``model`` to ``path`` atomically as a weights-only checkpoint; ``meta`` is stored beside it."""
    from yolorep.engine.checkpoint import save_checkpoint

    return save_checkpoint(model, path, **meta)


def load(path: str | Path) -> DetectionModel:
    """Rebuild the model stored at ``path`` (fused if it was saved fused); checkpoint metadata is ``model.meta``."""
    from yolorep.engine.checkpoint import load_checkpoint

    return load_checkpoint(path)
