"""Exclusive, non-blocking OS file locks (``fcntl.flock``; ``msvcrt.locking`` on Windows), which the kernel
releases when the process holding one dies, however it dies: a lock can never be left behind, so none has to be
taken over (taking over a stale lock file is a race that several processes can win at once)."""

from __future__ import annotations

import errno
import os

__all__ = ["lock_file", "unlock_file"]

# Windows locks are mandatory, so a reader could not read the owner's pid next to a locked byte at offset 0:
# the byte locked lies far past anything written into the file.
_WINDOWS_LOCK_OFFSET = 1 << 30


def lock_file(fd: int) -> bool:
    """Take an exclusive lock on the open file ``fd`` without waiting; False when another process holds it.

    Raises:
        OSError: the file system does not support locks (``ENOLCK``, ``EOPNOTSUPP``), or another failure.
    """
    if os.name == "nt":
        import msvcrt

        os.lseek(fd, _WINDOWS_LOCK_OFFSET, os.SEEK_SET)
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError as err:
            if err.errno in (errno.EACCES, errno.EDEADLK):
                return False
            raise
        return True
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as err:
        if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return False
        raise
    return True


def unlock_file(fd: int) -> None:
    """Release the lock ``lock_file`` took on ``fd`` (closing ``fd`` releases it too)."""
    if os.name == "nt":
        import msvcrt

        os.lseek(fd, _WINDOWS_LOCK_OFFSET, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
        return
    import fcntl

    fcntl.flock(fd, fcntl.LOCK_UN)
