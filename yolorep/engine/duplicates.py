"""Finding copies of images: byte-identical files (a content hash), and near duplicates (the same picture resized,
re-encoded or captioned) by a perceptual difference hash."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

__all__ = ["NEAR_BITS", "difference_hash", "identical_files", "near_duplicates"]

_CHUNK = 1 << 20
_THREADS = 8  # reading and decoding are I/O and GIL-free cv2 work
_SIDE = 16  # the hash compares 16 x 16 neighbour pairs: 256 bits
# Hashes this many bits apart (of 256) are one picture. In the 200 raccoon photos the same picture resized,
# re-encoded or captioned differs by 4-9 bits, the closest different photos by 73; 300 images of the synthetic
# shapes set (smooth gradients behind a few shapes), all different, by 22 or more.
NEAR_BITS = 16
_ROWS = 256
_BIT_COUNTS = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)


def _groups(keys: Iterable[tuple[Path, object]]) -> list[list[Path]]:
    """Paths sharing a key (``None`` keys never match), groups of two or more, each sorted, in order of first path."""
    by_key: dict[object, list[Path]] = defaultdict(list)
    for path, key in keys:
        if key is not None:
            by_key[key].append(path)
    return sorted((sorted(group) for group in by_key.values() if len(group) > 1), key=lambda g: g[0])


def _content_hash(path: Path) -> str | None:
    digest = hashlib.blake2b(digest_size=20)
    try:
        with open(path, "rb") as f:
            while chunk := f.read(_CHUNK):
                digest.update(chunk)
    except OSError:
        return None
    return digest.hexdigest()


def identical_files(paths: Sequence[Path]) -> list[list[Path]]:
    """Groups of byte-identical files among ``paths`` (each path once). Only files whose size another file shares
    are read, so a set without copies costs one ``stat`` per file."""
    paths = sorted(set(paths))
    sizes = _groups((p, p.stat().st_size if p.is_file() else None) for p in paths)
    candidates = [p for group in sizes for p in group]
    with ThreadPoolExecutor(_THREADS) as pool:
        return _groups(zip(candidates, pool.map(_content_hash, candidates)))


def difference_hash(path: Path) -> np.ndarray | None:
    """A 256-bit dHash of the image, packed as [32] uint8: whether each cell of a 17 x 16 greyscale thumbnail is
    brighter than its right neighbour. A few bits change when the picture is resized, re-encoded or captioned;
    None if unreadable."""
    import cv2

    grey = cv2.imread(str(path), cv2.IMREAD_REDUCED_GRAYSCALE_2 | cv2.IMREAD_IGNORE_ORIENTATION)
    if grey is None:
        return None
    thumb = cv2.resize(grey, (_SIDE + 1, _SIDE), interpolation=cv2.INTER_AREA).astype(np.int16)
    return np.packbits(thumb[:, 1:] > thumb[:, :-1])


def _close_pairs(hashes: np.ndarray) -> list[tuple[int, int]]:
    """Index pairs of ``hashes`` ([N, 32] uint8, packed bits) at most ``NEAR_BITS`` apart. Two such hashes agree
    exactly on at least one of ``NEAR_BITS + 1`` bands of bits (pigeonhole), so only hashes sharing a band are
    compared."""
    bits = np.unpackbits(hashes, axis=1)  # [N, 256]
    bands, width = NEAR_BITS + 1, bits.shape[1]
    pairs = set()
    for b in range(bands):
        band = bits[:, width * b // bands : width * (b + 1) // bands].astype(np.int64)
        keys = band @ (1 << np.arange(band.shape[1], dtype=np.int64))
        order = np.argsort(keys, kind="stable")
        for bucket in np.split(order, np.flatnonzero(np.diff(keys[order])) + 1):
            for lo in range(0, len(bucket) - 1, _ROWS):  # row blocks bound the memory of a large bucket
                rows = bucket[lo : lo + _ROWS]
                differ = _BIT_COUNTS[hashes[rows][:, None, :] ^ hashes[bucket][None, :, :]].sum(axis=-1, dtype=int)
                pairs.update((int(rows[i]), int(bucket[j])) for i, j in zip(*np.nonzero(differ <= NEAR_BITS))
                             if rows[i] < bucket[j])  # fmt: skip
    return sorted(pairs)


def near_duplicates(paths: Sequence[Path], exclude: Sequence[Sequence[Path]] = ()) -> list[list[Path]]:
    """Groups of images whose :func:`difference_hash` differ in at most ``NEAR_BITS`` bits (linked: a~b and b~c
    make one group). Each group of ``exclude`` (byte-identical copies, found already) takes part through its first
    file only, so a group here holds pictures that differ as files."""
    skipped = {p for group in exclude for p in group[1:]}
    paths = sorted(set(paths) - skipped)
    with ThreadPoolExecutor(_THREADS) as pool:
        found = [(p, h) for p, h in zip(paths, pool.map(difference_hash, paths)) if h is not None]
    hashes = np.array([h for _, h in found], dtype=np.uint8).reshape(-1, _SIDE * _SIDE // 8)
    parent = list(range(len(found)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in _close_pairs(hashes):
        parent[root(j)] = root(i)
    return _groups((path, root(i)) for i, (path, _) in enumerate(found))
