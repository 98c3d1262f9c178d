"""Where the built-in YAML files live: model descriptions, default hyperparameters, dataset descriptions."""

from __future__ import annotations

from pathlib import Path

__all__ = ["DATA_DIR", "DEFAULT_HYP_YAML", "MODELS_DIR", "PROJECT_ROOT"]

PROJECT_ROOT = Path(__file__).resolve().parents[1]
MODELS_DIR = PROJECT_ROOT / "cfg" / "models"
DEFAULT_HYP_YAML = PROJECT_ROOT / "cfg" / "default.yaml"
DATA_DIR = PROJECT_ROOT / "data"
