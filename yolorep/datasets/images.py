"""Checking image files before training on them: readable, complete, of a supported format, and their size.

Orientation rule (the same in training, validation, plots and prediction): yolorep uses the pixels as stored
and ignores EXIF orientation, so labels must refer to the stored pixels (as COCO's do). Images that carry an
EXIF rotation are counted (``exif_rotated``) so that a data set labelled in the rotated frame is noticed.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

__all__ = ["ImageCheck", "check_image", "check_images", "jpeg_tail_is_truncated"]

_PIL_FORMATS = {"JPEG", "MPO", "PNG", "BMP", "WEBP", "TIFF"}  # MPO: multi-picture JPEG from some cameras
_JPEG_FORMATS = {"JPEG", "MPO"}
_JPEG_TAIL = 4096  # bytes searched for the end-of-image marker (some cameras pad after it)
_EXIF_ORIENTATION = 0x0112
_32_BIT_MODES = {"I", "F", "I;32", "I;32B", "I;32S", "F;32", "F;32B", "F;32F"}  # integer and float samples
_THREADS = 8  # image header checks are I/O bound


class ImageCheck(NamedTuple):
    """``shape`` (h, w) of a usable image, else None and ``problem`` saying why; ``rotated``: EXIF asks for a
    rotation or mirror that yolorep does not apply."""

    shape: tuple[int, int] | None
    problem: str = ""
    rotated: bool = False


def _is_truncated_jpeg(path: Path) -> bool:
    with open(path, "rb") as f:
        f.seek(max(os.path.getsize(path) - _JPEG_TAIL, 0))
        return jpeg_tail_is_truncated(f.read())


def _opencv_reads(path: Path) -> bool:
    """TIFF holds many sample formats and compressions: the loader must accept only what training can decode."""
    import cv2

    return cv2.imread(str(path), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION) is not None


def jpeg_tail_is_truncated(tail: bytes | memoryview) -> bool:
    """A JPEG cut short has no end-of-image marker (FF D9) near its end; inside the scan data FF is always followed
    by 00. ``tail`` is the file's last bytes (or all of them)."""
    return b"\xff\xd9" not in bytes(tail[-_JPEG_TAIL:])


def check_image(path: Path) -> ImageCheck:
    """Read ``path``'s header (PIL, without decoding the pixels; a TIFF is decoded, as its variants are many) and
    check it is a complete image of a format and sample type that training reads."""
    from PIL import Image  # a torchvision dependency

    try:
        with Image.open(path) as image:
            image_format, mode, (w, h) = image.format, image.mode, image.size
            image.verify()  # must come right after open, and leaves the image unusable
        with Image.open(path) as image:
            orientation = image.getexif().get(_EXIF_ORIENTATION, 1)
        if image_format not in _PIL_FORMATS:
            return ImageCheck(None, f"unsupported format {image_format}")
        if mode in _32_BIT_MODES:
            return ImageCheck(
                None, f"32-bit samples (PIL mode {mode}), which OpenCV does not read; save as 8 or 16 bit"
            )
        if image_format in _JPEG_FORMATS and _is_truncated_jpeg(path):
            return ImageCheck(None, "truncated JPEG (no end-of-image marker): the file is incomplete")
        if image_format == "TIFF" and not _opencv_reads(path):
            return ImageCheck(None, "a TIFF variant OpenCV cannot decode; save it as PNG or JPEG")
    except Exception as e:  # PIL signals corrupt files with many exception types (OSError, SyntaxError, ...)
        return ImageCheck(None, f"{type(e).__name__}: {e}")
    if h <= 0 or w <= 0:
        return ImageCheck(None, "empty image")
    return ImageCheck((h, w), rotated=orientation not in (1, None))


def check_images(paths: list[Path]) -> list[ImageCheck]:
    with ThreadPoolExecutor(min(_THREADS, max(len(paths), 1))) as pool:
        return list(pool.map(check_image, paths))
