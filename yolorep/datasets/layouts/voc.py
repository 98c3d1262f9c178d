"""The Pascal VOC layout: one XML file per image, read by the rules of :mod:`yolorep.datasets.layouts.voc_xml`
(difficult objects are training targets that evaluation ignores).

The YAML's ``train``/``val`` are list files or folders inside the image folder; ``images``/``annotations`` name the
two folders when they are not ``JPEGImages``/``images`` and ``Annotations``/``annotations`` under ``path``;
``names`` is optional (collected from the XML files of both splits). ``convert`` also reads a VOC folder without
YAML. Read, not written.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from yolorep.datasets.images import check_images
from yolorep.datasets.layouts import voc_xml
from yolorep.datasets.layouts.base import (
    DIFFICULT,
    SPLITS,
    TRUNCATED,
    CacheKey,
    Evidence,
    Extra,
    Extras,
    Layout,
    SpecView,
    YamlSource,
    numbered,
)
from yolorep.datasets.targets import IMAGE_SUFFIXES, ImageRecord, Problems, scan
from yolorep.errors import DatasetError

__all__ = ["VocLayout"]


@dataclass(frozen=True)
class VocLayout(Layout):
    """Attributes: the image folder (``JPEGImages/`` or ``images/``) and the XML folder that mirrors it."""

    images: Path
    annotations: Path

    name = "voc"
    title = "VOC"

    @classmethod
    def detect(cls, source: YamlSource) -> Evidence:
        return Evidence.FILES if voc_xml.has_voc_annotations(source.root) else Evidence.NONE

    @classmethod
    def from_yaml(cls, source: YamlSource) -> VocLayout:
        raw = source.raw
        return cls(*voc_xml.find_folders(str(source.yaml_path), source.root, raw.get("images"), raw.get("annotations")))

    @classmethod
    def from_folder(cls, root: Path) -> tuple[VocLayout, dict[str, Path]]:
        """Splits from ``ImageSets/Main/<split>.txt``, ``<split>.txt`` list files or ``<images>/<split>/`` folders."""
        layout = cls(*voc_xml.find_folders(str(root), root, None, None))
        paths = {}
        for split in SPLITS:
            candidates = (root / "ImageSets" / "Main" / f"{split}.txt", root / f"{split}.txt", layout.images / split)
            found = next((c for c in candidates if c.exists()), None)
            if found is None:
                raise DatasetError(
                    f"{root}: {split}: no split found (looked for {', '.join(str(c) for c in candidates)}); "
                    "write list files of image names, or give a data YAML with train and val"
                )
            paths[split] = found
        return layout, paths

    def check_data(self, spec: SpecView) -> tuple[tuple[str, ...], tuple[int, ...]]:
        splits = {split: spec.split_dir(split) for split in SPLITS}
        names = voc_xml.check_split_names(str(spec.yaml_path), self.images, self.annotations, splits, spec.names)
        return names, numbered(names)

    def check_split(self, spec: SpecView, split: str) -> None:
        voc_xml.check_folders(str(spec.yaml_path), self.images, self.annotations, {split: spec.split_dir(split)})

    def image_folder(self, spec: SpecView, split: str) -> Path:
        return self.images

    def cache_key(self, spec: SpecView, split: str) -> CacheKey:
        """The names (they decide class indices), the split's list file (or folder) and every XML file; the cache
        is ``<annotations>/<split>.cache.npz``."""
        split_path = spec.split_dir(split)
        sources = [spec.names, str(split_path), split_path.stat().st_mtime_ns, scan(self.annotations, (".xml",))]
        return CacheKey(sources, self.annotations / f"{split}.cache.npz")

    def read_split(self, spec: SpecView, split: str, images: list[Path], problems: Problems) -> list[ImageRecord]:
        """The images the split lists (or holds) with their XML; classes absent from ``names`` are an error
        listing them all."""
        problems.stats.update(dict.fromkeys(voc_xml.STAT_KEYS, 0))
        pairs = voc_xml.list_split(
            self.images, self.annotations, spec.split_dir(split), IMAGE_SUFFIXES, problems.report
        )
        unknown: dict[str, tuple[str, int]] = {}
        records = []
        for (path, xml_path), check in zip(pairs, check_images([path for path, _ in pairs])):
            if check.shape is None:
                problems.report("skipped_images", f"{path}: unreadable image ({check.problem}); skipped")
                continue
            problems.stats["exif_rotated"] += check.rotated
            targets = voc_xml.read_targets(xml_path, check.shape, spec.names, problems.report, unknown)
            if targets is None:
                continue
            problems.stats["difficult_boxes"] += int(targets.difficult.sum())
            problems.stats["truncated_boxes"] += int(targets.truncated.sum())
            problems.stats["background_images"] += not len(targets.classes)
            boxes, classes, difficult = targets.boxes_xyxy, targets.classes, targets.difficult
            records.append(ImageRecord(path, len(records), check.shape, boxes, classes, difficult=difficult))
        if unknown:
            raise voc_xml.unknown_names_error(str(spec.yaml_path), spec.names, unknown)
        return records

    def extras(self, spec: SpecView, split: str, records: list[ImageRecord]) -> Extras:
        """The difficult and truncated flags of each object (the records keep only difficult: the truncated
        flags are read again, by the same rules)."""
        pairs = voc_xml.list_split(self.images, self.annotations, spec.split_dir(split), IMAGE_SUFFIXES, _quiet)
        xml_of = dict(pairs)
        flags = []
        for r in records:
            targets = voc_xml.read_targets(xml_of.get(r.path), r.shape, spec.names, _quiet, {})
            same = targets is not None and len(targets.truncated) == len(r.classes)
            truncated = targets.truncated if same else np.zeros(len(r.classes), bool)
            flags.append({"difficult": r.difficult.astype(bool), "truncated": truncated})
        held = [Extra(DIFFICULT, sum(int(f["difficult"].sum()) for f in flags), True),
                Extra(TRUNCATED, sum(int(f["truncated"].sum()) for f in flags), True)]  # fmt: skip
        return Extras(flags, held)


def _quiet(*_: Any) -> None:
    """A problem counter that does nothing: problems were reported when the records were loaded."""
