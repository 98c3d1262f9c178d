"""The Pascal VOC layout as records: image and XML pairs of a split, read by the rules of
:mod:`yolorep.datasets.voc` (difficult objects are training targets that evaluation ignores)."""

from __future__ import annotations

from yolorep.datasets import voc
from yolorep.datasets.images import check_images
from yolorep.datasets.spec import DataSpec
from yolorep.datasets.targets import IMAGE_SUFFIXES, ImageRecord, Problems

__all__ = ["load_voc"]


def load_voc(spec: DataSpec, split: str, problems: Problems) -> list[ImageRecord]:
    """VOC XML -> records; classes absent from ``names`` are an error listing them all."""
    problems.stats.update(dict.fromkeys(voc.STAT_KEYS, 0))
    pairs = voc.list_split(
        spec.voc_images, spec.voc_annotations, spec.split_dir(split), IMAGE_SUFFIXES, problems.report
    )
    unknown: dict[str, tuple[str, int]] = {}
    records = []
    for (path, xml_path), check in zip(pairs, check_images([path for path, _ in pairs])):
        if check.shape is None:
            problems.report("skipped_images", f"{path}: unreadable image ({check.problem}); skipped")
            continue
        problems.stats["exif_rotated"] += check.rotated
        targets = voc.read_targets(xml_path, check.shape, spec.names, problems.report, unknown)
        if targets is None:
            continue
        problems.stats["difficult_boxes"] += int(targets.difficult.sum())
        problems.stats["truncated_boxes"] += int(targets.truncated.sum())
        problems.stats["background_images"] += not len(targets.classes)
        boxes, classes, difficult = targets.boxes_xyxy, targets.classes, targets.difficult
        records.append(ImageRecord(path, len(records), check.shape, boxes, classes, difficult=difficult))
    if unknown:
        raise voc.unknown_names_error(str(spec.yaml_path), spec.names, unknown)
    return records
