"""Dataset YAML -> :class:`DataSpec`.

Three layouts are understood (``layout: coco|yolo|voc`` names one; without it the layout is detected):

* COCO: ``train_json``/``val_json`` name instances files; classes come from their ``categories``.
* YOLO: no JSON keys; each ``images/.../x.jpg`` has ``labels/.../x.txt`` with rows ``cls cx cy w h`` normalised.
* Pascal VOC: ``Annotations/*.xml`` or ``annotations/*.xml`` under the root (and no YOLO ``labels/`` folder);
  ``train``/``val`` are list files or image folders, ``names`` is optional (collected from the XML files). See
  :mod:`yolorep.datasets.voc`.

Any layout may declare a ``test`` split (``test_json`` too for COCO): ``yolorep val --split test`` scores it,
``convert`` and ``check-data`` read it too, training never does (nor do the class names collected from VOC files).

A spec with a ``synthetic:`` section describes the bundled shapes set, generated on first use by
:func:`ensure_data` (nothing is downloaded).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

from yolorep.assets import DATA_DIR, datasets_root, find_builtin_data, is_builtin_data
from yolorep.datasets import voc
from yolorep.errors import DatasetError, quoted

__all__ = ["SPLITS", "TEST_SPLIT", "DataSpec", "ensure_data", "ensure_split", "load_data_spec"]

logger = logging.getLogger(__name__)

SPLITS = ("train", "val")  # every data set has them
TEST_SPLIT = "test"  # optional; only `val --split test` reads it
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
        train: training image folder (``root / train``); for VOC a list file or an image folder.
        val: validation image folder (``root / val``); for VOC a list file or an image folder.
        names: class names, index = contiguous class id. Empty for a COCO spec without ``names`` until
            :func:`ensure_data` reads them from the JSON categories.
        train_json: COCO instances file of the training split, ``None`` for the YOLO layout.
        val_json: COCO instances file of the validation split, ``None`` for the YOLO layout.
        synthetic: generation settings for the bundled shapes set, ``None`` for real data.
        category_ids: dataset category id of each contiguous class (COCO: JSON ids ascending; YOLO, VOC: ``i + 1``).
        voc_images: image folder of the VOC layout (``JPEGImages/`` or ``images/``), ``None`` for the others.
        voc_annotations: XML folder of the VOC layout (``Annotations/`` or ``annotations/``), ``None`` otherwise.
        test: test image folder (for VOC a list file or an image folder), ``None`` when the YAML declares none.
        test_json: COCO instances file of the test split, ``None`` otherwise.
    """

    yaml_path: Path
    root: Path
    train: Path
    val: Path
    names: tuple[str, ...]
    train_json: Path | None = None
    val_json: Path | None = None
    synthetic: dict[str, Any] | None = None
    category_ids: tuple[int, ...] = field(default=())
    voc_images: Path | None = None
    voc_annotations: Path | None = None
    test: Path | None = None
    test_json: Path | None = None

    @property
    def is_coco(self) -> bool:
        """True for the COCO layout (instances JSON files), False for YOLO ``labels/*.txt``."""
        return self.train_json is not None or self.val_json is not None

    @property
    def is_voc(self) -> bool:
        """True for the Pascal VOC layout (XML files)."""
        return self.voc_annotations is not None

    @property
    def layout(self) -> str:
        """``"coco"``, ``"voc"`` or ``"yolo"``."""
        return "coco" if self.is_coco else "voc" if self.is_voc else "yolo"

    @property
    def nc(self) -> int:
        """Number of classes."""
        return len(self.names)

    @property
    def splits(self) -> tuple[str, ...]:
        """The splits the YAML declares: train, val, and test when it has one."""
        return SPLITS + ((TEST_SPLIT,) if self.test is not None else ())

    def split_dir(self, split: str) -> Path:
        """Image folder of ``split`` (``"train"``, ``"val"`` or a declared ``"test"``)."""
        return getattr(self, self._declared(split))

    def split_json(self, split: str) -> Path | None:
        """COCO instances file of ``split``, ``None`` for the YOLO layout."""
        return getattr(self, self._declared(split) + "_json")

    def _declared(self, split: str) -> str:
        if split not in (*SPLITS, TEST_SPLIT):
            raise DatasetError(f"split {split!r}: unknown split; use one of {', '.join((*SPLITS, TEST_SPLIT))}")
        if split == TEST_SPLIT and self.test is None:
            coco = " and test_json: <instances file>" if self.is_coco else ""
            raise DatasetError(
                f"{self.yaml_path}: test: the data set declares no test split; add test: <images>{coco} to score one"
            )
        return split

    def labels_dir(self, split: str) -> Path:
        """YOLO label folder of ``split``: the image folder with its last ``images`` component -> ``labels``."""
        labels = _yolo_labels_dir(self.split_dir(split))
        if labels is not None:
            return labels
        raise DatasetError(
            f"{self.yaml_path}: {split}: image folder {self.split_dir(split)} has no 'images' component; "
            "the YOLO layout needs images/... beside labels/... (or give train_json/val_json for COCO)"
        )

    def class_to_category(self, cls: int) -> int:
        """Dataset category id of contiguous class ``cls``."""
        return self.category_ids[cls]

    def category_to_class(self, category_id: int) -> int:
        """Contiguous class of dataset category ``category_id``; raises KeyError when unknown."""
        return self._category_index[category_id]

    @cached_property
    def _category_index(self) -> dict[int, int]:
        return {c: i for i, c in enumerate(self.category_ids)}


