"""What yolorep prints: the log handler the CLI and the Python entry point attach, and progress displays.

Library code only logs through ``logging.getLogger(__name__)``; nothing is configured at import. ``configure_logging``
attaches one stdout handler to the ``yolorep`` logger when the application has configured none, so scripts see the
same progress and summaries as the command line; ``verbose=False`` (or ``YOLOREP_VERBOSE=0``) keeps only warnings.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any

__all__ = ["VERBOSE_ENV", "configure_logging", "progress"]

VERBOSE_ENV = "YOLOREP_VERBOSE"
LOGGER = logging.getLogger("yolorep")


class _Handler(logging.StreamHandler):
    """The handler yolorep attaches (so it is recognised and never attached twice)."""


def configure_logging(verbose: bool | None = None, debug: bool = False) -> None:
    """Show yolorep's progress and summaries (INFO) unless ``verbose`` is False; ``debug`` shows DEBUG too.

    ``verbose=None`` reads ``$YOLOREP_VERBOSE`` (``0``/``false`` silences). A handler printing plain messages to
    stdout is attached only when neither the ``yolorep`` logger nor the root logger has one: an application that
    configured logging keeps its own handlers and formats.
    """
    if verbose is None:
        verbose = os.environ.get(VERBOSE_ENV, "1").strip().lower() not in ("0", "false", "no", "off")
    LOGGER.setLevel(logging.DEBUG if debug else logging.INFO if verbose else logging.WARNING)
    if not LOGGER.handlers and not logging.getLogger().handlers:
        handler = _Handler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(message)s"))
        LOGGER.addHandler(handler)


class _Lines:
    """Progress as plain log lines every ``interval`` seconds and at the end: what redirected output gets instead
    of a bar redrawn many times a second."""

    def __init__(self, iterable: Iterable | None, total: int | None, desc: str, unit: str, interval: float) -> None:
        self.iterable, self.total, self.desc, self.unit, self.interval = iterable, total, desc, unit, interval
        self.count, self.postfix = 0, ""
        self.start = self.last = time.perf_counter()

    def __iter__(self) -> Iterator[Any]:
        for item in self.iterable:
            yield item
            self.update()
        self.close()

    def update(self, n: int = 1) -> None:
        self.count += n
        now = time.perf_counter()
        if now - self.last >= self.interval:
            self.last = now
            self._log(now)

    def set_postfix_str(self, text: str, refresh: bool = True) -> None:
        self.postfix = text

    def _log(self, now: float) -> None:
        done = f"{self.count}/{self.total}" if self.total else f"{self.count}"
        LOGGER.info("%s: %s %s, %.0fs %s", self.desc, done, self.unit, now - self.start, self.postfix)

    def close(self) -> None:
        if self.count and self.last != -1:
            self._log(time.perf_counter())
        self.last = -1

    def __enter__(self) -> _Lines:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Silent(_Lines):
    def _log(self, now: float) -> None:
        pass


def progress(
    iterable: Iterable | None = None,
    *,
    total: int | None = None,
    desc: str = "",
    unit: str = "it",
    leave: bool = True,
    interval: float = 30.0,
) -> Any:
    """A progress display over ``iterable`` (or updated by hand with ``update``): a tqdm bar on a terminal, plain
    log lines every ``interval`` seconds when output is redirected, nothing when yolorep logs below INFO.

    The returned object iterates like ``iterable`` and has ``update(n)``, ``set_postfix_str(text)`` and
    ``close()``; it is a context manager.
    """
    if total is None and iterable is not None and hasattr(iterable, "__len__"):
        total = len(iterable)
    if not LOGGER.isEnabledFor(logging.INFO):
        return _Silent(iterable, total, desc, unit, interval)
    if sys.stderr.isatty():
        from tqdm import tqdm

        return tqdm(iterable, total=total, desc=desc, unit=unit, leave=leave)
    return _Lines(iterable, total, desc, unit, interval)
