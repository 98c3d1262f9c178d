"""Declaring an option once: a dataclass field carries its default, how a value is read and checked, and its help.

The command line (flags, help, defaults shown), the Python keyword arguments, the range checks and their error
messages, and what a checkpoint stores are all generated from these fields, so none of them can disagree::

    @dataclass(frozen=True)
    class ValOptions(Options):
        conf: float | None = option(None, "confidence threshold", check=fraction)

An ``Options`` subclass checks and normalises every field when it is built; a bad value raises ``ArgumentError``
naming the flag, the value, what is valid and what the option means.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import math
import typing
from collections.abc import Callable, Iterator, Mapping
from dataclasses import MISSING, Field, dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from yolorep.errors import ArgumentError

__all__ = [
    "OPTION",
    "Check",
    "Options",
    "OptionSpec",
    "Search",
    "at_least",
    "between",
    "fraction",
    "greater_than",
    "one_of",
    "option",
    "read_bool",
]

OPTION = "yolorep.option"  # the key of an OptionSpec in a dataclass field's metadata
Check = Callable[[Any], "str | None"]  # returns what is wrong with a value, or None when it is valid
T = TypeVar("T", bound="Options")


@dataclass(frozen=True)
class Search:
    """The range ``yolorep tune`` searches for a hyperparameter: ``low`` to ``high`` (integers for an int field),
    sampled on a log scale with ``log``. Both ends lie inside the option's valid range (a test checks)."""

    low: float
    high: float
    log: bool = False


@dataclass(frozen=True)
class OptionSpec:
    """How one option is read, checked and shown.

    Attributes:
        help: what the option means, one line (the CLI help and every error message about it).
        check: range rule on the converted value (``None`` values are not checked).
        convert: turns a CLI string or a Python value into the field's value, raising ``ValueError`` with a
            message of what is expected; by default derived from the field's type.
        parse: how the CLI reads the flag's text, when not with ``convert`` (``--hyp FILE`` stays a path).
        flag: the CLI spelling (default ``--name-with-dashes``); ``""`` makes a positional argument.
        metavar: the placeholder shown in the CLI help.
        resume: may differ on ``train --resume`` (where the data lives, where it runs, how images are held).
        cli: offered on the command line.
        stored: written into checkpoints (``train_args``).
        const: the value of the flag given alone (``--multi-scale`` for ``--multi-scale true``), before ``convert``.
        search: the range ``yolorep tune`` searches (hyperparameters).
    """

    help: str
    check: Check | None = None
    convert: Callable[[Any], Any] | None = None
    parse: Callable[[str], Any] | None = None
    flag: str | None = None
    metavar: str | None = None
    resume: bool = False
    cli: bool = True
    stored: bool = True
    const: Any = None
    search: Search | None = None


def option(default: Any = MISSING, help: str = "", **spec: Any) -> Any:
    """A dataclass field declared as an option (see ``OptionSpec`` for ``spec``); no default makes it required."""
    kwargs: dict[str, Any] = {"metadata": {OPTION: OptionSpec(help, **spec)}}
    if isinstance(default, (list, dict, set)):
        raise TypeError("option defaults must be immutable: use a tuple")
    if default is not MISSING:
        kwargs["default"] = default
    return field(**kwargs)


# ---- range rules -------------------------------------------------------------------------------------------------
def _finite(value: Any) -> bool:
    return not isinstance(value, float) or math.isfinite(value)


def at_least(least: float) -> Check:
    """``value >= least`` (and finite)."""
    kind = "an integer" if isinstance(least, int) else "a finite number"
    return lambda v: None if _finite(v) and v >= least else f"must be {kind} of at least {least:g}"


def greater_than(bound: float, most: float | None = None) -> Check:
    """``bound < value`` (``<= most`` when given), finite."""
    upper = f" and at most {most:g}" if most is not None else ""

    def check(value: Any) -> str | None:
        ok = _finite(value) and value > bound and (most is None or value <= most)
        return None if ok else f"must be a finite number greater than {bound:g}{upper}"

    return check


def between(low: float, high: float, *, high_open: bool = False) -> Check:
    """``low <= value <= high`` (``< high`` with ``high_open``)."""
    bracket = ")" if high_open else "]"

    def check(value: Any) -> str | None:
        ok = _finite(value) and low <= value and (value < high if high_open else value <= high)
        return None if ok else f"out of range; use a value in [{low:g}, {high:g}{bracket}"

    return check


fraction = between(0.0, 1.0)  # a probability, a threshold, a jitter fraction


def one_of(*choices: str) -> Check:
    return lambda v: None if v in choices else f"unknown; use one of {', '.join(choices)}"


# ---- converting values by type -----------------------------------------------------------------------------------
def read_bool(value: Any) -> bool:
    """True/False, or the words true/yes/on/1 and false/no/off/0 (any case)."""
    if isinstance(value, bool):
        return value
    word = str(value).strip().lower()
    if word in ("1", "true", "yes", "on"):
        return True
    if word in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected true or false")


