"""``--cache disk``: decoded images kept as ``.npy`` files, so later epochs and runs read pixels instead of decoding
JPEG/PNG.

Each image ``a.jpg`` gets ``a.jpg.npy`` (the file's whole name, so ``a.jpg`` and ``a.png`` do not share one) beside
it, holding the decoded image at full resolution (what ``cv2.imread`` returns, ``[h, w, 3]`` uint8 BGR): one file
serves every image size, training and validation. Where the image's folder cannot be written (a read-only mount,
a shared data set) the file goes to the user cache folder, ``$XDG_CACHE_HOME/yolorep/images`` or
``~/.cache/yolorep/images``, under a hash of the folder (as the label cache does). A file older than its image, of
another shape, or unreadable is written again; a file that cannot be written anywhere leaves the image decoded as
usual.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import threading
from pathlib import Path

import numpy as np

from yolorep.datasets.label_cache import user_cache_dir

__all__ = ["DiskImageCache", "read_decoded"]

logger = logging.getLogger(__name__)


def read_decoded(path: Path) -> np.ndarray | None:
    """The image a cache file holds, or None when it cannot be read (deleted, truncated)."""
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError):
        return None


class DiskImageCache:
    """Where each image's decoded copy lives, written when missing or stale; safe to call from threads."""

    def __init__(self) -> None:
        self.unwritable: set[Path] = set()  # image folders found read-only: their files go to the user cache folder
        self.written = self.reused = 0
        self.bytes = 0
        self._lock = threading.Lock()

    @staticmethod
    def fallback_root() -> Path:
        """Where the copies of images in read-only folders go."""
        return user_cache_dir() / "images"

    @classmethod
    def fallback(cls, image: Path) -> Path:
        key = hashlib.sha256(str(image.parent.resolve()).encode()).hexdigest()[:32]
        return cls.fallback_root() / key / f"{image.name}.npy"

    def ensure(self, image: Path, shape: tuple[int, int]) -> Path | None:
        """The cache file of ``image`` (``shape``: its (h, w)), written now if no valid one exists; None when it
        cannot be written (logged once a folder)."""
        beside = image.with_name(image.name + ".npy")
        for path in (beside, self.fallback(image)):
            if _is_valid(path, image, shape):
                self._count(path, written=False)
                return path
        import cv2

        decoded = cv2.imread(str(image), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
        if decoded is None or decoded.shape[:2] != tuple(shape):
            return None  # the loader reports it when it reads the image
        errors = []
        places = (beside, self.fallback(image)) if image.parent not in self.unwritable else (self.fallback(image),)
        for path in places:
            try:
                _write(path, decoded)
            except OSError as err:
                errors.append(err.strerror or str(err))
                with self._lock:
                    if path == beside:
                        self.unwritable.add(image.parent)
                continue
            self._count(path, written=True)
            return path
        logger.warning("%s: cannot write its decoded copy (%s); it is decoded every time", image, "; ".join(errors))
        return None

    def _count(self, path: Path, written: bool) -> None:
        size = path.stat().st_size
        with self._lock:
            self.written += written
            self.reused += not written
            self.bytes += size


def _is_valid(path: Path, image: Path, shape: tuple[int, int]) -> bool:
    """A readable copy of ``image`` as it is now: not older than the image, of its shape."""
    try:
        if path.stat().st_mtime_ns < image.stat().st_mtime_ns:
            return False
        header = np.load(path, mmap_mode="r", allow_pickle=False)  # reads the header only
        return header.shape == (*shape, 3) and header.dtype == np.uint8
    except (OSError, ValueError):
        return False


def _write(path: Path, image: np.ndarray) -> None:
    """Atomically (a temporary file renamed over it): a reader never sees half an image. Not synced to disk: a
    file torn by a crash fails to load and is written again."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        if not path.parent.is_dir():
            path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            np.save(f, image, allow_pickle=False)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise
