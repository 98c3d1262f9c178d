"""Where the built-in YAML files live: model descriptions, default hyperparameters, trackers, dataset descriptions.

They sit at the repository's top level (``cfg/``, ``data/``) and ship inside the package: ``yolorep/cfg`` and
``yolorep/data`` link to them in the repository and are copied into the wheel, so an installed package finds them
from any folder through ``importlib.resources``.
"""

from __future__ import annotations

import os
from importlib.resources import files
from pathlib import Path

__all__ = [
    "DATA_DIR",
    "DEFAULT_HYP_YAML",
    "MODELS_DIR",
    "TRACKERS_DIR",
    "datasets_root",
    "find_builtin_data",
    "is_builtin_data",
]

_PACKAGE = Path(str(files("yolorep")))
MODELS_DIR = _PACKAGE / "cfg" / "models"
DEFAULT_HYP_YAML = _PACKAGE / "cfg" / "default.yaml"
TRACKERS_DIR = _PACKAGE / "cfg" / "trackers"
DATA_DIR = _PACKAGE / "data"
DATASETS_ENV = "YOLOREP_DATASETS"


def datasets_root() -> Path:
    """Where the built-in data YAMLs (``shapes.yaml``, ``coco.yaml``) keep their data: ``$YOLOREP_DATASETS`` if
    set, else ``datasets/`` in the working directory (the shapes set is generated there when absent)."""
    return Path(os.environ.get(DATASETS_ENV) or "datasets").resolve()


def find_builtin_data(name: str | Path) -> Path | None:
    """The shipped data YAML called ``name`` (``shapes.yaml``, also as ``data/shapes.yaml``), or None."""
    candidate = DATA_DIR / Path(name).name
    return candidate if candidate.is_file() else None


def is_builtin_data(path: Path) -> bool:
    return path.resolve().parent == DATA_DIR.resolve()
