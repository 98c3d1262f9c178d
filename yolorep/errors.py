"""Exception types raised for bad user input.

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
