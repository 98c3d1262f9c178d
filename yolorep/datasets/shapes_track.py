"""``shapes-track``: synthetic video sequences with ground-truth identities, in MOTChallenge layout.

The shapes of the bundled shapes set (same drawing, backgrounds and noise) move through a world larger than the
view, seen by a panning camera: they cross and hide one another (later shapes are drawn over earlier ones), leave
the view and come back, and the whole image shifts with the camera. Layout, per sequence::

    <root>/shapes-01/img1/000001.jpg ...      frames
    <root>/shapes-01/gt/gt.txt                frame,id,left,top,width,height,1,class,visibility
    <root>/shapes-01/seqinfo.ini              name, frameRate, seqLength, imWidth, imHeight, imExt

Boxes are tight on an object's visible pixels, as in the shapes set a detector trains on. Class 1 rows are the
objects a tracker must follow; an object with at least half of its in-frame pixels hidden by others is written as
class 8 (MOTChallenge's distractor: a tracker is neither rewarded nor penalised for it); an object with under 40
visible pixels has no row.
"""

from __future__ import annotations

import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from yolorep.atomic import process_alive
from yolorep.datasets.synthetic import SHAPE_CATEGORIES, contrasting_colour, draw_shape, textured_background
from yolorep.errors import DatasetError

__all__ = ["DISTRACTOR_CLASS", "SHAPES_TRACK", "TRACK_CLASS", "generate_shapes_track"]

SHAPES_TRACK = "shapes-track"
TRACK_CLASS, DISTRACTOR_CLASS = 1, 8  # MOTChallenge classes: pedestrian (here: any shape), distractor
_MIN_VISIBLE_PX = 40
_MIN_VISIBLE_SHARE = 0.5  # of its in-frame pixels; below it an object is a distractor
_WORLD = (1.6, 1.4)  # world size in views (width, height): objects and camera have room to move
_SIZE_RANGE = (0.09, 0.25)  # shape size as a fraction of the view's height ... width
_SPEED_RANGE = (0.6, 3.5)  # pixels per frame
_TURN_STD = 0.04  # radians per frame: paths bend
_PAN_PERIOD = (150, 300)  # frames for the camera to pan across the world and back: at most ~4 px per frame
_JPEG_QUALITY = 90


@dataclass
class _Shape:
    category: int  # index into SHAPE_CATEGORIES
    size: float
    colour: np.ndarray  # [3] uint8 BGR
    seed: int  # draws the same proportions and rotation on every frame
    position: np.ndarray  # [2] world pixels
    velocity: np.ndarray  # [2] world pixels per frame


def generate_shapes_track(
    root: str | Path,
    sequences: int = 4,
    frames: int = 150,
    size_wh: tuple[int, int] = (320, 256),
    objects: int = 24,
    seed: int = 0,
) -> Path:
    """Write the set under ``root`` (identical output for identical arguments) and return ``root``.

    Written to a temporary sibling folder and renamed into place, so an interrupted run leaves no set or a
    complete one; a complete set already at ``root`` is kept as it is.

    Raises:
        DatasetError: ``root`` exists but holds no complete set.
    """
    root = Path(root)
    if root.exists():
        if any(root.glob("*/gt/gt.txt")):
            return root
        raise DatasetError(f"{root}: exists but holds no shapes-track sequences (*/gt/gt.txt); delete it or move it")
    root.parent.mkdir(parents=True, exist_ok=True)
    for partial in root.parent.glob(f".{root.name}.partial-*"):  # left by generations whose process died
        pid = partial.name.rsplit(".partial-", 1)[1].split("-")[0]
        if pid.isdigit() and not process_alive(int(pid)):
            shutil.rmtree(partial, ignore_errors=True)
    tmp = root.parent / f".{root.name}.partial-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        for index in range(sequences):
            rng = np.random.default_rng([seed, index])
            _write_sequence(tmp / f"shapes-{index + 1:02d}", frames, size_wh, objects, rng)
        try:
            os.replace(tmp, root)
        except OSError:
            if not any(root.glob("*/gt/gt.txt")):  # not another process finishing first
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return root


def _spawn(world_wh: tuple[int, int], view_wh: tuple[int, int], background: np.ndarray, rng: np.random.Generator):
    low, high = (f * min(view_wh) for f in _SIZE_RANGE)
    size = float(rng.uniform(low, high))
    angle, speed = rng.uniform(0, 2 * np.pi), rng.uniform(*_SPEED_RANGE)
    return _Shape(
        category=int(rng.integers(len(SHAPE_CATEGORIES))),
        size=size,
        colour=contrasting_colour(background, rng),
        seed=int(rng.integers(2**31)),
        position=rng.uniform([size, size], [world_wh[0] - size, world_wh[1] - size]),
        velocity=speed * np.array([np.cos(angle), np.sin(angle)]),
    )


