"""Run folders: ``runs/<task>/exp``, ``exp2``, ``exp3`` ... one per run, never reused; one writer at a time."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from yolorep.engine.file_lock import lock_file
from yolorep.errors import YolorepError

__all__ = ["RUN_OUTPUTS", "RunLock", "increment_run_dir", "remove_stale_temporaries"]

LOGGER = logging.getLogger(__name__)


def increment_run_dir(project: str | Path, name: str, exist_ok: bool = False) -> Path:
    """Create and return the first of ``project/name``, ``project/name2``, ``project/name3`` ... that does not exist.

    The folder is claimed with an exclusive ``mkdir``, so two runs started at the same time never share one and
    an earlier run's results are never overwritten.

    Args:
        project: parent folder (created if needed), e.g. ``runs/predict``.
        name: run name, e.g. ``exp``.
        exist_ok: return ``project/name`` itself, made if missing, even when it holds an earlier run (whose files
            the new one overwrites, and whose other files stay).

    Returns:
        The new, empty folder (with ``exist_ok``, ``project/name``).
    """
    project = Path(project)
    project.mkdir(parents=True, exist_ok=True)
    if exist_ok:
        if (project / name).exists() and not (project / name).is_dir():
            raise YolorepError(f"{project / name}: exists and is not a folder; choose another --name")
        (project / name).mkdir(exist_ok=True)
        return project / name
    n = 1
    while True:
        path = project / (name if n == 1 else f"{name}{n}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            n += 1


class RunLock:
    """An exclusive claim on a run folder for as long as a training writes to it: an OS lock on ``.lock`` (which
    also holds the owner's pid, for the message), released by the kernel when its holder dies.

    A second process training into the same folder (two ``--resume`` of one ``last.pt``) is refused; after a
    holder died, the next process simply takes the lock. Entering also deletes the temporary files a killed write
    of the run left behind.
    """

    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / ".lock"
        self._fd: int | None = None

    def __enter__(self) -> RunLock:
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                locked = lock_file(fd)
            except OSError as err:  # a file system without locks (some network mounts): train unguarded
                LOGGER.warning("%s: cannot lock (%s); make sure no other process trains in this run", self.path, err)
                locked = True
            if not locked:
                owner = _read_owner(fd)
                os.close(fd)
                raise YolorepError(
                    f"{self.run_dir}: another yolorep process ({owner}) is training in this run; wait for it to finish"
                )
            if _same_file(fd, self.path):
                break
            os.close(fd)  # its holder deleted the file after we opened it: lock the file the path names now
        self._fd = fd
        try:
            os.ftruncate(fd, 0)
            os.write(fd, str(os.getpid()).encode())
            remove_stale_temporaries(self.run_dir)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is None:
            return
        if os.name != "nt":  # deleted while still locked, so no process can lock the file being removed
            self.path.unlink(missing_ok=True)
        os.close(self._fd)  # releases the lock
        self._fd = None


def _read_owner(fd: int) -> str:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        pid = os.read(fd, 32).decode().strip()
    except (OSError, UnicodeDecodeError):
        pid = ""
    return f"pid {pid}" if pid.isdigit() else "pid unknown"


def _same_file(fd: int, path: Path) -> bool:
    """``fd`` is the file ``path`` names now (on Windows the lock file is never deleted, so it always is)."""
    if os.name == "nt":
        return True
    try:
        st = path.stat()
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (held.st_dev, held.st_ino) == (st.st_dev, st.st_ino)


# What a run writes atomically; only the temporaries of these (``.<stem>.<random><suffix>.tmp``) are removed, so a
# file of the user's that happens to end in ``.tmp`` is never touched.
RUN_OUTPUTS = (
    "args.yaml", "results.csv", "results.png", "metrics.json", "predictions.json", "confusion_matrix.png",
    "pr_curve.png", "train_batch*.jpg", "val_image*_labels_vs_pred.jpg", "weights/last.pt", "weights/best.pt",
    "weights/epoch*.pt",
)  # fmt: skip


def remove_stale_temporaries(run_dir: Path) -> list[Path]:
    """Delete the temporaries an interrupted atomic write of one of the ``RUN_OUTPUTS`` left in ``run_dir``.

    Only call it while holding the run's lock: then no write of this run is in progress.
    """
    stale = []
    for output in RUN_OUTPUTS:
        folder, name = (run_dir / output).parent, Path(output).name
        stem, suffix = os.path.splitext(name)
        stale += [p for p in folder.glob(f".{stem}.*{suffix}.tmp") if p.is_file()]
    for path in stale:
        path.unlink(missing_ok=True)
    if stale:
        LOGGER.info("%s: removed %d temporary file(s) left by an interrupted write", run_dir, len(stale))
    return stale
