"""Argument rules shared by every command and the Python API, so each is enforced once with one message."""

from __future__ import annotations

from yolorep.errors import ArgumentError

__all__ = ["check_at_least", "check_batch", "check_fraction", "check_imgsz"]


def check_imgsz(imgsz: int, stride: int, flag: str = "--imgsz") -> int:
    """Return ``imgsz`` if it is a positive multiple of the model's largest ``stride``.

    The network halves the image ``log2(stride)`` times, so any other size would be padded or cropped inside the
    model; refusing it (rather than silently rounding) keeps the size a user asked for the size that runs.

    Raises:
        ArgumentError: naming ``flag`` and the nearest valid sizes.
    """
    if isinstance(imgsz, bool) or not isinstance(imgsz, int):
        raise ArgumentError(f"{flag} {imgsz!r}: must be an integer number of pixels, a multiple of {stride}")
    if imgsz >= stride and imgsz % stride == 0:
        return imgsz
    lower, upper = imgsz // stride * stride, (imgsz // stride + 1) * stride
    hint = f"use {lower} or {upper}" if lower >= stride else f"use {max(upper, stride)}"
    raise ArgumentError(f"{flag} {imgsz}: must be a positive multiple of the model stride {stride}; {hint}")


def check_at_least(value: int, least: int, flag: str) -> int:
    """Return ``value`` if it is an integer >= ``least``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise ArgumentError(f"{flag} {value!r}: must be an integer of at least {least}")
    return value


def check_batch(batch: int, flag: str = "--batch") -> int:
    return check_at_least(batch, 1, flag)


def check_fraction(value: float, flag: str) -> float:
    """Return ``value`` if it is a number in [0, 1] (a confidence or IoU threshold, a probability)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ArgumentError(f"{flag} {value!r}: out of range; use a value between 0 and 1")
    return float(value)
