"""Tracker YAML (``cfg/trackers/bytetrack.yaml``, ``botsort.yaml`` or a user's file) -> frozen ``TrackerConfig``.

Keys left out take the built-in file's value for that ``tracker_type``; ultralytics' tracker files are read as
they are (their re-identification keys are accepted while ``with_reid`` is false). Every mistake is one
``ConfigError`` line naming the file and key.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Union

import yaml

from yolorep.assets import TRACKERS_DIR
from yolorep.errors import ConfigError

__all__ = ["GMC_METHODS", "TRACKER_TYPES", "TrackerConfig", "load_tracker_config"]

TRACKER_TYPES = ("bytetrack", "botsort")
GMC_METHODS = ("sparseOptFlow", "ecc", "none")
_REID_KEYS = frozenset({"proximity_thresh", "appearance_thresh", "model"})  # meaningful only with with_reid: true

TrackerSource = Union[str, Path, dict, "TrackerConfig"]


@dataclass(frozen=True)
class TrackerConfig:
    """A tracker's settings (see the comments in ``cfg/trackers/*.yaml``)."""

    tracker_type: str = "bytetrack"
    track_high_thresh: float = 0.25
    track_low_thresh: float = 0.1
    new_track_thresh: float = 0.25
    track_buffer: int = 30
    match_thresh: float = 0.8
    fuse_score: bool = True
    recover_buffer: float = 0.0  # > 0: a recovery round for lost tracks with boxes grown by this (C-BIoU)
    gmc_method: str = "none"  # BoT-SORT only
    source: str = "defaults"  # where it was read from, for messages


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({str(err).splitlines()[0]}); fix the syntax") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: cannot be read ({err}); pass a tracker YAML such as bytetrack.yaml") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of tracker settings such as 'tracker_type: bytetrack'")
    return data


def _resolve(name: str | Path) -> Path:
    path = Path(name).expanduser()
    if path.is_file():
        return path
    for candidate in (TRACKERS_DIR / path.name, TRACKERS_DIR / f"{path.name}.yaml"):
        if path.parent == Path(".") and candidate.is_file():
            return candidate
    builtin = ", ".join(sorted(p.name for p in TRACKERS_DIR.glob("*.yaml")))
    raise ConfigError(f"--tracker {name}: no such file; pass a tracker YAML or a built-in name ({builtin})")


def _check_value(where: str, key: str, value: Any, default: Any) -> Any:
    """``value`` converted to the type of ``default``, or a ConfigError naming ``where`` and ``key``."""
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: {key}: {value!r} is not true or false")
        return value
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{where}: {key}: {value!r} is not a whole number of frames of at least 1")
        return value
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
            raise ConfigError(f"{where}: {key}: {value!r} is not a number between 0 and 1")
        return float(value)
    return value


def _from_mapping(data: dict[str, Any], where: str) -> TrackerConfig:
    tracker_type = data.get("tracker_type")
    if tracker_type not in TRACKER_TYPES:
        raise ConfigError(f"{where}: tracker_type: {tracker_type!r} is not one of {', '.join(TRACKER_TYPES)}")
    builtin = _read_yaml(TRACKERS_DIR / f"{tracker_type}.yaml")
    known = set(builtin) | {"with_reid"} | (_REID_KEYS if tracker_type == "botsort" else set())
    for key in data:
        if key not in known:
            close = difflib.get_close_matches(str(key), sorted(known), n=1)
            hint = f"did you mean {close[0]}?" if close else f"valid keys: {', '.join(sorted(builtin))}"
            raise ConfigError(f"{where}: unknown key {key!r}; {hint}")
    if data.get("with_reid", False) is not False:
        raise ConfigError(f"{where}: with_reid: {data['with_reid']!r}: appearance re-identification is not part of "
                          "yolorep; set with_reid: false")  # fmt: skip
    defaults = TrackerConfig()
    values: dict[str, Any] = {"tracker_type": tracker_type, "source": where}
    for spec in fields(TrackerConfig):
        if spec.name in ("tracker_type", "source") or (spec.name not in builtin and spec.name not in data):
            continue
        values[spec.name] = _check_value(where, spec.name, data.get(spec.name, builtin.get(spec.name)),
                                         getattr(defaults, spec.name))  # fmt: skip
    config = TrackerConfig(**values)
    if config.gmc_method not in GMC_METHODS:
        raise ConfigError(f"{where}: gmc_method: {config.gmc_method!r} is not one of {', '.join(GMC_METHODS)}")
    if config.track_low_thresh > config.track_high_thresh:
        raise ConfigError(f"{where}: track_low_thresh {config.track_low_thresh} is above track_high_thresh "
                          f"{config.track_high_thresh}; the second round takes the scores between them")  # fmt: skip
    return config


def load_tracker_config(tracker: TrackerSource = "bytetrack.yaml") -> TrackerConfig:
    """Read a tracker YAML: a path, a built-in name (``bytetrack.yaml``, ``botsort``), a mapping of its keys, or a
    ``TrackerConfig`` (returned as is).

    Raises:
        ConfigError: the file is missing or malformed, or a key is unknown or out of range.
    """
    if isinstance(tracker, TrackerConfig):
        return tracker
    if isinstance(tracker, dict):
        return _from_mapping(tracker, "tracker")
    path = _resolve(tracker)
    return _from_mapping(_read_yaml(path), str(path))