def load_data_spec(path: str | Path, *, ensure: bool = True) -> DataSpec:
    """Read a dataset YAML.

    A relative ``path:`` in the YAML is relative to the YAML's folder, except in the built-in YAMLs, whose data
    lives under :func:`yolorep.assets.datasets_root` (``./datasets`` or ``$YOLOREP_DATASETS``).

    Args:
        path: the YAML file, or the name of a built-in one (``shapes.yaml``, ``coco.yaml``) from any folder.
        ensure: also run :func:`ensure_data` (generate a synthetic set if absent, check that folders exist,
            read class names and category ids from COCO JSON). ``False`` only parses.

    Raises:
        DatasetError: the file is missing or malformed, or (with ``ensure``) the data it names is absent.
    """
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
    root = (datasets_root() if builtin else yaml_path.parent) / raw.get("path", ".")
    for key in ("train", "val"):
        if not isinstance(raw.get(key), str):
            raise DatasetError(f"{yaml_path}: {key}: missing or not a string; give the image folder relative to path")
    jsons = {}
    for key in ("train_json", "val_json", "test_json"):
        value = raw.get(key)
        if value is not None and not isinstance(value, str):
            raise DatasetError(f"{yaml_path}: {key}: expected a file path relative to path, got {quoted(value)}")
        jsons[key] = None if value is None else (root / value).resolve()
    if (jsons["train_json"] is None) != (jsons["val_json"] is None):
        raise DatasetError(f"{yaml_path}: train_json/val_json: give both (COCO layout) or neither (YOLO layout)")
    test = _parse_test(yaml_path, raw.get("test"), root, jsons)

    layout = _parse_layout(yaml_path, raw, root, has_json=jsons["train_json"] is not None)
    names = _parse_names(yaml_path, raw.get("names"), required=layout == "yolo")
    folders: tuple[Path | None, Path | None] = (None, None)
    if layout == "voc":
        folders = voc.find_folders(str(yaml_path), root, raw.get("images"), raw.get("annotations"))
    if "nc" in raw and names and raw["nc"] != len(names):
        raise DatasetError(f"{yaml_path}: nc: {quoted(raw['nc'])} but names has {len(names)} entries; make them agree")
    spec = DataSpec(
        yaml_path=yaml_path,
        root=root.resolve(),
        train=(root / raw["train"]).resolve(),
        val=(root / raw["val"]).resolve(),
        names=names,
        train_json=jsons["train_json"],
        val_json=jsons["val_json"],
        synthetic=_parse_synthetic(yaml_path, raw),
        category_ids=() if jsons["train_json"] else tuple(range(1, len(names) + 1)),
        voc_images=folders[0],
        voc_annotations=folders[1],
        test=test,
        test_json=jsons["test_json"],
    )
    return ensure_data(spec) if ensure else spec


def _parse_test(yaml_path: Path, test: Any, root: Path, jsons: dict[str, Path | None]) -> Path | None:
    """The optional test split's folder; a COCO data set names its instances file too, and only a COCO one does."""
    if test is not None and not isinstance(test, str):
        raise DatasetError(f"{yaml_path}: test: expected the image folder relative to path, got {quoted(test)}")
    is_coco, has_json = jsons["train_json"] is not None, jsons["test_json"] is not None
    if has_json and not is_coco:
        raise DatasetError(f"{yaml_path}: test_json: only the COCO layout (train_json/val_json) names JSON files")
    if is_coco and (test is not None) != has_json:
        missing = "test" if has_json else "test_json"
        raise DatasetError(f"{yaml_path}: {missing}: missing; a COCO test split needs both test (images) and test_json")
    return None if test is None else (root / test).resolve()


def _parse_layout(yaml_path: Path, raw: dict[str, Any], root: Path, has_json: bool) -> str:
    layout = raw.get("layout")
    if layout is None:  # detected: JSON keys -> COCO; XML annotations and no YOLO labels/ folder -> VOC
        if has_json:
            return "coco"
        labels = _yolo_labels_dir(root / raw["train"])
        return "voc" if voc.has_voc_annotations(root) and not (labels and labels.is_dir()) else "yolo"
    if layout not in ("coco", "yolo", "voc"):
        raise DatasetError(f"{yaml_path}: layout: {quoted(layout)} unknown; use coco, yolo or voc, or leave it out")
    if (layout == "coco") != has_json:
        raise DatasetError(
            f"{yaml_path}: layout: {layout}, but train_json/val_json are {'given' if has_json else 'missing'}; "
            "the COCO layout, and only it, names JSON files"
        )
    return layout


