"""The command line: key=value beside --flags, hyperparameters as flags, help for every flag, defaults that are
the functions' own, and unknown flags answered with the subcommand's usage and a suggestion."""

from __future__ import annotations

import argparse
import inspect

import pytest

from yolorep.cli import COMMANDS, build_parser, parse_args
from yolorep.engine.train_args import TRAIN_DEFAULTS
from yolorep.hyp import load_hyp


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices


def test_key_value_and_flags_give_the_same_arguments():
    flags = parse_args(["train", "--epochs", "3", "--imgsz", "96", "--cache", "--lr0", "0.002", "--close-mosaic", "1"])
    pairs = parse_args(["train", "epochs=3", "imgsz=96", "cache=true", "lr0=0.002", "close_mosaic=1"])
    assert flags == pairs
    command, kwargs, _ = pairs
    assert command == "train" and kwargs == {"epochs": 3, "imgsz": 96, "cache": True, "lr0": 0.002, "close_mosaic": 1}


def test_only_the_flags_given_are_forwarded():
    assert parse_args(["val", "--weights", "best.pt"])[1] == {"weights": "best.pt"}
    assert parse_args(["train", "amp=false"])[1] == {"amp": False}
    assert parse_args(["info", "model=yolorep-s.yaml"])[1] == {"model": "yolorep-s.yaml"}  # a positional as key=value


@pytest.mark.parametrize(
    ("argv", "cache"),
    [
        (["--cache"], True),  # the old spelling: a bare flag
        (["cache=true"], True),
        (["cache=ram"], True),  # ultralytics' spelling
        (["--cache", "false"], False),
        (["cache=auto"], "auto"),
    ],
)
def test_cache_spellings(argv, cache):
    assert parse_args(["train", *argv])[1] == {"cache": cache}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "--epohcs", "3"], "unrecognized arguments: --epohcs 3; --epohcs: did you mean --epochs"),
        (["train", "lr=0.1"], "--lr: did you mean --lrf or --lr0?"),
        (["val", "--weights", "x.pt", "--conff", "0.5"], "--conff: did you mean --conf?"),
        (["train", "cache=maybe"], "argument --cache: 'maybe': expected true, false or auto"),
    ],
)
def test_unknown_flags_get_the_subcommand_usage_and_a_suggestion(capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        parse_args(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and message in err
    assert err.startswith(f"usage: yolorep {argv[0]}")  # the subcommand's usage, not the top level's


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_flag_has_help_and_shows_its_default(command):
    for action in _subparsers()[command]._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        assert action.help, f"{command} {action.option_strings or action.dest}: no help text"
    text = _subparsers()[command].format_help()
    if command == "train":
        assert "--epochs EPOCHS       training epochs (default: 100)" in text
        assert "--lr0 FLOAT" in text and "(default: 0.01)" in text


def _function(command: str):
    import importlib

    module, name = COMMANDS[command]
    return getattr(importlib.import_module(module), name)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_help_defaults_are_the_functions_defaults(command):
    """The CLI forwards only the flags given, so what --help shows must be what the function does."""
    defaults = TRAIN_DEFAULTS if command == "train" else {
        name: p.default for name, p in inspect.signature(_function(command)).parameters.items()
    }  # fmt: skip
    hyp = load_hyp()
    for action in _subparsers()[command]._actions:
        if not action.option_strings or action.default in (None, False, argparse.SUPPRESS) or action.dest == "help":
            continue
        if action.dest.startswith("hyp."):
            continue
        expected = defaults.get(action.dest, hyp.get(action.dest))
        assert action.default == expected, f"{command} --{action.dest}: help says {action.default}, does {expected}"
    for action in _subparsers()[command]._actions:
        if action.dest.startswith("hyp."):
            key = action.dest.removeprefix("hyp.")
            assert action.default is None and f"(default: {hyp[key]})" in action.help
