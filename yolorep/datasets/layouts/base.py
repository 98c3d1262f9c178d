"""The contract every data layout meets, and what the layouts share.

A layout is one class, one module: a frozen dataclass subclass of :class:`Layout` whose fields are what the data
YAML says about that layout alone (COCO's instances files, VOC's image and annotation folders; YOLO's label
folders follow from the image folders, so it has none). :class:`~yolorep.datasets.spec.DataSpec` holds what every
layout has (root, split paths, names, category ids) and one layout object; the code above the layouts (the YAML
reader, the record loader and its label cache, ``convert``, the data summary) calls the methods below and never
asks which layout it holds.

A layout is met in the order the code above meets it:

1. ``detect`` says how strongly a YAML (or folder) looks like this layout (:class:`Evidence`); the strongest wins.
2. ``from_yaml`` reads the YAML keys only this layout has (``from_folder``, for ``convert``, a folder without YAML).
3. ``check_data`` checks that the files exist and returns the class names and dataset category ids
   (``check_split`` checks one split's files: those of a declared test split only when it is read).
4. ``image_folder``, ``cache_key`` and ``read_split`` give one split's images and ground truth as
   :class:`~yolorep.datasets.targets.ImageRecord` objects, counting every problem in a
   :class:`~yolorep.datasets.targets.Problems` (``read_split`` runs only when the label cache is stale).
5. ``extras`` (for ``convert``) says what the source holds beyond boxes and classes; a layout that ``writes``
   writes a split (``write_split``) and its data YAML (``data_yaml``), and declares which extras it ``keeps``.
"""

from __future__ import annotations

import shutil
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import Any, ClassVar, NamedTuple, Protocol

import numpy as np

from yolorep.confined import confined
from yolorep.datasets.targets import ImageRecord, Problems
from yolorep.errors import DatasetError

__all__ = [
    "CROWDS",
    "DIFFICULT",
    "IDS",
    "SPLITS",
    "TEST_SPLIT",
    "TRUNCATED",
    "CacheKey",
    "ConvertItem",
    "Evidence",
    "Extra",
    "Extras",
    "Layout",
    "SpecView",
    "YamlSource",
    "copy_image",
    "merge_extras",
    "numbered",
    "require_image_folder",
]

SPLITS = ("train", "val")  # every data set has them
TEST_SPLIT = "test"  # optional; only `val --split test` (and check-data, convert) read it

# What a data set may hold beyond boxes and classes (the words of convert's log lines); a writer ``keeps`` some.
DIFFICULT = "difficult flags"
TRUNCATED = "truncated flags"
CROWDS = "crowd regions"
IDS = "image ids and category ids (classes become 0..nc-1)"


class Evidence(IntEnum):
    """How strongly a data YAML looks like a layout; detection takes the strongest (the first listed on a tie)."""

    NONE = 0
    DEFAULT = 1  # nothing points elsewhere: this layout's checks best say what is missing (YOLO)
    FILES = 2  # annotation files of this layout lie under the root (VOC's XML files)
    FOLDERS = 3  # a folder this layout needs sits where the YAML's splits point (YOLO's labels/ beside images/)
    KEYS = 4  # the YAML names this layout's files with keys only it reads (COCO's train_json/val_json)


@dataclass(frozen=True)
class YamlSource:
    """A data YAML while it is read: the file, its mapping and the data set root (``path:`` applied)."""

    yaml_path: Path
    raw: dict[str, Any]
    root: Path

    def split_path(self, split: str) -> Path:
        """The YAML's ``train``/``val`` (or ``test``) entry, relative to the root (already checked to be a string)."""
        return self.root / self.raw[split]


class SpecView(Protocol):
    """What a layout may read of the :class:`~yolorep.datasets.spec.DataSpec` its methods receive."""

    @property
    def yaml_path(self) -> Path: ...
    @property
    def names(self) -> tuple[str, ...]: ...
    @property
    def category_ids(self) -> tuple[int, ...]: ...
    @property
    def layout(self) -> Layout: ...
    def split_dir(self, split: str) -> Path: ...


class CacheKey(NamedTuple):
    """What a split's label cache depends on besides its image files (JSON-serialisable: names, sizes, times),
    and the path the cache has beside the data (:mod:`yolorep.datasets.label_cache` may keep it elsewhere)."""

    sources: Any
    beside: Path


@dataclass(frozen=True)
class Extra:
    """Something a source holds beyond boxes and classes, for convert's log lines.

    Attributes:
        what: one of the words above (``DIFFICULT``, ``CROWDS``, ...) or the layout's own.
        count: how many (a line shows it when nonzero); None for what the whole set has (its ids).
        carried: handed to the writer (which keeps it when it ``keeps`` it); False: never read, so always lost.
    """

    what: str
    count: int | None
    carried: bool

    def text(self) -> str:
        return self.what if self.count is None else f"{self.count} {self.what}"


class Extras(NamedTuple):
    """For ``convert``: per record, the per-object flags a writer may keep (``{key: [n] bool}``), and what the
    split holds beyond boxes and classes."""

    flags: list[dict[str, np.ndarray]]
    held: list[Extra]


@dataclass
class ConvertItem:
    """One image on its way to a writer: its record, its file name relative to the split's folder (where the
    writer puts the copy), and per-object flags (``{annotation key: [n] bool}``, VOC's difficult/truncated)."""

    record: ImageRecord
    file_name: str
    flags: dict[str, np.ndarray] = field(default_factory=dict)


