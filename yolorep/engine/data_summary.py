"""The data-set summary a run prints once: one row per split of what was loaded and what was skipped or dropped."""

from __future__ import annotations

from typing import Any

from yolorep.datasets.spec import DataSpec

__all__ = ["format_data_summary"]

# (column, stats key) in print order; a column shows only when some split has a nonzero count
_COLUMNS = (
    ("images", "images"),
    ("boxes", None),
    ("background", "background_images"),
    ("skipped images", "skipped_images"),
    ("bad labels", "bad_labels"),
    ("dropped boxes", "dropped_boxes"),
    ("crowd", "crowd_boxes"),
    ("no label file", "missing_labels"),
    ("EXIF-rotated", "exif_rotated"),
    ("difficult", "difficult_boxes"),
    ("truncated", "truncated_boxes"),
    ("clipped", "clipped_boxes"),
    ("flipped", "flipped_boxes"),
    ("no image", "missing_images"),
)


def format_data_summary(spec: DataSpec, datasets: dict[str, Any]) -> str:
    """A table such as::

        data: shapes.yaml (coco layout, 6 classes: circle, rectangle, ...)
        split   images  boxes  background
        train      800   3547           0
        val        200    864           0

    ``datasets`` maps split names to ``DetectionDataset`` objects (their ``stats`` and ``records``).
    """
    rows = {}
    for split, dataset in datasets.items():
        counts = dict(dataset.stats)
        counts["boxes"] = sum(len(r.classes) for r in dataset.records)
        rows[split] = counts
    columns = [(title, key or title) for title, key in _COLUMNS if any(row.get(key or title) for row in rows.values())]
    names = ", ".join(spec.names[:6]) + (", ..." if len(spec.names) > 6 else "")
    classes = f"{len(spec.names)} class" + ("es" if len(spec.names) != 1 else "")
    lines = [f"data: {spec.yaml_path.name} ({spec.layout.name} layout, {classes}: {names})"]
    widths = [max(len(title), 6) for title, _ in columns]
    lines.append("split " + "  ".join(f"{title:>{w}}" for (title, _), w in zip(columns, widths)))
    for split, row in rows.items():
        lines.append(f"{split:<5} " + "  ".join(f"{row.get(key, 0):>{w}}" for (_, key), w in zip(columns, widths)))
    return "\n".join(lines)
