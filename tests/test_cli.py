"""The command line: key=value beside --flags, hyperparameters as flags, help for every flag, defaults that are
the functions' own, and unknown flags answered with the subcommand's usage and a suggestion."""

from __future__ import annotations

import argparse

import pytest

from yolorep.cli import COMMANDS, build_parser, parse_args
from yolorep.options.hyp import load_hyp


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
        (["train", "cache=maybe"], "argument --cache: 'maybe': expected true, false, auto or disk"),
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


def _option_fields(command: str):
    """(flag, field, spec) of every option the command offers on the command line."""
    from yolorep.options.fields import flag_of

    for _, cls in COMMANDS[command].options:
        for f, spec in cls.specs():
            if spec.cli:
                yield flag_of(f), f, spec


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_help_is_generated_from_the_options(command):
    """Every option of the command's dataclasses is a flag whose help is the field's own, with its default."""
    from yolorep.options.arguments import default_text

    actions = {s: a for a in _subparsers()[command]._actions for s in a.option_strings}
    actions.update({a.dest.upper(): a for a in _subparsers()[command]._actions if not a.option_strings})
    for flag, f, spec in _option_fields(command):
        action = actions[flag]
        assert action.default is None or not action.option_strings, f"{flag}: only given flags are forwarded"
        assert spec.help in action.help, flag
        shown = default_text(f.default)
        if shown and action.option_strings:
            assert f"default: {shown})" in action.help, f"{command} {flag}: help does not show {shown}"


def test_hyperparameter_flags_show_their_defaults():
    hyp = load_hyp()
    for action in _subparsers()["train"]._actions:
        if action.dest in hyp and hyp[action.dest] not in (False, None):
            assert f"(default: {hyp[action.dest]})" in action.help, action.dest


def test_cli_reference_is_generated_from_the_options():
    from pathlib import Path

    from yolorep.cli import cli_reference

    path = Path(__file__).parents[1] / "docs" / "CLI.md"
    assert path.read_text() == cli_reference(), "regenerate docs/CLI.md from yolorep.cli.cli_reference()"


def test_every_documented_flag_exists():
    """Each ``--flag`` written after ``yolorep COMMAND`` in the README and docs is a flag of that command."""
    import re
    from pathlib import Path

    root = Path(__file__).parents[1]
    parsers = _subparsers()
    for doc in [root / "README.md", *sorted((root / "docs").glob("*.md"))]:
        for command, rest in re.findall(r"yolorep ([\w-]+)((?: [^\n|`&;]*)?)", doc.read_text()):
            if command not in parsers:
                continue
            known = {s for a in parsers[command]._actions for s in a.option_strings}
            for flag in re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", rest):
                assert flag in known, f"{doc.name}: 'yolorep {command} ... {flag}' is not a flag of {command}"


def test_commands_that_take_exported_models_say_so():
    """val, predict and track run exported models as well as checkpoints: no default is "the checkpoint's"."""
    parsers = _subparsers()
    for command in ("val", "predict", "track"):
        helps = {a.dest: a.help for a in parsers[command]._actions if a.help}
        assert ".onnx" in helps["weights"] and "OpenVINO folder" in helps["weights"], command
        assert not [dest for dest, text in helps.items() if "checkpoint's" in text], command
    assert "exported model" in parsers["val"].description
