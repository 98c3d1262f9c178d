"""Exception types raised for bad user input, and how untrusted values appear in their messages.

Messages follow ``<where>: <what is wrong>; <what is valid or how to fix>`` so that a user can act on them
without reading a traceback.
"""

from __future__ import annotations


class YolorepError(Exception):
    """Base class for every error yolorep raises on user input."""


class ConfigError(YolorepError):
    """A model or dataset YAML is malformed or names something that does not exist."""


class CheckpointError(YolorepError):
    """A checkpoint file is missing, not a yolorep checkpoint, or does not match its config."""


class DatasetError(YolorepError):
    """A dataset description or its files cannot be used."""


class ArgumentError(YolorepError):
    """A command-line flag or function argument is out of its valid range."""


def quoted(value: object, limit: int = 60) -> str:
    """An untrusted value (from a data file or a model's metadata) as it may appear in a message: ``repr`` (quotes,
    escaped newlines and control characters), cut to ``limit`` characters, so a crafted value can neither forge
    a second line nor echo a file's content."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 4]}...{text[-1]}"