def _move(shape: _Shape, world_wh: tuple[int, int], rng: np.random.Generator) -> None:
    """One frame of motion: a slowly bending path that bounces off the world's edges."""
    turn = rng.normal(0, _TURN_STD)
    c, s = np.cos(turn), np.sin(turn)
    shape.velocity = np.array([[c, -s], [s, c]]) @ shape.velocity
    shape.position = shape.position + shape.velocity
    for axis in (0, 1):
        low, high = shape.size / 2, world_wh[axis] - shape.size / 2
        if not low <= shape.position[axis] <= high:
            shape.velocity[axis] = -shape.velocity[axis]
            shape.position[axis] = np.clip(shape.position[axis], low, high)


def _camera(frame: int, periods: np.ndarray, travel: tuple[int, int]) -> tuple[int, int]:
    """The view's top-left corner in the world: a smooth pan back and forth on each axis."""
    return tuple(int(round(t / 2 * (1 - np.cos(2 * np.pi * frame / p)))) for t, p in zip(travel, periods))


def _render(view: np.ndarray, shapes: list[_Shape], offset: tuple[int, int]) -> list[tuple[int, np.ndarray]]:
    """Paint ``shapes`` (in order, later on top) onto ``view`` in place; return each one's in-frame pixel count
    and visible mask [H, W] uint8."""
    drawn: list[tuple[int, np.ndarray]] = []
    for shape in shapes:
        mask = np.zeros(view.shape[:2], np.uint8)
        x, y = shape.position - offset
        draw_shape(mask, shape.category, x, y, shape.size, np.random.default_rng(shape.seed))
        view[mask > 0] = shape.colour
        hidden = cv2.bitwise_not(mask)
        for _, earlier in drawn:
            cv2.bitwise_and(earlier, hidden, dst=earlier)
        drawn.append((cv2.countNonZero(mask), mask))
    return drawn


def _gt_rows(frame: int, drawn: list[tuple[int, np.ndarray]]) -> list[str]:
    rows = []
    for track_id, (in_frame, mask) in enumerate(drawn, start=1):
        visible = cv2.countNonZero(mask)
        if visible < _MIN_VISIBLE_PX:
            continue
        x, y, w, h = cv2.boundingRect(mask)
        share = visible / max(in_frame, 1)
        cls = TRACK_CLASS if share >= _MIN_VISIBLE_SHARE else DISTRACTOR_CLASS
        rows.append(f"{frame},{track_id},{x},{y},{w},{h},1,{cls},{share:.3f}")
    return rows


def _write_sequence(
    folder: Path, frames: int, view_wh: tuple[int, int], n_objects: int, rng: np.random.Generator
) -> None:
    width, height = view_wh
    world_wh = (round(width * _WORLD[0]), round(height * _WORLD[1]))
    world = textured_background(world_wh[1], world_wh[0], rng)
    shapes = [_spawn(world_wh, view_wh, world.reshape(-1, 3).mean(axis=0), rng) for _ in range(n_objects)]
    periods = rng.uniform(*_PAN_PERIOD, size=2)
    travel = (world_wh[0] - width, world_wh[1] - height)
    noise_bank = rng.standard_normal((height + 64, width + 64, 3), dtype=np.float32)
    (folder / "img1").mkdir(parents=True)
    rows: list[str] = []
    for frame in range(1, frames + 1):
        left, top = _camera(frame - 1, periods, travel)
        view = world[top : top + height, left : left + width].copy()
        drawn = _render(view, shapes, np.array([left, top], dtype=np.float64))
        oy, ox = (int(v) for v in rng.integers(0, 65, size=2))
        view = cv2.add(view, noise_bank[oy : oy + height, ox : ox + width] * float(rng.uniform(2, 8)), dtype=cv2.CV_8U)
        ok, data = cv2.imencode(".jpg", view, [cv2.IMWRITE_JPEG_QUALITY, _JPEG_QUALITY])
        assert ok, "cv2 failed to encode a synthetic frame"
        (folder / "img1" / f"{frame:06d}.jpg").write_bytes(data.tobytes())
        rows += _gt_rows(frame, drawn)
        for shape in shapes:
            _move(shape, world_wh, rng)
    (folder / "gt").mkdir()
    (folder / "gt" / "gt.txt").write_text("".join(f"{row}\n" for row in rows))
    (folder / "seqinfo.ini").write_text(
        f"[Sequence]\nname={folder.name}\nimDir=img1\nframeRate=30\nseqLength={frames}\nimWidth={width}\n"
        f"imHeight={height}\nimExt=.jpg\n"
    )
