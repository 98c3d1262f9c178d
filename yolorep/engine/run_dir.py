"""Run folders: ``runs/<task>/exp``, ``exp2``, ``exp3`` ... one per run, never reused; one writer at a time."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from yolorep.atomic import process_alive
from yolorep.errors import YolorepError

__all__ = ["RunLock", "increment_run_dir", "remove_stale_temporaries"]

LOGGER = logging.getLogger(__name__)


def increment_run_dir(project: str | Path, name: str) -> Path:
    """Create and return the first of ``project/name``, ``project/name2``, ``project/name3`` ... that does not exist.

    The folder is claimed with an exclusive ``mkdir``, so two runs started at the same time never share one and
    an earlier run's results are never overwritten.

    Args:
        project: parent folder (created if needed), e.g. ``runs/predict``.
        name: run name, e.g. ``exp``.

    Returns:
        The new, empty folder.
    """
    project = Path(project)
    project.mkdir(parents=True, exist_ok=True)
    n = 1
    while True:
        path = project / (name if n == 1 else f"{name}{n}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            n += 1


class RunLock:
    """An exclusive claim on a run folder (``.lock`` holding the owner's pid) for as long as a training writes to it.

    A second process training into the same folder (two ``--resume`` of one ``last.pt``) is refused; a lock left by
    a process that died is taken over. Entering also deletes the temporary files a killed write left behind.
    """

    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / ".lock"

    def __enter__(self) -> RunLock:
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                owner = self._owner()
                if owner is not None and owner != os.getpid() and process_alive(owner):
                    raise YolorepError(
                        f"{self.run_dir}: another yolorep process (pid {owner}) is training in this run; wait for it "
                        f"to finish, or delete {self.path} if that process is not yolorep"
                    ) from None
                self.path.unlink(missing_ok=True)  # left by a process that died
                continue
            with os.fdopen(fd, "w") as f:
                f.write(str(os.getpid()))
            remove_stale_temporaries(self.run_dir)
            return self
        raise YolorepError(f"{self.run_dir}: could not take the run's lock {self.path}; try again")

    def _owner(self) -> int | None:
        try:
            return int(self.path.read_text().strip())
        except (OSError, ValueError):
            return None

    def __exit__(self, *exc: object) -> None:
        if self._owner() == os.getpid():
            self.path.unlink(missing_ok=True)


def remove_stale_temporaries(run_dir: Path) -> list[Path]:
    """Delete the ``.<name>.*.tmp`` files an interrupted atomic write left in ``run_dir`` and ``run_dir/weights``.

    Only call it while holding the run's lock: then no write of this run is in progress.
    """
    stale = [p for folder in (run_dir, run_dir / "weights") for p in folder.glob(".*.tmp") if p.is_file()]
    for path in stale:
        path.unlink(missing_ok=True)
    if stale:
        LOGGER.info("%s: removed %d temporary file(s) left by an interrupted write", run_dir, len(stale))
    return stale
