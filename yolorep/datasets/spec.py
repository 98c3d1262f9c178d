"""Dataset YAML -> :class:`DataSpec`.

A data YAML names the root (``path``, relative to the YAML's folder), the two splits (``train``, ``val``), maybe
a test split (``test``: only ``val --split test``, ``check-data`` and ``convert`` read it, never training) and
usually the class names (``names``). The rest depends on its layout, one module each in
:mod:`yolorep.datasets.layouts`: ``layout: coco|yolo|voc`` names it, else the layout is detected (the registry lists
them; see each module for its keys and files):

* COCO: ``train_json``/``val_json`` name instances files; classes come from their ``categories``.
* YOLO: no JSON keys; each ``images/.../x.jpg`` has ``labels/.../x.txt`` with rows ``cls cx cy w h`` normalised.
* Pascal VOC: ``Annotations/*.xml`` or ``annotations/*.xml`` under the root (and no YOLO ``labels/`` folder);
  ``train``/``val`` are list files or image folders, ``names`` is optional (collected from the XML files).

A spec with a ``synthetic:`` section describes the bundled shapes set, generated on first use by
:func:`ensure_data` (nothing is downloaded).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

from yolorep.assets import DATA_DIR, datasets_root, find_builtin_data, is_builtin_data
from yolorep.datasets.layouts.base import SPLITS, TEST_SPLIT, Layout, YamlSource
from yolorep.datasets.layouts.registry import LAYOUTS, detect_layout
from yolorep.errors import DatasetError, quoted

__all__ = ["SPLITS", "TEST_SPLIT", "DataSpec", "ensure_data", "ensure_split", "load_data_spec"]

logger = logging.getLogger(__name__)

# The synthetic generator writes this fixed layout, so a `synthetic:` spec must point at it.
_SYNTHETIC_LAYOUT = {
    "train": "images/train",
    "val": "images/val",
    "train_json": "annotations/instances_train.json",
    "val_json": "annotations/instances_val.json",
}
_SYNTHETIC_KEYS = ("n_train", "n_val", "imgsz", "seed", "max_objects")


@dataclass(frozen=True)
class DataSpec:
    """A parsed dataset description; every path is absolute.

    Attributes:
        yaml_path: the YAML file it was read from.
        root: dataset root (YAML ``path``, relative to the YAML's folder; the YAML's folder when absent).
        train: the training split as the YAML names it (``root / train``): an image folder (a list file or an
            image folder for VOC).
        val: the validation split, likewise.
        names: class names, index = contiguous class id. Empty until :func:`ensure_data` for a layout whose files
            name the classes (COCO, VOC) when the YAML gives none.
        layout: the data layout and what the YAML says about it alone (COCO's instances files, VOC's folders):
            a :class:`~yolorep.datasets.layouts.base.Layout` of :mod:`yolorep.datasets.layouts`.
        synthetic: generation settings for the bundled shapes set, ``None`` for real data.
        category_ids: dataset category id of each contiguous class (COCO: JSON ids ascending; YOLO, VOC: ``i + 1``).
        test: the test split as the YAML names it, ``None`` when it declares none.
    """

    yaml_path: Path
    root: Path
    train: Path
    val: Path
    names: tuple[str, ...]
    layout: Layout
    synthetic: dict[str, Any] | None = None
    category_ids: tuple[int, ...] = field(default=())
    test: Path | None = None

    @property
    def nc(self) -> int:
        """Number of classes."""
        return len(self.names)

    @property
    def splits(self) -> tuple[str, ...]:
        """The splits the YAML declares: train, val, and test when it has one."""
        return SPLITS + ((TEST_SPLIT,) if self.test is not None else ())

    def split_dir(self, split: str) -> Path:
        """The path of ``split`` (``"train"``, ``"val"`` or a declared ``"test"``): its image folder (for VOC also
        a list file)."""
        if split == TEST_SPLIT and self.test is None:
            others = "".join(f" and {key}: {what}" for key, what in self.layout.test_keys.items())
            raise DatasetError(
                f"{self.yaml_path}: test: the data set declares no test split; add test: <images>{others} to score one"
            )
        return getattr(self, _check_split(split))

    def class_to_category(self, cls: int) -> int:
        """Dataset category id of contiguous class ``cls``."""
        return self.category_ids[cls]

    def category_to_class(self, category_id: int) -> int:
        """Contiguous class of dataset category ``category_id``; raises KeyError when unknown."""
        return self._category_index[category_id]

    @cached_property
    def _category_index(self) -> dict[int, int]:
        return {c: i for i, c in enumerate(self.category_ids)}


def _check_split(split: str) -> str:
    if split not in (*SPLITS, TEST_SPLIT):
        raise DatasetError(f"split {split!r}: unknown split; use one of {', '.join((*SPLITS, TEST_SPLIT))}")
    return split


def load_data_spec(path: str | Path, *, ensure: bool = True) -> DataSpec:
    """Read a dataset YAML.

    A relative ``path:`` in the YAML is relative to the YAML's folder, except in the built-in YAMLs, whose data
    lives under :func:`yolorep.assets.datasets_root` (``./datasets`` or ``$YOLOREP_DATASETS``).

    Args:
        path: the YAML file, or the name of a built-in one (``shapes.yaml``, ``coco.yaml``) from any folder.
        ensure: also run :func:`ensure_data` (generate a synthetic set if absent, check that folders exist,
            read class names and category ids from the annotation files). ``False`` only parses.

    Raises:
        DatasetError: the file is missing or malformed, or (with ``ensure``) the data it names is absent.
    """
    source = _read_yaml(path)
    yaml_path, raw = source.yaml_path, source.raw
    layout_class = _layout_class(source)
    names = _parse_names(yaml_path, raw.get("names"), layout_class.title if layout_class.needs_names else None)
    layout = layout_class.from_yaml(source)
    test = _parse_test(source, layout)
    if "nc" in raw and names and raw["nc"] != len(names):
        raise DatasetError(f"{yaml_path}: nc: {quoted(raw['nc'])} but names has {len(names)} entries; make them agree")
    spec = DataSpec(
        yaml_path=yaml_path,
        root=source.root.resolve(),
        train=source.split_path("train").resolve(),
        val=source.split_path("val").resolve(),
        names=names,
        layout=layout,
        synthetic=_parse_synthetic(yaml_path, raw),
        category_ids=layout.default_category_ids(names),
        test=test,
    )
    return ensure_data(spec) if ensure else spec


def _parse_test(source: YamlSource, layout: Layout) -> Path | None:
    """The optional test split's path; a key another layout's test split needs (COCO's ``test_json``) is refused."""
    test = source.raw.get(TEST_SPLIT)
    if test is not None and not isinstance(test, str):
        raise DatasetError(f"{source.yaml_path}: test: expected the image folder relative to path, got {quoted(test)}")
    for other in LAYOUTS.values():
        given = [key for key in other.test_keys if key not in layout.test_keys and source.raw.get(key) is not None]
        if given:
            raise DatasetError(
                f"{source.yaml_path}: {given[0]}: only the {other.title} layout ({'/'.join(other.own_keys)}) reads it"
            )
    return None if test is None else source.split_path(TEST_SPLIT).resolve()


def _read_yaml(path: str | Path) -> YamlSource:
    """The YAML file (a built-in one by name), its mapping and root, with the keys every layout has checked."""
    yaml_path = Path(path)
    if not yaml_path.is_file():
        yaml_path = find_builtin_data(path) or yaml_path
    if not yaml_path.is_file():
        shipped = ", ".join(sorted(p.name for p in DATA_DIR.glob("*.yaml")))
        raise DatasetError(f"{path}: dataset YAML not found; pass the path of a data YAML or one of: {shipped}")
    builtin = is_builtin_data(yaml_path)
    yaml_path = yaml_path.resolve()
    try:
        raw = yaml.safe_load(yaml_path.read_text())
    except yaml.YAMLError as e:
        raise DatasetError(f"{yaml_path}: not valid YAML ({_yaml_problem(e)}); fix the syntax") from None
    if not isinstance(raw, dict):
        raise DatasetError(f"{yaml_path}: expected a mapping of path, train, val, names; got {type(raw).__name__}")
    if not isinstance(raw.get("path", "."), str):
        raise DatasetError(f"{yaml_path}: path: expected the root folder as a string, got {quoted(raw['path'])}")
    for key in SPLITS:
        if not isinstance(raw.get(key), str):
            raise DatasetError(f"{yaml_path}: {key}: missing or not a string; give the image folder relative to path")
    return YamlSource(yaml_path, raw, (datasets_root() if builtin else yaml_path.parent) / raw.get("path", "."))


def _layout_class(source: YamlSource) -> type[Layout]:
    """The layout ``layout:`` names (no other layout's own keys beside it), else the detected one."""
    named = source.raw.get("layout")
    if named is None:
        return detect_layout(source)
    if not isinstance(named, str) or named not in LAYOUTS:
        raise DatasetError(
            f"{source.yaml_path}: layout: {quoted(named)} unknown; use one of {', '.join(LAYOUTS)}, or leave it out"
        )
    for other in LAYOUTS.values():
        if other.name != named and any(source.raw.get(k) is not None for k in other.own_keys):
            raise DatasetError(
                f"{source.yaml_path}: layout: {named}, but {'/'.join(other.own_keys)} are given; the {other.title} "
                "layout, and only it, names them"
            )
    return LAYOUTS[named]


def _parse_names(yaml_path: Path, names: Any, required_by: str | None) -> tuple[str, ...]:
    """The class names; ``required_by``: the title of a layout whose files do not name the classes."""
    if names is None:
        if required_by:
            raise DatasetError(f"{yaml_path}: names: missing; the {required_by} layout needs a list of class names")
        return ()
    if isinstance(names, dict):
        if set(names) != set(range(len(names))) or any(isinstance(k, bool) for k in names):
            others = [k for k in names if isinstance(k, bool) or k not in range(len(names))]
            raise DatasetError(
                f"{yaml_path}: names: dict keys must be 0..{len(names) - 1}; got {quoted(others[0])} among them"
            )
        names = [names[i] for i in range(len(names))]
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise DatasetError(f"{yaml_path}: names: expected a non-empty list of strings or an {{index: name}} dict")
    return tuple(names)


def _parse_synthetic(yaml_path: Path, raw: dict[str, Any]) -> dict[str, Any] | None:
    settings = raw.get("synthetic")
    if settings is None:
        return None
    if not isinstance(settings, dict):
        raise DatasetError(f"{yaml_path}: synthetic: expected a mapping such as {{n_train: 800, n_val: 200}}")
    for key, value in settings.items():
        if key not in _SYNTHETIC_KEYS:
            shown = key if isinstance(key, str) and key.isidentifier() else quoted(key)
            raise DatasetError(f"{yaml_path}: synthetic.{shown}: unknown setting; valid: {', '.join(_SYNTHETIC_KEYS)}")
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise DatasetError(f"{yaml_path}: synthetic.{key}: expected a non-negative integer, got {quoted(value)}")
    for key, expected in _SYNTHETIC_LAYOUT.items():
        if raw.get(key) != expected:
            raise DatasetError(
                f"{yaml_path}: {key}: a synthetic set is generated as {expected!r}, got {quoted(raw.get(key))}; "
                f"set {key}: {expected}"
            )
    return dict(settings)


def ensure_data(spec: DataSpec) -> DataSpec:
    """Make the data ``spec`` names usable and return the spec with ``names``/``category_ids`` filled in.

    Generates the synthetic set when the spec has a ``synthetic`` section and its annotation files are missing
    (into a temporary folder renamed into place, so an interrupted run never leaves half a set). In distributed
    training call this on rank 0 first, then on the other ranks after a barrier.

    Raises:
        DatasetError: an image folder or annotation file or folder is missing, or the annotation files disagree
            with ``names``.
    """
    generated = [spec.root / _SYNTHETIC_LAYOUT[key] for key in ("train_json", "val_json")]
    if spec.synthetic is not None and not all(path.is_file() for path in generated):
        from yolorep.datasets.synthetic import generate_shapes

        logger.info("%s: generating the synthetic shapes set in %s", spec.yaml_path, spec.root)
        generate_shapes(spec.root, **spec.synthetic)
    names, category_ids = spec.layout.check_data(spec)
    return replace(spec, names=names, category_ids=category_ids)


def ensure_split(spec: DataSpec, split: str) -> None:
    """The files ``split`` needs exist, else a DatasetError naming what is missing (or that no test split is
    declared). :func:`ensure_data` checks train and val; a reader of the test split calls this."""
    spec.split_dir(split)
    spec.layout.check_split(spec, split)


def _yaml_problem(err: yaml.YAMLError) -> str:
    """What is wrong and where, without the snippet of the file PyYAML's message quotes (the file may not be a
    data YAML at all: a path from a model's metadata)."""
    mark = getattr(err, "problem_mark", None)
    problem = getattr(err, "problem", None) or type(err).__name__
    return f"line {mark.line + 1}, column {mark.column + 1}: {problem}" if mark is not None else problem
