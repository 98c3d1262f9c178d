"""Command line: ``yolorep {train,tune,val,predict,track,track-eval,export,benchmark,demo,info,convert,import,
check-data}``.

Each subcommand forwards the flags given, as keyword arguments, to one function; the CLI holds no logic. The flags,
their help and the defaults shown are generated from the command's options dataclasses (``yolorep.options``).
Flags are written ``--epochs 10`` or ``epochs=10`` (the ultralytics habit); ``train`` also takes every
hyperparameter (``--lr0 0.002`` or ``lr0=0.002``). Flags left out are not forwarded, so the options' own defaults
apply, and ``train --resume`` can tell which settings the user asked to change.
"""

from __future__ import annotations

import argparse
import difflib
import errno
import importlib
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

from yolorep.errors import YolorepError
from yolorep.logs import configure_logging
from yolorep.options import (
    BENCHMARK_MODES,
    BenchmarkOptions,
    CheckDataOptions,
    ConvertOptions,
    DemoOptions,
    ExportOptions,
    Hyperparameters,
    ImportOptions,
    InfoOptions,
    Options,
    PredictOptions,
    TrackEvalOptions,
    TrackOptions,
    TrainOptions,
    ValOptions,
)
from yolorep.options.arguments import add_option_arguments
from yolorep.options.tune import NOT_TUNE_OPTIONS, TuneOptions
from yolorep.version import __version__

LOGGER = logging.getLogger("yolorep")


@dataclass(frozen=True)
class Command:
    """A subcommand: the function it calls (imported only when it runs), its options and its one-line help."""

    module: str
    function: str
    options: tuple[tuple[str, type[Options]], ...]
    help: str
    usage: str | None = None


COMMANDS = {
    "train": Command(
        "yolorep.engine.train.setup", "train", (("train", TrainOptions),),
        "train a detector (multi-branch); validates a fused copy every epoch",
        "yolorep train [--model M] [--data D] [--epochs N] [--imgsz N] [--batch N] [...] [--HYPERPARAM V]",
    ),
    "tune": Command(
        "yolorep.engine.train.tune", "tune", (("tune", TuneOptions),),
        "search hyperparameters with Optuna: trials in parallel processes, each on the --time budget",
        "yolorep tune --data D --time HOURS [--trials N] [--processes N] [--storage URL] [TRAIN FLAGS] [...]",
    ),
    "val": Command(
        "yolorep.engine.val.validator", "val", (("val", ValOptions),),
        "evaluate a checkpoint (fused) or an exported model with pycocotools",
    ),
    "predict": Command(
        "yolorep.engine.predict.predictor", "predict", (("predict", PredictOptions),),
        "detect objects in images, folders, globs, videos or a webcam",
    ),
    "track": Command(
        "yolorep.engine.predict.tracking", "track", (("track", TrackOptions),),
        "detect and track objects (ByteTrack, BoT-SORT) in videos, frames or a webcam",
    ),
    "track-eval": Command(
        "yolorep.engine.predict.track_eval", "track_eval", (("track-eval", TrackEvalOptions),),
        "score tracks against MOTChallenge ground truth: HOTA, IDF1, MOTA, IDSW",
    ),
    "export": Command(
        "yolorep.engine.deploy.exporter", "export", (("export", ExportOptions),),
        "export the fused model to ONNX, TorchScript, OpenVINO, NCNN, TFLite, CoreML or TensorRT, in the precision "
        "for this CPU",
    ),
    "benchmark": Command(
        "yolorep.benchmark", "benchmark",
        (("default", BenchmarkOptions), *((f"--{m}", cls) for m, (cls, _) in BENCHMARK_MODES.items())),
        "fused vs unfused latency, throughput and equivalence, side by side",
    ),
    "demo": Command(
        "yolorep.demo", "demo", (("demo", DemoOptions),),
        "the whole story on bundled synthetic data: train, fuse, evaluate, predict",
    ),
    "info": Command(
        "yolorep.engine.summary", "info", (("info", InfoOptions),),
        "layers, parameters and GFLOPs of a model YAML or checkpoint, before/after fuse",
    ),
    "import": Command(
        "yolorep.engine.importing", "import_weights", (("import", ImportOptions),),
        "read a YOLOv6 or ultralytics .pt (no code runs) and write a yolorep checkpoint",
    ),
    "convert": Command(
        "yolorep.datasets.convert", "convert", (("convert", ConvertOptions),),
        "rewrite a data set in another layout: read with one, write with another",
    ),
    "check-data": Command(
        "yolorep.engine.data_check", "check_data", (("check-data", CheckDataOptions),),
        "count and check a data set's images and labels, with plots, without training",
    ),
}  # fmt: skip


