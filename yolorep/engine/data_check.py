"""``yolorep check-data DATA``: what a data set holds and what is wrong with it, without training.

Every split the YAML declares is read by the loader training uses (``load_records``, any layout), so the counts are
those of what training would get: what it skipped or repaired (its ``Problems`` counts) and, beyond them, tiny
boxes, identical and (optionally) near-duplicate images, images shared between splits, and the class balance.
One table is logged, and the run folder gets ``report.json`` and ``labels_<split>.jpg`` per split.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from yolorep.atomic import write_text_atomic
from yolorep.datasets.records import ImageRecord, load_records
from yolorep.datasets.spec import DataSpec, ensure_split, load_data_spec
from yolorep.engine.duplicates import identical_files, near_duplicates
from yolorep.engine.run_dir import increment_run_dir
from yolorep.engine.train.labels import label_arrays
from yolorep.errors import DatasetError
from yolorep.options import CheckDataOptions

__all__ = ["ROWS", "TINY_SIDE", "check_data", "format_check_table"]

LOGGER = logging.getLogger(__name__)
# Training's augmentation drops boxes under 2 px a side (``box_candidates``): at the training size, such a box is
# never learned from.
TINY_SIDE = 2.0
IMBALANCE = 10  # a note when the most frequent class has this many times the boxes of the rarest
# (report key, row of the table); None in a split's column: does not apply to that split
ROWS = (
    ("images", "images (usable)"),
    ("boxes", "boxes"),
    ("background_images", "images without boxes"),
    ("missing_labels", "  of which without a label file"),
    ("skipped_images", "unreadable images, skipped (empty, corrupt, truncated)"),
    ("bad_labels", "bad label entries, skipped"),
    ("dropped_boxes", "boxes outside the image or under 1 px, dropped"),
    ("clipped_boxes", "boxes partly outside the image, clipped"),
    ("tiny_boxes", "tiny boxes (under 2 px a side at --imgsz)"),
    ("duplicate_images", "copies of another image of the split (same bytes)"),
    ("shared_images", "same bytes as an image of an earlier split"),
    ("near_duplicates", "near-duplicate images (--near-duplicates)"),
    ("exif_rotated", "images with an EXIF rotation (pixels used as stored)"),
    ("crowd_boxes", "crowd regions (COCO iscrowd)"),
    ("difficult_boxes", "difficult objects (VOC)"),
)

# the counts worth a line of their own after the table
_NOTES = {
    "skipped_images": "unreadable image(s) skipped",
    "bad_labels": "bad label entries skipped",
    "dropped_boxes": "box(es) outside the image dropped",
    "clipped_boxes": "box(es) partly outside the image clipped",
    "tiny_boxes": f"tiny box(es), under {TINY_SIDE:g} px a side at the training size: augmentation drops them",
    "duplicate_images": "image(s) repeated within the split",
}


def _tiny(records: Sequence[ImageRecord], imgsz: int) -> int:
    """Boxes whose shorter side is under ``TINY_SIDE`` once the image is resized to ``imgsz`` (longest side)."""
    tiny = 0
    for r in records:
        scale = imgsz / max(r.shape)
        sides = (r.boxes_xyxy[:, 2:] - r.boxes_xyxy[:, :2]).min(axis=1, initial=np.inf) * scale
        tiny += int((sides < TINY_SIDE).sum())
    return tiny


def _split_counts(records: list[ImageRecord], stats: dict[str, int], nc: int, imgsz: int) -> dict[str, Any]:
    classes = [r.classes for r in records]
    instances = np.bincount(np.concatenate(classes), minlength=nc) if classes else np.zeros(nc, np.int64)
    images = sum((np.bincount(np.unique(c), minlength=nc) for c in classes), np.zeros(nc, np.int64))
    counts = {key: int(stats.get(key, 0)) for key, _ in ROWS}
    counts.update({
        "images": len(records),
        "boxes": int(instances.sum()),
        "difficult_boxes": int(sum(r.difficult.sum() for r in records)),
        "tiny_boxes": _tiny(records, imgsz),
        "instances_per_class": instances.tolist(),
        "images_per_class": images.tolist(),
    })  # fmt: skip
    return counts


def _duplicate_counts(paths: dict[str, list[Path]], near: bool) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """Per split: copies inside it, images also in an earlier split, near duplicates; and the groups found."""
    every = [p for split_paths in paths.values() for p in split_paths]
    groups = identical_files(every)
    near_groups = near_duplicates(every, exclude=groups) if near else None
    counts: dict[str, dict[str, Any]] = {}
    earlier: set[Path] = set()
    for split, split_paths in paths.items():
        own = set(split_paths)
        inside = sum(max(len([p for p in g if p in own]) - 1, 0) for g in groups)
        shared = (own & earlier) | {p for g in groups if set(g) & earlier for p in g if p in own}
        near_count = None if near_groups is None else len({p for g in near_groups for p in g if p in own})
        counts[split] = {
            "duplicate_images": inside,
            "shared_images": len(shared) if earlier else None,
            "near_duplicates": near_count,
        }
        earlier |= own
    found = {"identical": [[str(p) for p in g] for g in groups]}
    if near_groups is not None:
        found["near"] = [[str(p) for p in g] for g in near_groups]
    return counts, found


def _findings(spec: DataSpec, splits: dict[str, dict[str, Any]]) -> tuple[list[str], str | None]:
    """What deserves a look, one line each, and the reason the set cannot be trained on (or None)."""
    train, notes = splits["train"], []
    unusable = None
    if train["boxes"] == 0:
        unusable = f"train: no boxes in its {train['images']} usable images; there is nothing to learn"
    for split, counts in splits.items():
        if split != "train" and counts["boxes"] == 0:
            notes.append(f"{split}: no boxes, so mAP on it is undefined (reported as 0)")
        if counts["shared_images"]:
            notes.append(f"{split}: {counts['shared_images']} image(s) also in an earlier split; its scores overstate")
        notes += [f"{split}: {counts[key]} {what}" for key, what in _NOTES.items() if counts[key]]
    absent = [name for name, n in zip(spec.names, train["instances_per_class"]) if n == 0]
    if absent and train["boxes"]:
        notes.append(f"train: no box of class {', '.join(absent[:10])}{' ...' if len(absent) > 10 else ''}")
    present = [n for n in train["instances_per_class"] if n > 0]
    if len(present) > 1 and max(present) >= IMBALANCE * min(present):
        notes.append(f"train: class imbalance, {max(present)} boxes of the most frequent class, {min(present)} of "
                     "the rarest")  # fmt: skip
    return notes, unusable


def format_check_table(report: dict[str, Any]) -> str:
    """The checks as rows, the splits as columns, then the class balance (instances and images per class)."""
    splits = report["splits"]
    width = max(len(label) for _, label in ROWS)
    header = f"{'':<{width}}" + "".join(f"{split:>9}" for split in splits)
    lines = [header]
    for key, label in ROWS:
        values = [counts[key] for counts in splits.values()]
        if key in ("images", "boxes") or any(values):
            lines.append(f"{label:<{width}}" + "".join(f"{'-' if v is None else v:>9}" for v in values))
    names = report["names"]
    name_width = max(12, *(len(n) for n in names[:50]))
    lines += ["", f"{'class':<{name_width}}" + "".join(f"{split + ' boxes':>14}{'images':>9}" for split in splits)]
    for c, name in enumerate(names):
        row = "".join(f"{s['instances_per_class'][c]:>14}{s['images_per_class'][c]:>9}" for s in splits.values())
        lines.append(f"{name:<{name_width}}{row}")
    return "\n".join(lines)


def check_data(*args: Any, **kwargs: Any) -> dict[str, Any]:
    """Check a data set without training: the options are ``CheckDataOptions`` (``data``, ``imgsz``,
    ``near_duplicates``, ``project``, ``name``). Logs the table, writes ``report.json`` and ``labels_<split>.jpg``
    to a new run folder, and returns the report with ``save_dir``.

    Raises:
        DatasetError: the YAML or a split cannot be read at all, or the train split has no box (after the report
            is written).
    """
    from yolorep.label_plots import plot_label_statistics

    o = CheckDataOptions.build(args, kwargs)
    spec = load_data_spec(o.data)
    loaded = {}
    for split in spec.splits:
        ensure_split(spec, split)
        loaded[split] = load_records(spec, split, use_cache=False)  # afresh, so each problem is logged again
    splits = {split: _split_counts(r.records, r.stats, spec.nc, o.imgsz) for split, r in loaded.items()}
    duplicates, groups = _duplicate_counts(
        {s: [r.path for r in v.records] for s, v in loaded.items()}, o.near_duplicates
    )
    for split, counts in duplicates.items():
        splits[split].update(counts)
    notes, unusable = _findings(spec, splits)
    save_dir = increment_run_dir(o.project, o.name)
    report = {"data": str(spec.yaml_path), "layout": spec.layout.name, "names": list(spec.names), "imgsz": o.imgsz,
              "splits": splits, "duplicates": groups, "notes": notes, "unusable": unusable}  # fmt: skip
    write_text_atomic(save_dir / "report.json", json.dumps(report, indent=1))
    for split, r in loaded.items():
        title = f"{spec.yaml_path.name}: {split}, {len(r.records)} images"
        plot_label_statistics(*label_arrays(r.records), spec.names, save_dir / f"labels_{split}.jpg", title)
    classes = f"{spec.nc} class" + ("es" if spec.nc != 1 else "")
    LOGGER.info("%s (%s layout, %s)\n%s", spec.yaml_path, spec.layout.name, classes, format_check_table(report))
    for note in notes:
        LOGGER.warning("%s", note)
    for kind, label in (("identical", "identical"), ("near", "near-duplicate")):  # report.json holds every group
        for group in groups.get(kind, [])[:5]:
            LOGGER.info("%s files: %s", label, ", ".join(group))
    LOGGER.info("report and plots saved to %s", save_dir)
    if unusable:
        raise DatasetError(f"{spec.yaml_path}: {unusable} (report in {save_dir})")
    return dict(report, save_dir=str(save_dir))
