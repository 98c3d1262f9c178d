"""Listing the files below a folder, links to folders included: a data set often links its image folders in from
elsewhere, and a file that is skipped without a count is a silent loss."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

__all__ = ["walk_files"]


def walk_files(folder: str | Path) -> Iterator[tuple[str, list[str]]]:
    """``(folder path, file names)`` of ``folder`` and every folder below it, following links to folders; each
    real folder is listed once, under the first path that reaches it, so a link cycle ends and a folder linked
    twice is not read twice. Paths stay below ``folder`` as given (links are not resolved in them)."""
    seen: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:
            dirnames[:] = []
            continue
        seen.add(real)
        dirnames.sort()  # a stable walk order: the first path to a folder linked twice is the same every time
        yield dirpath, filenames