def _yolo_labels_dir(image_dir: Path) -> Path | None:
    """The image folder with its last ``images`` component -> ``labels``; None without one."""
    parts = list(image_dir.parts)
    for i in range(len(parts) - 1, -1, -1):
        if parts[i] == "images":
            return Path(*parts[:i], "labels", *parts[i + 1 :])
    return None


def _parse_names(yaml_path: Path, names: Any, required: bool) -> tuple[str, ...]:
    if names is None:
        if required:
            raise DatasetError(f"{yaml_path}: names: missing; the YOLO layout needs a list of class names")
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
        DatasetError: an image folder, label folder or JSON file is missing, or the JSON categories disagree
            with ``names``.
    """
    if spec.synthetic is not None and not (spec.train_json.is_file() and spec.val_json.is_file()):
        from yolorep.datasets.synthetic import generate_shapes

        logger.info("%s: generating the synthetic shapes set in %s", spec.yaml_path, spec.root)
        generate_shapes(spec.root, **spec.synthetic)
    if spec.is_voc:
        splits = {split: spec.split_dir(split) for split in SPLITS}
        names = voc.check_split_names(str(spec.yaml_path), spec.voc_images, spec.voc_annotations, splits, spec.names)
        return replace(spec, names=names, category_ids=tuple(range(1, len(names) + 1)))

    for split in SPLITS:
        ensure_split(spec, split)
    if not spec.is_coco:
        return spec

    categories = read_coco_categories(spec.val_json)
    ids = tuple(sorted(categories))
    names = spec.names or tuple(categories[i] for i in ids)
    if len(names) != len(ids):
        raise DatasetError(
            f"{spec.yaml_path}: names: {len(names)} names but {spec.val_json} has {len(ids)} categories; "
            "drop names to take them from the JSON, or make the counts agree"
        )
    return replace(spec, names=names, category_ids=ids)


def ensure_split(spec: DataSpec, split: str) -> None:
    """The files ``split`` needs exist (image folder or VOC list file, label folder or JSON), else a DatasetError
    naming what is missing. :func:`ensure_data` checks train and val; a reader of the test split calls this."""
    folder = spec.split_dir(split)
    if spec.is_voc:
        voc.check_folders(str(spec.yaml_path), spec.voc_images, spec.voc_annotations, {split: folder})
        return
    if not folder.is_dir():
        raise DatasetError(f"{spec.yaml_path}: {split}: image folder {folder} does not exist; check path/{split}")
    if spec.is_coco and not spec.split_json(split).is_file():
        raise DatasetError(f"{spec.yaml_path}: {split}_json: {spec.split_json(split)} does not exist; check the path")
    if not spec.is_coco and not spec.labels_dir(split).is_dir():
        raise DatasetError(
            f"{spec.yaml_path}: {split}: label folder {spec.labels_dir(split)} does not exist; "
            "the YOLO layout needs labels/<split>/*.txt beside images/<split>/"
        )


def _yaml_problem(err: yaml.YAMLError) -> str:
    """What is wrong and where, without the snippet of the file PyYAML's message quotes (the file may not be a
    data YAML at all: a path from a model's metadata)."""
    mark = getattr(err, "problem_mark", None)
    problem = getattr(err, "problem", None) or type(err).__name__
    return f"line {mark.line + 1}, column {mark.column + 1}: {problem}" if mark is not None else problem


def read_coco_categories(json_path: Path, data: dict[str, Any] | None = None) -> dict[int, str]:
    """``{category id: name}`` from a COCO instances file (or its already parsed ``data``), in file order.

    Raises:
        DatasetError: categories missing, malformed, empty or sharing an id (one would silently rename the other).
    """
    data = read_json(json_path) if data is None else data
    categories: dict[int, str] = {}
    try:
        for k, category in enumerate(data["categories"]):
            category_id, name = category["id"], category["name"]
            if isinstance(category_id, bool) or not isinstance(category_id, int) or not isinstance(name, str):
                raise TypeError("id must be an integer and name a string")
            if category_id in categories:
                raise DatasetError(
                    f"{json_path}: categories[{k}] ({quoted(name)}) has id {category_id}, as an earlier category "
                    f"({quoted(categories[category_id])}); category ids must be unique"
                )
            categories[category_id] = name
    except (KeyError, TypeError) as e:
        raise DatasetError(
            f"{json_path}: categories: missing or malformed ({type(e).__name__}: {e}); expected a list of {{id, name}} "
            "with integer ids and string names"
        ) from None
    if not categories:
        raise DatasetError(f"{json_path}: categories: empty; a COCO instances file lists at least one category")
    return categories


def read_json(json_path: Path) -> dict[str, Any]:
    """Load a JSON object, turning a missing or corrupt file into a DatasetError."""
    try:
        with open(json_path) as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        raise DatasetError(f"{json_path}: cannot read JSON ({e}); regenerate or re-download the file") from e
    if not isinstance(data, dict):
        raise DatasetError(f"{json_path}: expected a JSON object with images, annotations, categories")
    return data
