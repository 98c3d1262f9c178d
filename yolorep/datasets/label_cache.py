"""The label cache: the records of a split, checked once and stored as ``.cache.npz``, keyed by a fingerprint of
the files they were read from.

It lives in the user's cache folder, ``$XDG_CACHE_HOME/yolorep/labels`` or ``~/.cache/yolorep/labels``, under a
hash of the path a cache beside the labels would have (``<hash>-train.cache.npz``), never in the data set's folder:
that folder may be read-only, shared with other users or versions, or under version control. A data set is never
refused because its cache cannot be written: without a cache, the labels are read again at the next start.
Caches that older versions wrote beside the labels are neither read nor removed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from pathlib import Path

import numpy as np

from yolorep.datasets.targets import ImageRecord

__all__ = ["CACHE_VERSION", "label_cache_path", "read_label_cache", "user_cache_dir", "write_label_cache"]

logger = logging.getLogger(__name__)

CACHE_VERSION = 4  # 4: clipped_boxes counted in every layout

# per-image arrays of a record, and the empty array of each (its shape and dtype)
_CACHED_FIELDS = {
    "boxes_xyxy": np.zeros((0, 4), np.float32),
    "classes": np.zeros(0, np.int64),
    "areas": np.zeros(0, np.float32),
    "crowd_xyxy": np.zeros((0, 4), np.float32),
    "crowd_classes": np.zeros(0, np.int64),
    "crowd_areas": np.zeros(0, np.float32),
    "difficult": np.zeros(0, bool),
}
Cached = tuple[list[ImageRecord], dict[str, int], Path]


def user_cache_dir() -> Path:
    """Where yolorep keeps what it derives from a data set: ``$XDG_CACHE_HOME/yolorep`` or ``~/.cache/yolorep``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "yolorep"


def label_cache_path(beside: Path) -> Path:
    """Where the cache of the labels that would have it at ``beside`` (``labels/train.cache.npz``) lives."""
    key = hashlib.sha256(str(beside.absolute()).encode()).hexdigest()[:32]
    return user_cache_dir() / "labels" / f"{key}-{beside.name}"


def read_label_cache(beside: Path, fingerprint: str, image_dir: Path) -> Cached | None:
    """``(records, stats, path read)`` from the valid cache of ``beside`` (see module docstring), or None."""
    path = label_cache_path(beside)
    found = _read(path, fingerprint, image_dir)
    if isinstance(found, tuple):
        return (*found, path)
    if found:
        logger.info("%s: label cache is stale; rebuilding", path)
    return None


def _read(path: Path, fingerprint: str, image_dir: Path) -> tuple[list[ImageRecord], dict[str, int]] | bool:
    """The records and stats, or whether a cache that does not fit exists at ``path``."""
    if not path.is_file():
        return False
    try:
        with np.load(path, allow_pickle=False) as z:
            if int(z["version"]) != CACHE_VERSION or str(z["fingerprint"]) != fingerprint:
                return True
            columns = [np.split(z[name], np.cumsum(z[f"{name}_counts"])[:-1]) for name in _CACHED_FIELDS]
            records = [
                ImageRecord(image_dir / f, int(i), (int(s[0]), int(s[1])), *values)
                for f, i, s, *values in zip(z["files"].tolist(), z["image_ids"], z["shapes"], *columns)
            ]
            return records, json.loads(str(z["stats"]))
    except Exception as e:  # any unreadable cache (truncated, foreign, older numpy) is just rebuilt
        logger.warning("%s: unreadable label cache (%s); rebuilding", path, e)
        return True


def write_label_cache(
    beside: Path, fingerprint: str, image_dir: Path, records: list[ImageRecord], stats: dict[str, int]
) -> Path | None:
    """Write the cache of ``beside`` in the user cache folder; returns where, or None (logged) when it cannot be
    written. Atomic (temporary file + rename): a concurrent or interrupted run never sees half a
    cache."""
    arrays = {
        "version": np.array(CACHE_VERSION),
        "fingerprint": np.array(fingerprint),
        "files": np.array([r.path.relative_to(image_dir).as_posix() for r in records], dtype=str),
        "image_ids": np.array([r.image_id for r in records], dtype=np.int64),
        "shapes": np.array([r.shape for r in records], dtype=np.int64).reshape(-1, 2),
        "stats": np.array(json.dumps(stats)),
    }
    for name, empty in _CACHED_FIELDS.items():
        values = [getattr(r, name) for r in records]
        arrays[f"{name}_counts"] = np.array([len(v) for v in values], dtype=np.int64)
        arrays[name] = np.concatenate(values + [empty]).astype(empty.dtype)
    path = label_cache_path(beside)
    try:
        _write(path, arrays)
    except OSError as e:
        logger.warning("%s: cannot write the label cache of %s (%s); the next start reads the labels again (set "
                       "XDG_CACHE_HOME to a writable folder to keep it)", path, beside, e.strerror or e)  # fmt: skip
        return None
    logger.debug("%s: label cache written to %s", beside, path)
    return path


def _write(path: Path, arrays: dict[str, np.ndarray]) -> None:
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):  # on a read-only file system even removing a missing file fails
            tmp.unlink(missing_ok=True)
        raise
