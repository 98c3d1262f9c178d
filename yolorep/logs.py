"""What yolorep prints: the log handler the CLI and the Python entry point attach, and progress displays.

Library code only logs through ``logging.getLogger(__name__)``; nothing is configured at import. ``configure_logging``
attaches one stdout handler to the ``yolorep`` logger when the application has configured none, so scripts see the
same progress and summaries as the command line; ``verbose=False`` (or ``YOLOREP_VERBOSE=0``) keeps only warnings.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any

__all__ = ["VERBOSE_ENV", "configure_logging", "progress", "root_logging_kept"]

VERBOSE_ENV = "YOLOREP_VERBOSE"
LOGGER = logging.getLogger("yolorep")


class _Handler(logging.StreamHandler):
    """The handler yolorep attaches (so it is recognised and never attached twice).

    It prints a record only when no handler of an ancestor logger will: when logging is configured after it was
    attached (by the application, or by a library calling ``logging.basicConfig``), the record goes there alone
    instead of being printed twice.
    """

    def handle(self, record: logging.LogRecord) -> bool:
        if _handled_above(LOGGER, record, self):
            return False
        return super().handle(record)


def _handled_above(logger: logging.Logger, record: logging.LogRecord, own: logging.Handler) -> bool:
    """Whether a handler of ``logger``'s ancestors (reached through propagation) will emit ``record``."""
    while logger.propagate and logger.parent is not None:
        logger = logger.parent
        for handler in logger.handlers:
            if handler is not own and not isinstance(handler, logging.NullHandler) and record.levelno >= handler.level:
                return True
    return False


@contextlib.contextmanager
def root_logging_kept() -> Iterator[None]:
    """Leave the root logger as it was, whatever a library does to it during the block.

    onnxruntime's quantizer logs through ``logging.warning``, which configures the root logger for the whole
    process (``logging.basicConfig``) when it has no handler. While the block runs, an unconfigured root gets a
    stand-in for Python's last-resort handler (warnings and errors, plain, to stderr), so nothing is configured
    and those warnings still show; handlers added meanwhile are removed afterwards and the level restored.
    """
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    if not handlers:
        stand_in = logging.StreamHandler(sys.stderr)
        stand_in.setLevel(logging.WARNING)
        root.addHandler(stand_in)
    try:
        yield
    finally:
        for handler in [h for h in root.handlers if h not in handlers]:
            root.removeHandler(handler)
        root.setLevel(level)


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
