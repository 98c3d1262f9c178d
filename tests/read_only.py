"""A folder made read-only for this process, whoever runs the tests: root ignores permission bits, so every call
that would create, change or delete something under the folder fails with EROFS, as on a read-only mount."""

from __future__ import annotations

import builtins
import errno
import io
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


@contextmanager
def read_only(folder: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Refuse writes under ``folder``; yields the list of refused paths (what the code tried to write)."""
    root = os.path.realpath(folder)
    refused: list[str] = []

    def check(path: object) -> None:
        if isinstance(path, int):  # a file descriptor: nothing to check
            return
        full = os.path.realpath(os.fsdecode(path))
        if full == root or full.startswith(root + os.sep):
            refused.append(full)
            raise OSError(errno.EROFS, "Read-only file system", os.fsdecode(path))

    def guard_open(original):
        def opened(file, mode="r", *args, **kwargs):
            if any(c in mode for c in "wax+"):
                check(file)
            return original(file, mode, *args, **kwargs)

        return opened

    def guard_os_open(original):
        def opened(path, flags, *args, **kwargs):
            if flags & _WRITE_FLAGS:
                check(path)
            return original(path, flags, *args, **kwargs)

        return opened

    def guard(original, *positions):
        def guarded(*args, **kwargs):
            for i in positions:
                check(args[i])
            return original(*args, **kwargs)

        return guarded

    monkeypatch.setattr(builtins, "open", guard_open(builtins.open))
    monkeypatch.setattr(io, "open", guard_open(io.open))
    monkeypatch.setattr(os, "open", guard_os_open(os.open))
    for name, positions in (("replace", (0, 1)), ("rename", (0, 1)), ("unlink", (0,)), ("remove", (0,)),
                            ("mkdir", (0,)), ("rmdir", (0,)), ("chmod", (0,)), ("utime", (0,))):  # fmt: skip
        monkeypatch.setattr(os, name, guard(getattr(os, name), *positions))
    yield refused
