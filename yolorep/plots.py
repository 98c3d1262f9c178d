"""Training and validation figures: PR and metric-confidence curves, confusion matrix, results.csv curves, and boxes
drawn on images.

Figures are drawn on ``matplotlib.figure.Figure`` objects, which render with Agg when saved to PNG, rather than
through pyplot: no global backend is switched, no figure outlives its function, and nothing needs a display.
matplotlib and cv2 are imported inside the functions.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

import numpy as np
import torch

from yolorep.atomic import atomic_path

if TYPE_CHECKING:
    from matplotlib.figure import Figure

ArrayLike = Union[torch.Tensor, np.ndarray, Sequence[float]]

# Distinct, readable colours (RGB hex), cycled by class id.
_PALETTE = (
    "FF3838", "2C99A8", "FF701F", "6473FF", "CFD231", "48F90A", "92CC17", "3DDB86", "1A9334", "00D4BB",
    "FF9D97", "00C2FF", "344593", "FFB21D", "0018EC", "8438FF", "520085", "CB38FF", "FF95C8", "FF37C7",
)  # fmt: skip


def class_color(c: int) -> tuple[int, int, int]:
    """BGR colour of class ``c`` for cv2 drawing."""
    h = _PALETTE[c % len(_PALETTE)]
    return int(h[4:6], 16), int(h[2:4], 16), int(h[0:2], 16)


def identity_color(track_id: int) -> tuple[int, int, int]:
    """BGR colour of a track identity: the same on every frame, and neighbouring ids far apart on the palette."""
    return class_color((int(track_id) * 7) % len(_PALETTE))


def draw_trails(image_bgr: np.ndarray, trails: dict[int, Sequence[tuple[float, float]]]) -> np.ndarray:
    """Draw each identity's recent positions as a polyline in its colour, in place on ``image_bgr`` [H, W, 3].

    Args:
        trails: track id -> the centres (x, y) of its boxes in pixels, oldest first.

    Returns:
        ``image_bgr``.
    """
    import cv2

    thickness = max(1, round(sum(image_bgr.shape[:2]) / 600))
    for track_id, points in trails.items():
        if len(points) > 1:
            line = np.round(np.asarray(points, dtype=np.float64)).astype(np.int32).reshape(-1, 1, 2)
            cv2.polylines(image_bgr, [line], False, identity_color(track_id), thickness, cv2.LINE_AA)
    return image_bgr


def write_image(path: str | Path, image_bgr: np.ndarray) -> Path:
    """Encode ``image_bgr`` [H, W, 3] uint8 in the format of ``path``'s suffix and write it atomically (non-ASCII
    paths included).

    Raises:
        ValueError: OpenCV cannot encode that suffix.
    """
    import cv2

    path = Path(path)
    ok, data = cv2.imencode(path.suffix or ".jpg", image_bgr)
    if not ok:
        raise ValueError(f"{path}: OpenCV cannot write {path.suffix or 'this'} images; use .jpg or .png")
    with atomic_path(path) as tmp:
        data.tofile(str(tmp))
    return path


def save_figure(fig: Figure, path: str | Path) -> Path:
    """Render ``fig`` at 150 dpi to ``path`` (format from its suffix), atomically."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=150, format=Path(path).suffix.lstrip(".") or "png")
    return Path(path)


