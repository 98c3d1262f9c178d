"""Run folders: ``runs/<task>/exp``, ``exp2``, ``exp3`` ... one per run, never reused."""

from __future__ import annotations

from pathlib import Path

__all__ = ["increment_run_dir"]


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