class Layout(ABC):
    """A data layout (see the module docstring for the order its methods are called in).

    Attributes:
        name: the YAML's ``layout:`` value and ``convert``'s ``--from``/``--to`` value.
        title: how messages name it (``"COCO"``).
        own_keys: YAML keys only this layout reads; naming another layout beside them is refused.
        test_keys: the keys a declared ``test`` split needs beside it (COCO's ``test_json``), each with what it
            names; only this layout reads them.
        needs_names: the YAML must list the class names (no annotation file holds them).
        writes: ``convert --to`` can write it (``write_split`` and ``data_yaml`` are implemented).
        keeps: the :class:`Extra` ``what`` words its writer keeps.
    """

    name: ClassVar[str]
    title: ClassVar[str]
    own_keys: ClassVar[tuple[str, ...]] = ()
    test_keys: ClassVar[Mapping[str, str]] = {}
    needs_names: ClassVar[bool] = False
    writes: ClassVar[bool] = False
    keeps: ClassVar[frozenset[str]] = frozenset()

    # ---- reading the data YAML -----------------------------------------------------------------------------------
    @classmethod
    @abstractmethod
    def detect(cls, source: YamlSource) -> Evidence:
        """How strongly ``source`` looks like this layout (it names no ``layout:``)."""

    @classmethod
    @abstractmethod
    def from_yaml(cls, source: YamlSource) -> Layout:
        """The layout's own keys of ``source``, checked; raises DatasetError naming the file and key."""

    @classmethod
    def from_folder(cls, root: Path) -> tuple[Layout, dict[str, Path]] | None:
        """For ``convert``: the layout and split paths of a data set folder without YAML; None when this layout
        needs a YAML."""
        return None

    def default_category_ids(self, names: tuple[str, ...]) -> tuple[int, ...]:
        """The category ids of a spec read without :meth:`check_data`: ``1..nc`` unless files decide them."""
        return numbered(names)

    @abstractmethod
    def check_data(self, spec: SpecView) -> tuple[tuple[str, ...], tuple[int, ...]]:
        """Check that the files of both splits exist; return the class names (``spec.names``, or read from the
        files when the YAML gives none) and the dataset category id of each."""

    def check_split(self, spec: SpecView, split: str) -> None:
        """Check that the files of one split exist (the image folder, by default); raises DatasetError."""
        require_image_folder(spec, split)

    # ---- reading a split -----------------------------------------------------------------------------------------
    def image_folder(self, spec: SpecView, split: str) -> Path:
        """The folder the split's image files lie below; records' paths are stored relative to it."""
        return spec.split_dir(split)

    @abstractmethod
    def cache_key(self, spec: SpecView, split: str) -> CacheKey:
        """What the split's ground truth is read from (see :class:`CacheKey`)."""

    @abstractmethod
    def read_split(self, spec: SpecView, split: str, images: list[Path], problems: Problems) -> list[ImageRecord]:
        """The usable images of ``split`` and their ground truth; bad files are skipped and reported to
        ``problems``. ``images``: the image files below :meth:`image_folder`, sorted (a layout whose annotations
        list the images may ignore it)."""

    # ---- converting ----------------------------------------------------------------------------------------------
    def extras(self, spec: SpecView, split: str, records: list[ImageRecord]) -> Extras:
        """What the split holds beyond its records' boxes and classes (nothing, by default)."""
        return Extras([{} for _ in records], [])

    @classmethod
    def write_split(cls, out: Path, split: str, items: list[ConvertItem], spec: SpecView) -> list[ConvertItem]:
        """Write ``items`` (images and annotations) as ``split`` under ``out``; return those written."""
        raise NotImplementedError(f"the {cls.title} layout is read, not written")

    @classmethod
    def data_yaml(cls, names: tuple[str, ...], splits: tuple[str, ...] = SPLITS) -> dict[str, Any]:
        """The data YAML of what :meth:`write_split` wrote for ``splits``, with ``path: .``."""
        raise NotImplementedError(f"the {cls.title} layout is read, not written")

    @classmethod
    def notes(cls, kept: set[str]) -> list[str]:
        """Log lines about how the writer keeps the extras ``kept`` (their ``what`` words)."""
        return []


def numbered(names: Iterable[str]) -> tuple[int, ...]:
    """Category ids ``1..nc``: the ids of a layout whose files number classes from 0 or name them."""
    return tuple(range(1, len(tuple(names)) + 1))


def require_image_folder(spec: SpecView, split: str) -> Path:
    """The split's image folder; raises DatasetError when it does not exist."""
    folder = spec.split_dir(split)
    if not folder.is_dir():
        raise DatasetError(
            f"{spec.yaml_path}: {split}: image folder {folder} does not exist; "
            f"check path/{split} or put the images there"
        )
    return folder


def merge_extras(extras: Iterable[Extra]) -> list[Extra]:
    """Extras of several splits as one list: counts of the same ``(what, carried)`` summed, first-seen order."""
    merged: dict[tuple[str, bool], Extra] = {}
    for extra in extras:
        key = (extra.what, extra.carried)
        if key in merged and extra.count is not None:
            extra = Extra(extra.what, (merged[key].count or 0) + extra.count, extra.carried)
        merged[key] = extra
    return list(merged.values())


def copy_image(record: ImageRecord, folder: Path, file_name: str) -> None:
    """Copy the record's image to ``folder / file_name`` (kept inside ``folder``); a copy, not a link: editing the
    new set must not edit the source. Two entries may name one file: it is copied once."""
    target = confined(folder, file_name)
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists():
        shutil.copy2(record.path, target)