def plot_pr_curve(curves: dict[str, Any], path: str | Path) -> Path:
    """Save precision-recall curves at IoU 0.5: one line per class (up to 20 in the legend) and their mean.

    Args:
        curves: ``DetectionMetrics.pr_curve()``: ``names`` [K], ``recall`` [101], ``precision`` [K, 101] and
            ``ap50`` [K].
        path: PNG file to write.

    Returns:
        ``path``.
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 6), tight_layout=True)
    ax = fig.add_subplot()
    with_legend = len(curves["names"]) <= 20  # a longer legend would cover the plot
    for name, precision, ap in zip(curves["names"], curves["precision"], curves["ap50"]):
        ax.plot(curves["recall"], precision, linewidth=1, label=f"{name} {ap:.3f}" if with_legend else None)
    if len(curves["names"]):
        mean = curves["precision"].mean(axis=0)
        ax.plot(curves["recall"], mean, linewidth=3, color="blue", label=f"all classes {mean.mean():.3f} mAP@0.5")
        ax.legend(loc="upper left", bbox_to_anchor=(1.04, 1))
    ax.set(xlabel="Recall", ylabel="Precision", xlim=(0, 1), ylim=(0, 1), title="Precision-Recall Curve")
    return save_figure(fig, path)


def plot_confidence_curve(curves: dict[str, Any], metric: str, path: str | Path) -> Path:
    """Save a metric against the confidence threshold: one thin line per class (named in the legend up to 20
    classes) and the mean over classes, thick, labelled with its best value and where it is reached.

    Args:
        curves: ``DetectionMetrics.pr_curve()``: ``names`` [K], ``conf`` [C], ``metric`` [K, C] and
            ``<metric>_mean`` [C].
        metric: ``"f1"``, ``"p"`` or ``"r"``.
        path: PNG file to write.

    Returns:
        ``path``.
    """
    from matplotlib.figure import Figure

    ylabel = {"f1": "F1", "p": "Precision", "r": "Recall"}[metric]
    fig = Figure(figsize=(9, 6), tight_layout=True)
    ax = fig.add_subplot()
    with_legend = len(curves["names"]) <= 20  # a longer legend would cover the plot; the lines then go grey
    for name, values in zip(curves["names"], curves[metric]):
        ax.plot(curves["conf"], values, linewidth=1, **({"label": name} if with_legend else {"color": "grey"}))
    mean, best = curves[f"{metric}_mean"], int(np.argmax(curves[f"{metric}_mean"]))
    label = f"all classes {mean[best]:.2f} at {curves['conf'][best]:.3f}"
    ax.plot(curves["conf"], mean, linewidth=3, color="blue", label=label)
    ax.legend(loc="upper left", bbox_to_anchor=(1.04, 1))
    ax.set(xlabel="Confidence", ylabel=ylabel, xlim=(0, 1), ylim=(0, 1), title=f"{ylabel}-Confidence Curve")
    return save_figure(fig, path)


def plot_confusion_matrix(matrix: np.ndarray, names: Sequence[str], path: str | Path, normalize: bool = True) -> Path:
    """Save a confusion matrix heat map.

    Args:
        matrix: [nc + 1, nc + 1] counts indexed ``[predicted, true]``, the last row and column being background
            (``ConfusionMatrix.matrix``).
        names: nc class names.
        path: PNG file to write.
        normalize: divide each column by its total, so a column reads as "where objects of this class went".

    Returns:
        ``path``.
    """
    from matplotlib.figure import Figure

    matrix = np.asarray(matrix, dtype=np.float64)
    if normalize:
        matrix = matrix / np.maximum(matrix.sum(axis=0, keepdims=True), 1e-9)
    labels = [*names, "background"]
    size = max(6.0, 0.35 * len(labels) + 3)
    fig = Figure(figsize=(size, size * 0.8), tight_layout=True)
    ax = fig.add_subplot()
    image = ax.imshow(np.where(matrix > 0, matrix, np.nan), cmap="Blues", vmin=0.0)
    fig.colorbar(image, ax=ax)
    if len(labels) <= 30:  # beyond that the numbers are unreadable
        for (i, j), v in np.ndenumerate(matrix):
            if v > 0:
                ax.text(j, i, f"{v:.2f}" if normalize else f"{int(v)}", ha="center", va="center", fontsize=7)
    ticks = np.arange(len(labels))
    ax.set_xticks(ticks, labels, rotation=90, fontsize=8)
    ax.set_yticks(ticks, labels, fontsize=8)
    ax.set(xlabel="True", ylabel="Predicted", title="Confusion Matrix" + (" (normalized)" if normalize else ""))
    return save_figure(fig, path)


def _read_results_csv(csv_path: Path) -> dict[str, list[float]]:
    """Numeric columns of results.csv by (stripped) header; a column with any non-number is dropped."""
    with open(csv_path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        return {}
    header = [h.strip() for h in rows[0]]
    columns: dict[str, list[float]] = {}
    for i, name in enumerate(header):
        try:
            columns[name] = [float(row[i]) for row in rows[1:] if row]
        except (ValueError, IndexError):
            continue
    return columns


def plot_results_csv(csv_path: str | Path, png_path: str | Path) -> Path:
    """Plot every numeric column of a training results.csv against ``epoch``, one subplot each.

    Args:
        csv_path: CSV with an ``epoch`` column and one column per loss, metric and learning rate.
        png_path: PNG file to write.

    Returns:
        ``png_path``.
    """
    from matplotlib.figure import Figure

    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise FileNotFoundError(f"{csv_path}: results file not found; it is written by training, one row per epoch")
    columns = _read_results_csv(csv_path)
    epochs = columns.pop("epoch", None)
    if epochs is None:
        raise ValueError(f"{csv_path}: no numeric 'epoch' column; results.csv starts with an epoch column")
    ncols = min(5, max(1, len(columns)))
    nrows = max(1, math.ceil(len(columns) / ncols))
    width, height = 3 * ncols, 2.5 * nrows
    fig = Figure(figsize=(width, height))
    # fixed margins in inches, not tight_layout: measuring every tick label took half of the 1.4 s a 17-column
    # results.png took to draw, and training redraws it as it goes
    fig.subplots_adjust(
        left=0.6 / width, right=1 - 0.15 / width, bottom=0.45 / height, top=1 - 0.3 / height, wspace=0.4, hspace=0.65
    )
    for i, (name, values) in enumerate(columns.items()):
        ax = fig.add_subplot(nrows, ncols, i + 1)
        ax.plot(epochs, values, marker=".", linewidth=1.5)
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("epoch", fontsize=8)
        ax.tick_params(labelsize=8)
    return save_figure(fig, png_path)


def _numpy(x: ArrayLike | None) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray([] if x is None else x)


def draw_boxes(
    image_bgr_uint8: np.ndarray,
    boxes_xyxy: ArrayLike,
    classes: ArrayLike,
    names: Sequence[str],
    scores: ArrayLike | None = None,
    line_width: int | None = None,
    labels: bool = True,
    ids: ArrayLike | None = None,
) -> np.ndarray:
    """Draw labelled boxes on a copy of an image.

    Args:
        image_bgr_uint8: [H, W, 3] uint8, BGR (cv2 order).
        boxes_xyxy: [N, 4] (x1, y1, x2, y2), pixels of this image.
        classes: [N] class ids; the colour follows the class.
        names: class names.
        scores: [N] confidences appended to the labels, or None.
        line_width: box line width in pixels (default: scaled to the image size).
        labels: draw the class name (and score) above each box.
        ids: [N] track identities, or None; when given the colour follows the identity and labels start ``id:7``.

    Returns:
        The annotated copy, [H, W, 3] uint8 BGR.
    """
    import cv2

    image = np.ascontiguousarray(image_bgr_uint8).copy()
    boxes = _numpy(boxes_xyxy).reshape(-1, 4)
    cls = _numpy(classes).reshape(-1).astype(int)
    conf = None if scores is None else _numpy(scores).reshape(-1)
    track_ids = None if ids is None else _numpy(ids).reshape(-1).astype(int)
    thickness = line_width or max(1, round(sum(image.shape[:2]) / 600))
    font_scale = thickness / 3
    for i, (box, c) in enumerate(zip(boxes, cls)):
        color = class_color(c) if track_ids is None else identity_color(track_ids[i])
        x1, y1, x2, y2 = (int(round(v)) for v in box)
        cv2.rectangle(image, (x1, y1), (x2, y2), color, thickness, cv2.LINE_AA)
        if not labels:
            continue
        label = names[c] if 0 <= c < len(names) else str(c)
        if track_ids is not None:
            label = f"id:{track_ids[i]} {label}"
        if conf is not None:
            label = f"{label} {conf[i]:.2f}"
        (tw, th), baseline = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, font_scale, max(1, thickness - 1))
        # Put the label above the box, or inside it when the box touches the top edge; keep it in the image.
        top = y1 - th - baseline if y1 - th - baseline >= 0 else y1
        left = max(0, min(x1, image.shape[1] - tw))
        cv2.rectangle(image, (left, top), (left + tw, top + th + baseline), color, -1, cv2.LINE_AA)
        cv2.putText(
            image, label, (left, top + th), cv2.FONT_HERSHEY_SIMPLEX, font_scale, (255, 255, 255),
            max(1, thickness - 1), cv2.LINE_AA,
        )  # fmt: skip
    return image


def save_side_by_side(
    image_bgr: np.ndarray,
    gt: tuple[ArrayLike, ArrayLike],
    pred: tuple[ArrayLike, ArrayLike, ArrayLike],
    names: Sequence[str],
    path: str | Path,
    captions: tuple[str, str] = ("labels", "predictions"),
) -> Path:
    """Save the labels (left) next to the predictions (right) on the same image, each under its caption.

    Args:
        image_bgr: [H, W, 3] uint8 BGR.
        gt: ``(boxes_xyxy [M, 4], classes [M])`` in pixels of ``image_bgr``.
        pred: ``(boxes_xyxy [N, 4], classes [N], scores [N])`` in pixels of ``image_bgr``.
        names: class names.
        path: image file to write (format from the suffix, e.g. ``.jpg``).
        captions: text above the left and the right panel (say what the right one is cut at).

    Returns:
        ``path``.
    """
    gt_boxes, gt_classes = gt
    pred_boxes, pred_classes, pred_scores = pred
    left = _captioned(draw_boxes(image_bgr, gt_boxes, gt_classes, names), captions[0])
    right = _captioned(draw_boxes(image_bgr, pred_boxes, pred_classes, names, scores=pred_scores), captions[1])
    gap = np.full((left.shape[0], 8, 3), 255, dtype=np.uint8)  # white divider
    return write_image(path, np.concatenate([left, gap, right], axis=1))


def _captioned(image: np.ndarray, caption: str) -> np.ndarray:
    """``image`` [H, W, 3] under a white band [caption_height(W), W, 3] holding ``caption``."""
    import cv2

    width = image.shape[1]
    height = caption_height(width)
    band = np.full((height, width, 3), 255, np.uint8)
    scale = height / 40
    cv2.putText(band, caption, (4, int(height * 0.72)), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([band, image], axis=0)


def caption_height(width: int) -> int:
    """Height of the caption band above a side-by-side panel of ``width`` pixels."""
    return max(16, min(40, width // 16))


def plot_training_batch(
    images: torch.Tensor, targets: torch.Tensor, names: Sequence[str], path: str | Path, max_images: int = 16
) -> Path:
    """Tile a training batch, boxes drawn, so users can check augmentation and labels by eye.

    Args:
        images: [B, 3, H, W] uint8 RGB, as the loader yields them.
        targets: [M, 6] rows (batch_index, cls, x1, y1, x2, y2), pixels of ``images``.
    """

    count = min(len(images), max_images)
    columns = math.ceil(math.sqrt(count))
    rows = math.ceil(count / columns)
    height, width = images.shape[2:]
    mosaic = np.full((rows * height, columns * width, 3), 114, dtype=np.uint8)
    for i in range(count):
        image = np.ascontiguousarray(images[i].permute(1, 2, 0).cpu().numpy()[:, :, ::-1])
        rows_i = targets[targets[:, 0] == i]
        drawn = draw_boxes(image, rows_i[:, 2:6], rows_i[:, 1].long(), names)
        top, left = (i // columns) * height, (i % columns) * width
        mosaic[top : top + height, left : left + width] = drawn
    return write_image(path, mosaic)
