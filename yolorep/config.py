"""Model YAML -> frozen ``ModelSpec``, validated, with the file and line of every row kept for error messages.

The format is the one YOLO users know::

    nc: 80
    scales:            # name: [depth, width, max_channels]
      n: [0.33, 0.25, 1024]
    backbone:          # [from, repeats, module, args]
      - [-1, 1, RepVGGBlock, [64, 3, 2]]
    head:
      - [[-1, 6], 1, Concat, [1]]
      - [[17, 20, 23], 1, Detect, [nc]]

``args`` is a list (positional, after the inferred input channels) or a mapping of parameter names. Strings are
substituted, never evaluated: ``nc`` becomes the class count, ``None`` becomes null, and a name that the selected
scale defines in an optional fourth entry (``m: [0.50, 1.00, 512, {c3k: true}]``) becomes its value there, for the
few arguments that change with the scale beyond depth and width.
"""

from __future__ import annotations

import copy
import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import yaml

from yolorep.assets import MODELS_DIR
from yolorep.errors import ConfigError

__all__ = ["LayerInputs", "LayerSpec", "ModelSpec", "load_model_spec", "resolve_model_path", "shipped_model_names"]

MODEL_DIRS = (MODELS_DIR,)
# The YAML `from` column resolved to absolute layer indices: one index, or several for multi-input layers.
LayerInputs = Union[int, tuple[int, ...]]


@dataclass(frozen=True)
class LayerSpec:
    """One row of a model YAML. ``inputs`` holds absolute layer indices (-1 is the input image)."""

    index: int
    where: str  # "file:line: head[3]" for error messages
    inputs: LayerInputs
    repeats: int
    module: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelSpec:
    """A validated model description at one scale.

    ``cfg`` is the YAML mapping as written (with ``nc`` applied): the plain dict a checkpoint stores beside
    ``name`` and ``scale``, from which the same model is built again.
    """

    name: str
    nc: int
    scale: str | None
    depth: float
    width: float
    max_channels: int
    layers: tuple[LayerSpec, ...]
    cfg: dict[str, Any]


def resolve_model_path(path: str | Path) -> tuple[Path, str | None]:
    """Find a model YAML and the scale its name selects: ``yolorep-s.yaml`` -> (``.../yolorep.yaml``, ``"s"``);
    ultralytics' ``yolov8n.yaml`` -> (``.../yolov8.yaml``, ``"n"``).

    Relative paths are tried from the working directory, then from the shipped ``cfg/models``.

    Raises:
        ConfigError: no such file, or a scale the file does not define; the message lists the names that work.
    """
    path = Path(path)
    candidates = [path] + [d / path.name for d in MODEL_DIRS if not path.is_absolute()]
    for candidate in candidates:
        if candidate.is_file():
            return candidate, None
        match = re.fullmatch(r"(.+)-([a-z]+)(\.ya?ml)", candidate.name)
        family = candidate.parent / (match[1] + match[3]) if match else None
        if family is not None and family.is_file():
            scales = _scales_of(family)
            if scales and match[2] not in scales:
                named = ", ".join(f"{match[1]}-{s}{match[3]}" for s in scales)
                defines = f"{family.name} defines {', '.join(scales)}"
                raise ConfigError(f"{path}: unknown scale {match[2]!r} ({defines}); use one of: {named}")
            return family, match[2]
        # ultralytics' spelling, scale letter straight after the family's version number: yolov8n.yaml, yolo11s.yaml
        match = re.fullmatch(r"(.+\d)([a-z])(\.ya?ml)", candidate.name)
        family = candidate.parent / (match[1] + match[3]) if match else None
        if family is not None and family.is_file() and match[2] in _scales_of(family):
            return family, match[2]
    names = shipped_model_names()
    stems = {Path(name).stem: name for name in names}  # compared without the suffix, which every name shares
    close = difflib.get_close_matches(path.stem, list(stems), n=1, cutoff=0.6)
    hint = f"did you mean {stems[close[0]]}? " if close else ""
    raise ConfigError(f"{path}: model YAML not found; {hint}give a path to a model YAML or one of: {', '.join(names)}")


def _scales_of(path: Path) -> list[str]:
    """The scale names a model YAML defines (none when it cannot be read: loading it reports why)."""
    try:
        scales = yaml.safe_load(path.read_text()).get("scales")
    except (OSError, yaml.YAMLError, AttributeError):
        return []
    return [str(s) for s in scales] if isinstance(scales, dict) else []


def shipped_model_names() -> list[str]:
    """The model names that work from any folder, as users type them: each shipped YAML at each of its scales
    (``yolorep-n.yaml`` ...), or the file itself when it has no scales."""
    names = []
    for folder in MODEL_DIRS:
        for path in sorted(folder.glob("*.yaml")):
            names += [f"{path.stem}-{s}{path.suffix}" for s in _scales_of(path)] or [path.name]
    return names


def load_model_spec(
    cfg: str | Path | dict, nc: int | None = None, scale: str | None = None, name: str | None = None
) -> ModelSpec:
    """Parse and validate a model description from a YAML path or an already-loaded dict.

    Args:
        cfg: a model YAML path, or its mapping (as a checkpoint stores it).
        nc: class count, replacing the file's ``nc``.
        scale: which row of ``scales`` to use. For a path, ``yolorep-s.yaml`` selects ``s`` of ``yolorep.yaml``
            when no ``scale`` is given; otherwise the first scale is used.
        name: the model's name (default: the file's stem, ``"model"`` for a mapping).
    """
    if isinstance(cfg, dict):
        raw, where, lines = copy.deepcopy(cfg), f"{name or 'model'} (config mapping)", {}
    else:
        path, path_scale = resolve_model_path(cfg)
        text = path.read_text()
        try:
            raw = yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise ConfigError(f"{path}: not valid YAML: {err}") from None
        where, lines, name = str(path), _row_lines(text), name or path.stem
        scale = scale or path_scale
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: expected a mapping with nc, backbone and head; got {type(raw).__name__}")
    if nc is not None:
        raw["nc"] = nc
    return _validate(raw, where, name or "model", lines, scale)