def _read_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("expected an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise ValueError("expected an integer")


def _read_float(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError("expected a number")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            pass
    raise ValueError("expected a number")


def _read_str(value: Any) -> str:
    if isinstance(value, (str, Path)):
        return str(value)
    raise ValueError("expected a string or a path")


_READERS: dict[Any, Callable[[Any], Any]] = {int: _read_int, float: _read_float, bool: read_bool, str: _read_str}


def reader_for(annotation: Any) -> Callable[[Any], Any]:
    """The converter for a field type: ``int``, ``float``, ``bool``, ``str`` or one of them ``| None``; other types
    (``Any``, ``object``) pass values through."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    base = args[0] if len(args) == 1 else annotation
    return _READERS.get(base, lambda value: value)


# ---- the options base class --------------------------------------------------------------------------------------
class Options:
    """Base of the frozen option dataclasses: ``Cls.from_kwargs(kwargs)`` builds one from keyword arguments or CLI
    flags, checking unknown names, types and ranges; attribute access makes a misspelt option an AttributeError.

    Subclasses are ``@dataclass(frozen=True)`` with every field made by ``option``.
    """

    command: ClassVar[str] = ""  # the subcommand, for messages (``train``)

    def __post_init__(self) -> None:
        hints = type_hints(type(self))
        for f in _fields(type(self)):
            object.__setattr__(self, f.name, _converted(f, getattr(self, f.name), hints[f.name]))

    @classmethod
    def specs(cls) -> Iterator[tuple[Field, OptionSpec]]:
        """Every option field and its spec, in declaration order."""
        for f in _fields(cls):
            yield f, f.metadata[OPTION]

    @classmethod
    def from_kwargs(cls: type[T], kwargs: Mapping[str, Any]) -> T:
        """Build from keyword arguments; ``None`` means the default, unknown names are refused with the closest
        valid ones."""
        fields = {f.name: f for f in _fields(cls)}
        unknown = [k for k in kwargs if k not in fields]
        if unknown:
            raise unknown_option(cls.command, unknown[0], sorted(fields))
        return cls(**{k: v for k, v in kwargs.items() if v is not None or fields[k].default is None})

    @classmethod
    def build(cls: type[T], args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> T:
        """The options of a call ``f(*args, **kwargs)``: ``args`` fill the leading fields in order, as a plain
        signature would (``export("best.pt", format="onnx")``); an options object may be passed instead
        (``export(ExportOptions(...))``), and keywords then change it."""
        if args and isinstance(args[0], cls):
            if len(args) > 1:
                raise TypeError(f"{cls.__name__} given, with {len(args) - 1} more positional argument(s)")
            return args[0].replace(**kwargs) if kwargs else args[0]
        names = [f.name for f in _fields(cls)]
        if len(args) > len(names):
            raise TypeError(f"{cls.command or cls.__name__}: at most {len(names)} positional arguments")
        both = set(names[: len(args)]) & set(kwargs)
        if both:
            raise TypeError(f"{cls.command or cls.__name__}: {sorted(both)[0]!r} given twice")
        return cls.from_kwargs({**dict(zip(names, args)), **kwargs})

    def replace(self: T, **changes: Any) -> T:
        """A copy with ``changes`` applied (and checked)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """The stored options: plain values (tuples as lists, nested options as dicts)."""
        out = {}
        for f, spec in self.specs():
            if spec.stored:
                out[f.name] = _plain(getattr(self, f.name))
        return out


def unknown_option(command: str, name: str, valid: list[str]) -> ArgumentError:
    close = difflib.get_close_matches(name, valid, n=2, cutoff=0.6)
    hint = f"did you mean {' or '.join(close)}? " if close else ""
    where = f"{command}: " if command else ""
    listed = f"options are {', '.join(valid)}" if len(valid) <= 16 else f"'yolorep {command} --help' lists them"
    return ArgumentError(f"{where}unknown option {name!r}; {hint}{listed}")


def meaning(spec: OptionSpec) -> str:
    """The help text shortened for an error message: up to its first ``:``, ``;`` or parenthesis."""
    cut = min((i for i in (spec.help.find(c) for c in (":", ";", " (")) if i > 0), default=len(spec.help))
    return spec.help[:cut]


def flag_of(f: Field) -> str:
    """How messages name a field: its CLI flag (``--max-det``), or its name for a positional."""
    spec: OptionSpec = f.metadata[OPTION]
    if spec.flag == "":
        return f.name.upper()
    return spec.flag or "--" + f.name.replace("_", "-")


def _fields(cls: type) -> list[Field]:
    return [f for f in dataclasses.fields(cls) if OPTION in f.metadata]


@functools.cache
def type_hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _converted(f: Field, value: Any, annotation: Any) -> Any:
    spec: OptionSpec = f.metadata[OPTION]
    if value is None and f.default is None:
        return None
    try:
        value = (spec.convert or reader_for(annotation))(value)
    except ValueError as err:
        raise ArgumentError(f"{flag_of(f)} {_shown(value)}: {err} ({meaning(spec)})") from None
    problem = spec.check(value) if spec.check is not None and value is not None else None
    if problem:
        raise ArgumentError(f"{flag_of(f)} {_shown(value)}: {problem} ({meaning(spec)})")
    return value


def _shown(value: Any) -> str:
    """A value as a message shows it: short, and never the content of a large object."""
    text = (
        repr(value) if isinstance(value, str) else ",".join(map(str, value)) if isinstance(value, tuple) else str(value)
    )
    return text if len(text) <= 60 else text[:57] + "..."


def _plain(value: Any) -> Any:
    if isinstance(value, Options):
        return value.to_dict()
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value