class _Parser(argparse.ArgumentParser):
    """Errors print this (sub)command's usage, a close-match suggestion for unknown flags, and exit with 2."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n")

    def unknown(self, extras: list[str]) -> NoReturn:
        known = [s for a in self._actions for s in a.option_strings if s.startswith("--")]
        hints = []
        for token in extras:
            if token.startswith("-"):
                close = difflib.get_close_matches(token.split("=")[0], known, n=2, cutoff=0.6)
                hints += [f"{token}: did you mean {' or '.join(close)}?"] if close else []
        hint = "; ".join(hints) or f"see '{self.prog} --help' for the flags"
        self.error(f"unrecognized arguments: {' '.join(extras)}; {hint}")


def _add_command(sub: Any, name: str, command: Command) -> None:
    p = sub.add_parser(name, help=command.help, usage=command.usage, description=command.help)
    if name == "train":
        add_option_arguments(p, command.options)
        group = p.add_argument_group("hyperparameters (cfg/default.yaml; also settable in a --hyp file)")
        add_option_arguments(group, (("train", Hyperparameters),), type_metavars=True)
        return
    if name == "tune":  # the search's options, then every trial's training options; a hyperparameter given is fixed
        add_option_arguments(p, command.options)
        tune_fields = [f.name for _, cls in command.options for f, _ in cls.specs()]
        group = p.add_argument_group("training options of every trial")
        add_option_arguments(group, (("train", TrainOptions),), exclude=[*tune_fields, *NOT_TUNE_OPTIONS])
        group = p.add_argument_group("hyperparameters fixed for every trial (not searched)")
        add_option_arguments(group, (("train", Hyperparameters),), type_metavars=True)
        return
    if name == "benchmark":
        for mode, (_, text) in BENCHMARK_MODES.items():
            if mode != "formats":
                p.add_argument(f"--{mode}", nargs="?", const=True, default=None, metavar="BOOL", help=text)
    add_option_arguments(p, command.options)


def _add_import(sub: Any) -> None:
    p = sub.add_parser("import", help="read a YOLOv6 or ultralytics .pt (no code runs) and write a yolorep checkpoint")
    p.add_argument("src", help="YOLOv6 v3.0 (N/S/M/L), YOLOv8 or YOLO11 detection checkpoint")
    p.add_argument("--out", default=None, help="where to write it (default: SRC's stem + -yolorep.pt, beside it)")


def build_parser() -> _Parser:
    parser = _Parser(
        prog="yolorep",
        description="YOLO detection with re-parameterized RepVGG blocks. Flags also read key=value (epochs=10).",
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=f"yolorep {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)
    for name, command in COMMANDS.items():
        _add_command(sub, name, command)
    for subparser in sub.choices.values():
        # abbreviations (--epo for --epochs) would hide which flags were given
        subparser.allow_abbrev = False
    return parser


def cli_reference() -> str:
    """docs/CLI.md: every subcommand's flags, their meaning and default, as ``--help`` shows them (both are
    generated from the options dataclasses; a test keeps the file equal to this text)."""
    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    lines = [
        "# Command-line reference",
        "",
        "Generated from the options dataclasses in `yolorep/options/`, as `yolorep COMMAND --help` is; a test keeps",
        "this file equal to `yolorep.cli.cli_reference()`. Every flag is also written `key=value` (`epochs=10`), and",
        "the Python functions and `YOLO` methods take the same names as keywords.",
    ]
    formatter = argparse.HelpFormatter("yolorep")
    for name, subparser in subparsers.items():
        lines += ["", f"## yolorep {name}", "", COMMANDS[name].help, "", "| flag | meaning |", "| --- | --- |"]
        for action in subparser._actions:
            if not isinstance(action, argparse._HelpAction):
                spelled = formatter._format_action_invocation(action).replace("|", "/")
                lines.append(f"| `{spelled}` | {action.help.replace('|', '/')} |")
    return "\n".join(lines) + "\n"


def _key_value_to_flags(tokens: list[str], subparser: argparse.ArgumentParser) -> list[str]:
    """``epochs=10`` -> ``--epochs 10``; ``cache=true`` -> ``--cache``; a positional's ``model=x`` -> ``x``."""
    actions = {s: a for a in subparser._actions for s in a.option_strings}
    positionals = {a.dest for a in subparser._actions if not a.option_strings}
    dests = {a.dest: a for a in subparser._actions if a.option_strings}
    out: list[str] = []
    for token in tokens:
        key, sep, value = token.partition("=")
        if token.startswith("-") or not sep or not key.replace("_", "").replace("-", "").isalnum():
            out.append(token)
            continue
        if key in positionals:
            out.append(value)
            continue
        action = actions.get(f"--{key.replace('_', '-')}") or actions.get(f"--{key}") or dests.get(key)
        out += [action.option_strings[0] if action else "--" + key.replace("_", "-"), value]
    return out


