"""What the labels of a data set look like, in one figure: how many objects of each class, and where boxes sit, how
large they are and their shapes. Training writes it as ``labels.jpg`` (ultralytics' name) and ``yolorep check-data``
once per split.

Like ``yolorep.plots``, figures are drawn on ``matplotlib.figure.Figure`` objects (Agg when saved, no pyplot state);
the histograms are binned with numpy first, so the cost hardly grows with the number of boxes.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from yolorep.plots import class_color, save_figure

__all__ = ["MAX_DRAWN_BOXES", "plot_label_statistics"]

MAX_DRAWN_BOXES = 500  # boxes outlined in the shapes panel; more only darken it
_BINS = 50
_SMALL, _LARGE = 32, 96  # COCO's area thresholds (side of a square box, pixels): small < 32^2 <= medium < 96^2


def _rgb(c: int) -> tuple[float, float, float]:
    b, g, r = class_color(c)
    return r / 255, g / 255, b / 255


def plot_label_statistics(
    classes: np.ndarray,
    boxes_xyxy: np.ndarray,
    image_shapes: np.ndarray,
    names: Sequence[str],
    path: str | Path,
    title: str = "",
) -> Path:
    """Save the label statistics figure: instances per class, box outlines centred on one canvas, centre positions,
    normalised widths against heights, sizes in pixels and aspect ratios.

    Args:
        classes: [N] int class index of each box.
        boxes_xyxy: [N, 4] boxes (x1, y1, x2, y2), pixels of their image.
        image_shapes: [N, 2] (height, width) of the image of each box.
        names: class names, index = class.
        path: image file to write (``.jpg`` or ``.png``).
        title: a line above the panels (the data set and split).

    Returns:
        ``path``.
    """
    from matplotlib.figure import Figure

    classes = np.asarray(classes, np.int64).reshape(-1)
    boxes = np.asarray(boxes_xyxy, np.float64).reshape(-1, 4)
    shapes = np.asarray(image_shapes, np.float64).reshape(-1, 2)
    sides = boxes[:, 2:] - boxes[:, :2]  # [N, 2] width, height in pixels
    scale = shapes[:, ::-1]  # [N, 2] image width, height
    centres = (boxes[:, :2] + sides / 2) / np.maximum(scale, 1)
    relative = sides / np.maximum(scale, 1)
    fig = Figure(figsize=(13.5, 8.5), tight_layout=True)
    axes = fig.subplots(2, 3).ravel()
    _class_counts(axes[0], classes, names)
    if len(classes) == 0:
        for ax in axes[1:]:
            ax.text(0.5, 0.5, "no boxes", ha="center", va="center", transform=ax.transAxes)
            ax.set_axis_off()
    else:
        _outlines(axes[1], classes, relative)
        _density(axes[2], centres, "x (fraction of width)", "y (fraction of height)", "box centres", flip=True)
        _density(axes[3], relative, "width (fraction)", "height (fraction)", "box sizes relative to the image")
        _pixel_sizes(axes[4], np.sqrt(sides[:, 0] * sides[:, 1]))
        _aspects(axes[5], sides[:, 0] / np.maximum(sides[:, 1], 1e-9))
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)


def _class_counts(ax: Any, classes: np.ndarray, names: Sequence[str]) -> None:
    counts = np.bincount(classes, minlength=len(names))
    bars = ax.bar(np.arange(len(counts)), counts, color=[_rgb(c) for c in range(len(counts))])
    if len(counts) <= 30:  # beyond that the names overlap
        ax.set_xticks(np.arange(len(counts)), [str(n) for n in names], rotation=90, fontsize=8)
        ax.bar_label(bars, fontsize=7)
    ax.set(ylabel="instances", title=f"{len(classes)} boxes, {int((counts > 0).sum())}/{len(names)} classes used")


def _outlines(ax: Any, classes: np.ndarray, relative: np.ndarray) -> None:
    """The first boxes' outlines, centred on one square canvas: the shapes and sizes the model must fit."""
    import cv2

    size = 500
    canvas = np.full((size, size, 3), 255, np.uint8)
    for c, (w, h) in zip(classes[:MAX_DRAWN_BOXES], relative[:MAX_DRAWN_BOXES] * size):
        corners = np.round([size / 2 - w / 2, size / 2 - h / 2, size / 2 + w / 2, size / 2 + h / 2]).astype(int)
        cv2.rectangle(canvas, tuple(corners[:2]), tuple(corners[2:]), class_color(int(c))[::-1], 1)
    ax.imshow(canvas)
    ax.set_axis_off()
    ax.set_title(f"outlines of {min(len(classes), MAX_DRAWN_BOXES)} boxes, centred")


def _density(ax: Any, points: np.ndarray, xlabel: str, ylabel: str, title: str, flip: bool = False) -> None:
    counts, _, _ = np.histogram2d(points[:, 0], points[:, 1], bins=_BINS, range=((0, 1), (0, 1)))
    # rows of the image are y: down the image for positions (as in the photo), up the axis for sizes
    ax.imshow(counts.T, origin="upper" if flip else "lower", extent=(0, 1, 1, 0) if flip else (0, 1, 0, 1),
              cmap="Blues", aspect="auto")  # fmt: skip
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)


def _pixel_sizes(ax: Any, sides: np.ndarray) -> None:
    top = max(float(sides.max()), _LARGE * 2)
    ax.hist(sides, bins=np.geomspace(1, top, _BINS), color="steelblue")
    ax.set_xscale("log")
    for bound in (_SMALL, _LARGE):
        ax.axvline(bound, color="grey", linestyle="--", linewidth=1)
    small, large = int((sides < _SMALL).sum()), int((sides >= _LARGE).sum())
    ax.set(xlabel="sqrt(box area), pixels of the image", ylabel="boxes",
           title=f"sizes: {small} small, {len(sides) - small - large} medium, {large} large (COCO)")  # fmt: skip


def _aspects(ax: Any, aspects: np.ndarray) -> None:
    bound = max(float(np.abs(np.log2(aspects)).max()), 2.0)
    ax.hist(aspects, bins=np.geomspace(2**-bound, 2**bound, _BINS), color="steelblue")
    ax.set_xscale("log")
    powers = np.arange(-int(bound), int(bound) + 1)
    ax.set_xticks(2.0**powers, [f"1/{2**-k}" if k < 0 else str(2**k) for k in powers], minor=False)
    ax.set_xticks([], minor=True)
    ax.axvline(1, color="grey", linestyle="--", linewidth=1)
    ax.set(xlabel="width / height", ylabel="boxes", title=f"aspect ratios, median {np.median(aspects):.2f}")
