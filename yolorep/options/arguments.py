"""Command-line arguments generated from option dataclasses: flag, type, help and the default shown all come from
the field, so ``--help`` cannot disagree with what the Python function does.

Every flag defaults to ``None`` on the parser: only the flags a user gives are forwarded, so the options class
applies its own defaults and ``train --resume`` can tell what the user asked to change.
"""

from __future__ import annotations

import argparse
import typing
from collections.abc import Callable, Iterable, Sequence
from dataclasses import MISSING, Field
from typing import Any

from yolorep.options.fields import Options, OptionSpec, read_bool, reader_for, type_hints

__all__ = ["add_option_arguments", "default_text"]


def _base_type(annotation: Any) -> Any:
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    return args[0] if len(args) == 1 else annotation


def _parser_type(parse: Callable[[Any], Any]) -> Callable[[str], Any]:
    """argparse's ``type=``: a value, or an ``ArgumentTypeError`` that argparse prints with the flag."""

    def parse_text(text: str) -> Any:
        try:
            return parse(text)
        except ValueError as err:
            raise argparse.ArgumentTypeError(f"{text!r}: {err}") from None

    parse_text.__name__ = getattr(parse, "__name__", "value")
    return parse_text


def default_text(value: Any) -> str | None:
    """How a default reads in the help; None for the ones not worth showing (None, False, empty)."""
    if value is None or value is False or value == () or value is MISSING or isinstance(value, Options):
        return None
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    return str(value)


def _help(entries: Sequence[tuple[str, Field, OptionSpec]]) -> str:
    """The help of a flag several modes share: the first mode's text, then ``with --x: ...`` for the modes whose
    meaning or default differs."""
    groups: dict[str, list[str]] = {}
    for label, f, spec in entries:
        shown = default_text(f.default)
        groups.setdefault(spec.help + (f" (default: {shown})" if shown else ""), []).append(label)
    texts = list(groups)
    return "; ".join([texts[0], *(f"with {', '.join(groups[t])}: {t}" for t in texts[1:])])


def add_option_arguments(
    target: Any,
    classes: Iterable[tuple[str, type[Options]]],
    *,
    type_metavars: bool = False,
    exclude: Iterable[str] = (),
) -> None:
    """Add one argument per option field of ``classes`` (``(label, class)`` pairs; a flag several classes share is
    added once, its help naming each label where they differ) to a parser or argument group.

    Args:
        type_metavars: show the value's type as placeholder (``--lr0 FLOAT``) instead of the name (``EPOCHS``).
        exclude: fields not offered (another class's field of that name already is, or the command sets it).
    """
    flags: dict[str, list[tuple[str, Field, OptionSpec]]] = {}
    annotations: dict[str, Any] = {}
    excluded = set(exclude)
    for label, cls in classes:
        for f, spec in cls.specs():
            if spec.cli and f.name not in excluded:
                flags.setdefault(f.name, []).append((label, f, spec))
                annotations.setdefault(f.name, type_hints(cls)[f.name])
    for name, entries in flags.items():
        _, f, spec = entries[0]
        _add(target, name, f, spec, _help(entries), annotations[name], type_metavars)


def _add(target: Any, name: str, f: Field, spec: OptionSpec, help: str, annotation: Any, type_metavars: bool) -> None:
    base = _base_type(annotation)
    if spec.flag == "":
        target.add_argument(name, help=spec.help, type=_parser_type(spec.parse or spec.convert or str))
        return
    flag = spec.flag or "--" + name.replace("_", "-")
    kwargs: dict[str, Any] = {"dest": name, "default": None, "help": help}
    if base is bool or spec.convert is not None and f.default is False:
        kwargs.update(nargs="?", const=True, metavar=spec.metavar or "BOOL")
        kwargs["type"] = _parser_type(spec.parse or spec.convert or read_bool)
    else:
        kwargs["type"] = _parser_type(spec.parse or spec.convert or reader_for(annotation))
        if spec.metavar:
            kwargs["metavar"] = spec.metavar
        elif type_metavars and base in (int, float, str):
            kwargs["metavar"] = base.__name__.upper()
    if f.default == "auto" and bool in typing.get_args(annotation):  # --cache alone means true
        kwargs.update(nargs="?", const=True)
    if spec.const is not None:
        kwargs.update(nargs="?", const=spec.const)
    target.add_argument(flag, **kwargs)
