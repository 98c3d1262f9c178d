"""Training hyperparameters: ``cfg/default.yaml`` is the one place their defaults are written."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from yolorep.assets import DEFAULT_HYP_YAML
from yolorep.errors import ConfigError

__all__ = ["describe_hyp", "load_hyp", "read_hyp_overrides"]


def _defaults() -> dict[str, Any]:
    return yaml.safe_load(DEFAULT_HYP_YAML.read_text())


def read_hyp_overrides(overrides: str | Path | dict | None) -> dict[str, Any]:
    """The keys a hyperparameter YAML (or dict) sets, checked against cfg/default.yaml's keys."""
    if overrides is None:
        return {}
    where = "hyp" if isinstance(overrides, dict) else str(overrides)
    if not isinstance(overrides, dict):
        path = Path(overrides)
        if not path.is_file():
            raise ConfigError(f"{path}: hyperparameter file not found; pass a YAML of cfg/default.yaml keys")
        try:
            overrides = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"{path}: not valid YAML ({str(err).splitlines()[0]}); fix the syntax") from None
        if not isinstance(overrides, dict):
            raise ConfigError(f"{path}: expected a mapping of hyperparameters such as 'lr0: 0.002'")
    unknown = sorted(set(overrides) - set(_defaults()))
    if unknown:
        raise ConfigError(f"{where}: unknown hyperparameters {unknown}; valid keys are those of {DEFAULT_HYP_YAML}")
    return dict(overrides)


def load_hyp(overrides: str | Path | dict | None = None) -> dict[str, Any]:
    """``cfg/default.yaml``, updated with a hyperparameter YAML or dict; unknown keys are an error."""
    return {**_defaults(), **read_hyp_overrides(overrides)}


def describe_hyp() -> dict[str, str]:
    """Each hyperparameter's one-line meaning: the comment beside it in cfg/default.yaml."""
    pattern = re.compile(r"^(\w+):[^#]*#\s*(.+)$")
    return {m[1]: m[2].strip() for line in DEFAULT_HYP_YAML.read_text().splitlines() if (m := pattern.match(line))}
