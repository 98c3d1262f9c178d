"""Atomic file writes: a file (or a folder, built in a partial sibling) appears complete or not at all, whatever
stops the process or fills the disk; and the check that tells an abandoned temporary (its writer died) from one in
progress."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = [
    "atomic_dir",
    "atomic_path",
    "partial_dir",
    "process_alive",
    "remove_abandoned_partials",
    "write_text_atomic",
]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (``.<name>.XXXX.tmp``, same suffix appended) to write to; on success
    it is flushed to disk and renamed over ``path``, on any exception deleted.

    Readers never see a torn file, and a killed process leaves only a dot-file that ``RunLock`` cleans up.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f"{path.suffix}.tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the file the permissions open() would
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        if err.filename is None:  # a failed write() names no file: name the one being written
            raise OSError(err.errno, err.strerror, str(path)) from err
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | Path, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def process_alive(pid: int) -> bool:
    """True if a process with ``pid`` exists (possibly another user's)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def partial_dir(target: Path) -> Path:
    """Create the folder in which ``target`` is built, ``.<name>.partial-<pid>-<id>`` beside it, to be renamed to
    ``target`` once complete; first delete those of builds whose process died (``remove_abandoned_partials``).

    Not ``tempfile.mkdtemp``: its 0700 mode would stick to the renamed folder.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_abandoned_partials(target)
    partial = target.parent / f".{target.name}.partial-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    partial.mkdir()
    return partial


def remove_abandoned_partials(target: Path) -> None:
    """Delete the partial folders of ``target`` (``partial_dir``) whose process died."""
    for partial in target.parent.glob(f".{target.name}.partial-*"):
        pid = partial.name.rsplit(".partial-", 1)[1].split("-")[0]
        if pid.isdigit() and not process_alive(int(pid)):
            shutil.rmtree(partial, ignore_errors=True)


@contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a partial folder (``partial_dir``) to build the folder ``path`` in; on success it replaces ``path`` (a
    previous folder of that name is deleted first), on any exception it is deleted."""
    path = Path(path)
    work = partial_dir(path)
    try:
        yield work
        if path.is_dir():
            shutil.rmtree(path)
        work.rename(path)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