def _row_lines(text: str) -> dict[tuple[str, int], int]:
    """Map (section, row) to the 1-based line of that row in the YAML text."""
    lines: dict[tuple[str, int], int] = {}
    root = yaml.compose(text)
    if not isinstance(root, yaml.MappingNode):
        return lines
    for key, value in root.value:
        if key.value in ("backbone", "head") and isinstance(value, yaml.SequenceNode):
            for row, item in enumerate(value.value):
                lines[(key.value, row)] = item.start_mark.line + 1
    return lines


def _validate(raw: dict, where: str, name: str, lines: dict, scale: str | None) -> ModelSpec:
    nc = raw.get("nc")
    if not isinstance(nc, int) or isinstance(nc, bool) or nc < 1:
        raise ConfigError(f"{where}: 'nc' must be a positive integer (the number of classes); got {nc!r}")
    depth, width, max_channels, scale, variables = _select_scale(raw, where, scale)
    substitutions = {**variables, "nc": nc, "None": None}
    layers: list[LayerSpec] = []
    for section in ("backbone", "head"):
        rows = raw.get(section)
        if not isinstance(rows, list) or not rows:
            raise ConfigError(f"{where}: '{section}' must be a non-empty list of [from, repeats, module, args] rows")
        for row_index, row in enumerate(rows):
            line = lines.get((section, row_index))
            row_where = f"{where}:{line}: {section}[{row_index}]" if line else f"{where}: {section}[{row_index}]"
            layers.append(_parse_row(row, len(layers), row_where, substitutions))
    return ModelSpec(name, nc, scale, depth, width, max_channels, tuple(layers), raw)


def _select_scale(raw: dict, name: str, scale: str | None) -> tuple[float, float, int, str | None, dict[str, Any]]:
    scales = raw.get("scales")
    if not scales:
        if scale:
            raise ConfigError(f"{name}: scale {scale!r} requested but the file has no 'scales' section")
        return float(raw.get("depth_multiple", 1.0)), float(raw.get("width_multiple", 1.0)), 1 << 30, None, {}
    if not isinstance(scales, dict):
        raise ConfigError(f"{name}: 'scales' must map a scale name to [depth, width, max_channels]")
    scale = scale or next(iter(scales))
    if scale not in scales:
        raise ConfigError(f"{name}: unknown scale {scale!r}; this file defines {', '.join(scales)}")
    values = scales[scale]
    variables = values[3] if isinstance(values, list) and len(values) == 4 else {}
    numbers = values[:3] if isinstance(values, list) and len(values) in (3, 4) else None
    if not (numbers and all(isinstance(v, (int, float)) for v in numbers) and isinstance(variables, dict)):
        raise ConfigError(
            f"{name}: scales.{scale} must be [depth, width, max_channels] or [depth, width, max_channels, "
            f"{{name: value, ...}}]; got {values!r}"
        )
    return float(numbers[0]), float(numbers[1]), int(numbers[2]), scale, variables


def _parse_row(row: Any, index: int, where: str, substitutions: dict[str, Any]) -> LayerSpec:
    if not isinstance(row, list) or len(row) not in (3, 4):
        raise ConfigError(f"{where}: a row is [from, repeats, module, args]; got {row!r}")
    source, repeats, module = row[:3]
    args = row[3] if len(row) == 4 else []
    if not isinstance(module, str):
        raise ConfigError(f"{where}: the module name must be a string; got {module!r}")
    where = f"{where} {module}"
    if not isinstance(repeats, int) or isinstance(repeats, bool) or repeats < 1:
        raise ConfigError(f"{where}: repeats must be a positive integer; got {repeats!r}")
    inputs = _resolve_inputs(source, index, where)
    if isinstance(args, dict):
        kwargs = {k: _substitute(v, substitutions) for k, v in args.items()}
        return LayerSpec(index, where, inputs, repeats, module, (), kwargs)
    if not isinstance(args, list):
        raise ConfigError(f"{where}: args must be a list or a mapping of parameter names; got {args!r}")
    return LayerSpec(index, where, inputs, repeats, module, tuple(_substitute(a, substitutions) for a in args))


def _resolve_inputs(source: Any, index: int, where: str) -> LayerInputs:
    def one(value: Any) -> int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise ConfigError(f"{where}: 'from' must be an integer or a list of integers; got {value!r}")
        absolute = index + value if value < 0 else value
        if value == -1 and index == 0:
            return -1  # the input image
        if not 0 <= absolute < index:
            raise ConfigError(
                f"{where}: 'from' index {value} points to layer {absolute}, but only layers 0..{index - 1} come "
                "before this row; use -1 for the previous layer or the absolute index of an earlier row"
            )
        return absolute

    if isinstance(source, list):
        if not source:
            raise ConfigError(f"{where}: 'from' is an empty list")
        return tuple(one(v) for v in source)
    return one(source)


def _substitute(value: Any, substitutions: dict[str, Any]) -> Any:
    """``nc``, ``None`` and the scale's named values replaced; anything else as written."""
    return substitutions[value] if isinstance(value, str) and value in substitutions else value