def parse_args(argv: Sequence[str] | None = None) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """``(command, kwargs for its function, global options)``; kwargs hold only the flags given on the command
    line (hyperparameter flags under their cfg/default.yaml keys) and the positionals."""
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    position = next((i for i, token in enumerate(argv) if token in subparsers), None)
    given: set[str] = set()
    if position is not None:
        subparser = subparsers[argv[position]]
        argv[position + 1 :] = _key_value_to_flags(argv[position + 1 :], subparser)
        flags = {token.split("=")[0] for token in argv[position + 1 :] if token.startswith("--")}
        given = {a.dest for a in subparser._actions if not a.option_strings or flags & set(a.option_strings)}
    args, extras = parser.parse_known_args(argv)
    if extras:
        subparsers[args.command].unknown(extras)
    values = vars(args)
    options = {key: values.pop(key) for key in ("verbose", "quiet")}
    command = values.pop("command")
    kwargs = {key: value for key, value in values.items() if key in given}
    return command, kwargs, options


def _environment_error(err: OSError) -> str | None:
    """One line for a full disk or a folder that cannot be written; None for other OS errors."""
    where = err.filename or "output"
    if err.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        reason = "no space left on the device" if err.errno == errno.ENOSPC else err.strerror.lower()
        return f"{where}: {reason}; free some space or write elsewhere (--project)"
    if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"{where}: cannot write here ({err.strerror}); choose a writable --project or fix the permissions"
    return None


def main(argv: Sequence[str] | None = None) -> int:
    command, kwargs, options = parse_args(argv)
    configure_logging(verbose=False if options["quiet"] else None, debug=options["verbose"])
    entry = COMMANDS[command]
    try:
        getattr(importlib.import_module(entry.module), entry.function)(**kwargs)
    except YolorepError as err:
        LOGGER.error("error: %s", err)
        return 2
    except OSError as err:
        message = _environment_error(err)
        if message is None:
            raise
        LOGGER.error("error: %s", message)
        return 2
    except KeyboardInterrupt as err:  # a training run says how to resume it
        LOGGER.error("interrupted%s", f"; {err}" if str(err) else "")
        return 130
    return 0
