"""Training hyperparameters: ``cfg/default.yaml`` is the one place their defaults are written."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from yolorep.assets import DEFAULT_HYP_YAML
from yolorep.errors import ConfigError

__all__ = ["load_hyp"]


def load_hyp(overrides: str | Path | dict | None = None) -> dict[str, Any]:
    """``cfg/default.yaml``, updated with a hyperparameter YAML or dict; unknown keys are an error."""
    hyp = yaml.safe_load(DEFAULT_HYP_YAML.read_text())
    if overrides is None:
        return hyp
    where = str(overrides) if not isinstance(overrides, dict) else "hyp"
    if not isinstance(overrides, dict):
        path = Path(overrides)
        if not path.is_file():
            raise ConfigError(f"{path}: hyperparameter file not found")
        overrides = yaml.safe_load(path.read_text()) or {}
    unknown = sorted(set(overrides) - set(hyp))
    if unknown:
        raise ConfigError(f"{where}: unknown hyperparameters {unknown}; valid keys are those of {DEFAULT_HYP_YAML}")
    hyp.update(overrides)
    return hyp
