"""Paths built from data (a COCO ``file_name``, a list entry, a source image's name) stay inside their folder.

The rule for every output: join the name to its destination with :func:`confined`, which refuses any result
that would lie outside it (``..``, an absolute name, a drive, a link inside the destination that leads out).
Reading applies the same rule with :func:`relative_inside`, so a name that escapes never reaches a writer.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePath

from yolorep.errors import YolorepError, quoted

__all__ = ["confined", "relative_inside"]


def relative_inside(name: str) -> str | None:
    """``name`` normalised (``a/./b`` -> ``a/b``, ``a/../b`` -> ``b``) when it is a relative path that stays in
    its folder, else None (absolute, a drive or root, ``..`` above the folder, empty, or a NUL byte)."""
    if not name or "\0" in name:
        return None
    normal = os.path.normpath(name)
    if PurePath(normal).anchor or os.path.isabs(normal) or normal == "." or PurePath(normal).parts[0] == "..":
        return None
    return normal


def confined(root: str | Path, name: str | Path) -> Path:
    """``root / name``, checked to lie inside ``root`` once both are resolved.

    Raises:
        YolorepError: the path would lie outside ``root``.
    """
    root = Path(root)
    relative = relative_inside(str(name))
    target = root / relative if relative is not None else None
    if target is None or not target.resolve().is_relative_to(root.resolve()):
        raise YolorepError(f"{root}: refused to write {quoted(str(name))}, which lies outside this folder")
    return target
