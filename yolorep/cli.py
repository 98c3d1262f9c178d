"""Command line: ``yolorep {train,val,predict,export,benchmark,demo,info,convert,import}``.

Each subcommand forwards the flags given, as keyword arguments, to one function; the CLI holds no logic. Flags
are written ``--epochs 10`` or ``epochs=10`` (the ultralytics habit); ``train`` also takes every key of
``cfg/default.yaml`` (``--lr0 0.002`` or ``lr0=0.002``). Flags left out are not forwarded, so the function's own
defaults apply (the ones ``--help`` shows; a test keeps the two equal), and ``train --resume`` can tell which
settings the user asked to change.
"""

from __future__ import annotations

import argparse
import difflib
import errno
import importlib
import logging
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from yolorep.engine.train_args import cache_mode
from yolorep.errors import ArgumentError, YolorepError
from yolorep.hyp import describe_hyp, load_hyp
from yolorep.logs import configure_logging
from yolorep.version import __version__

LOGGER = logging.getLogger("yolorep")

# subcommand -> (module, function); the engine is imported only for the command that runs
COMMANDS = {
    "train": ("yolorep.engine.train_setup", "train"),
    "val": ("yolorep.engine.validator", "val"),
    "predict": ("yolorep.engine.predictor", "predict"),
    "export": ("yolorep.engine.exporter", "export"),
    "benchmark": ("yolorep.benchmark", "benchmark"),
    "demo": ("yolorep.demo", "demo"),
    "info": ("yolorep.engine.summary", "info"),
    "convert": ("yolorep.datasets.convert", "convert"),
    "import": ("yolorep.engine.importing", "import_weights"),
}
# Hyperparameters that are flags of their own (their cfg/default.yaml key is the flag's fallback).
_HYP_FLAGS = {"optimizer"}


class _HelpFormatter(argparse.HelpFormatter):
    """Appends ``(default: X)`` to a flag's help when it has a real default (not None, False or a checkpoint's)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (
            "%(default)" not in text
            and action.default not in (None, False, argparse.SUPPRESS)
            and action.option_strings
        ):
            text += " (default: %(default)s)"
        return text


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


def _classes(text: str) -> list[int]:
    try:
        return [int(c) for c in text.replace(",", " ").split()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected class indices such as 0,2") from None


def _layers(text: str) -> int | list[int]:
    """``10`` -> 10 (the first ten layers); ``0,1,2`` -> [0, 1, 2]."""
    try:
        values = [int(v) for v in text.replace(",", " ").split()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: a number of layers (10) or layer indices (0,1,2)") from None
    return values if "," in text or len(values) > 1 else values[0]


def _bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"{text!r}: expected true or false")


def _cache(text: str) -> bool | str:
    try:
        return cache_mode(text)
    except ArgumentError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected true, false or auto") from None


def _add_device(p: argparse.ArgumentParser, default: str | None = None) -> None:
    p.add_argument("--device", default=default, help="cpu, cuda, 0, 0,1 ... (default: the first GPU if any, else cpu)")


def _add_run_folder(p: argparse.ArgumentParser, project: str) -> None:
    p.add_argument("--project", default=project, help="parent folder of the run")
    p.add_argument("--name", default="exp", help="run name; exp, exp2, ... are never overwritten")


def _add_train(sub: Any) -> None:
    p = sub.add_parser(
        "train",
        help="train a detector (multi-branch); validates a fused copy every epoch",
        usage="yolorep train [--model M] [--data D] [--epochs N] [--imgsz N] [--batch N] [...] [--HYPERPARAM V]",
    )
    p.add_argument("--model", default="yolorep-n.yaml", help="model YAML; yolorep-s.yaml selects scale s")
    p.add_argument("--data", default="shapes.yaml", help="dataset YAML (built-in: shapes.yaml, coco.yaml)")
    p.add_argument("--epochs", type=int, default=100, help="training epochs")
    p.add_argument("--imgsz", type=int, default=640, help="training image size in pixels, a multiple of 32")
    p.add_argument("--batch", type=int, default=16, help="total batch size (split across DDP ranks)")
    _add_device(p)
    _add_workers(p)
    p.add_argument("--weights", default=None, help="initial weights: an unfused .pt such as a previous last.pt")
    p.add_argument("--hyp", default=None, help="hyperparameter YAML overriding cfg/default.yaml")
    p.add_argument(
        "--optimizer",
        choices=["auto", "SGD", "AdamW"],
        default=None,
        help="SGD, AdamW, or auto: AdamW for short schedules, SGD for long ones (default: the hyp's, auto)",
    )
    p.add_argument("--resume", nargs="?", const=True, default=False,
                   help="continue a run exactly: its last.pt, or without a path the newest run's")  # fmt: skip
    p.add_argument("--seed", type=int, default=0, help="random seed (data order, augmentation, initial weights)")
    p.add_argument("--sync-bn", action="store_true", help="SyncBatchNorm across DDP processes (CUDA)")
    _add_cache(p)
    p.add_argument("--patience", type=int, default=0, help="stop after this many epochs without improvement; 0: off")
    p.add_argument("--time", type=float, default=None,
                   help="hours: fit the schedule (epochs, LR decay, mosaic closing) to this budget, final "
                   "validation included; --epochs then only caps it")  # fmt: skip
    p.add_argument("--freeze", type=_layers, default=None, help="keep the first N layers (10) or these (0,1,2) fixed")
    p.add_argument("--single-cls", action="store_true", help="train every object as one class, 'object'")
    p.add_argument("--rect", action="store_true", help="rectangular batches (no mosaic or affine, no shuffling)")
    p.add_argument("--val-period", type=int, default=1, help="validate every N epochs (and always the last)")
    _add_run_folder(p, "runs/train")
    group = p.add_argument_group("hyperparameters (cfg/default.yaml; also settable in a --hyp file)")
    meanings = describe_hyp()
    for key, value in load_hyp().items():
        if key in _HYP_FLAGS:
            continue
        kind = _bool if isinstance(value, bool) else type(value)
        flag, metavar = f"--{key.replace('_', '-')}", type(value).__name__.upper()
        meaning = f"{meanings.get(key, key)} (default: {value})"
        group.add_argument(flag, dest=f"hyp.{key}", type=kind, default=None, metavar=metavar, help=meaning)


def _add_val(sub: Any) -> None:
    p = sub.add_parser("val", help="evaluate a checkpoint (fused) with pycocotools")
    p.add_argument("--weights", required=True, help="checkpoint to evaluate (.pt)")
    p.add_argument("--data", default=None, help="dataset YAML (default: the one the checkpoint was trained on)")
    p.add_argument("--split", default="val", choices=["train", "val"], help="which split to score")
    p.add_argument("--imgsz", type=int, default=None, help="image size (default: the checkpoint's training size)")
    p.add_argument("--batch", type=int, default=32, help="images per batch")
    _add_device(p)
    p.add_argument("--conf", type=float, default=None, help="confidence threshold (default: the checkpoint's, 0.001)")
    p.add_argument("--iou", type=float, default=None, help="NMS IoU threshold (default: the checkpoint's, 0.7)")
    p.add_argument("--max-det", type=int, default=None, help="detections per image (default: the checkpoint's, 300)")
    p.add_argument("--agnostic-nms", action="store_true", help="class-agnostic NMS")
    p.add_argument("--half", action="store_true", help="fp16 inference (CUDA)")
    p.add_argument("--protocol", choices=["yolov6", "ultralytics"], default=None,
                   help="the settings behind that project's published COCO numbers (docs/PRETRAINED.md)")  # fmt: skip
    _add_workers(p)
    _add_run_folder(p, "runs/val")


def _add_predict(sub: Any) -> None:
    p = sub.add_parser("predict", help="detect objects in images, folders, globs, videos or a webcam")
    p.add_argument("--weights", required=True, help="checkpoint (.pt)")
    p.add_argument("--source", required=True, help="image, folder, glob, video, webcam index or .txt list of paths")
    p.add_argument("--conf", type=float, default=0.25, help="keep detections scoring above this")
    p.add_argument("--iou", type=float, default=0.7, help="NMS IoU threshold")
    p.add_argument("--classes", type=_classes, default=None, help="keep only these class indices, e.g. 0,2")
    p.add_argument("--max-det", type=int, default=300, help="detections per image at most")
    p.add_argument("--half", action="store_true", help="fp16 inference (CUDA)")
    p.add_argument("--vid-stride", type=int, default=1, help="use every n-th video frame")
    p.add_argument("--save-txt", action="store_true", help="write YOLO-format labels with scores")
    p.add_argument("--save-json", action="store_true", help="write COCO-style predictions.json")
    p.add_argument("--no-save", action="store_true", help="do not write annotated images or videos")
    p.add_argument("--imgsz", type=int, default=None, help="image size (default: the checkpoint's training size)")
    p.add_argument("--batch", type=int, default=1, help="frames per forward pass")
    _add_device(p)
    _add_run_folder(p, "runs/predict")


def _add_export(sub: Any) -> None:
    p = sub.add_parser("export", help="export the fused model to ONNX, TorchScript or OpenVINO (fp32 or INT8)")
    p.add_argument("--weights", required=True, help="checkpoint to export (.pt)")
    p.add_argument("--format", choices=["onnx", "torchscript", "openvino"], default="onnx", help="file format")
    p.add_argument("--imgsz", type=int, default=None, help="input size (default: the checkpoint's training size)")
    p.add_argument("--batch", type=int, default=1, help="batch size of the exported input")
    p.add_argument("--dynamic", action="store_true", help="dynamic batch and image size axes")
    p.add_argument("--half", action="store_true", help="fp16 weights (needs --device cuda)")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset version")
    p.add_argument("--int8", action="store_true", help="INT8 post-training quantization (onnx, openvino); needs --data")
    p.add_argument("--data", default=None, help="dataset YAML whose train split calibrates --int8")
    p.add_argument("--calib", type=int, default=64, help="calibration images for --int8")
    _add_device(p, default="cpu")


def _add_workers(p: Any) -> None:
    p.add_argument(
        "--workers", type=int, default=None,
        help="data loader worker processes (default: on a CPU the cores torch's threads leave free, on a GPU up to 8)",
    )  # fmt: skip


def _add_cache(p: Any) -> None:
    p.add_argument("--cache", nargs="?", const=True, default="auto", type=_cache, metavar="{true,false,auto}",
                   help="keep decoded, resized images in RAM: true (alone: --cache), false, or auto: when they "
                   "take at most a quarter of the free memory and 4 GB")  # fmt: skip


def _add_benchmark(sub: Any) -> None:
    p = sub.add_parser("benchmark", help="fused vs unfused latency, throughput and equivalence, side by side")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--model", default=None, help="model YAML, random weights (default: yolorep-n.yaml)")
    source.add_argument("--weights", default=None, help="trained unfused checkpoint (last.pt or best.pt)")
    p.add_argument("--half", action="store_true", help="fp16 (CUDA)")
    p.add_argument("--bf16", action="store_true", help="bf16 (CPU or CUDA)")
    p.add_argument("--channels-last", action="store_true", help="NHWC memory format")
    p.add_argument("--compile", action="store_true", help="torch.compile both models")
    p.add_argument("--cuda-graph", action="store_true", help="replay a captured CUDA graph (CUDA, fixed shapes)")
    p.add_argument("--iters", type=int, default=None, help="timed calls per model (default: a few seconds' worth)")
    p.add_argument("--warmup", type=int, default=None, help="untimed calls per model first (default: 3 CPU, 25 GPU)")
    p.add_argument("--json", default=None, help="also write the figures to this JSON file")
    p.add_argument("--sweep", action="store_true", help="grid of batch and image sizes -> CSV + plot")
    p.add_argument("--train", action="store_true", help="time training steps (forward + loss + backward + step)")
    p.add_argument("--epoch", action="store_true", help="train --epochs on --data and break each epoch down by phase")
    p.add_argument("--epochs", type=int, default=2, help="epochs timed by --epoch")
    _add_workers(p)
    _add_cache(p)
    p.add_argument(
        "--formats", default=None, help="compare exported formats, e.g. torch,onnx,openvino,onnx-int8,openvino-int8"
    )
    p.add_argument(
        "--data",
        default=None,
        help="dataset YAML: --epoch trains on it (default shapes.yaml); --formats calibrates INT8 and scores mAP on it",
    )
    p.add_argument("--calib", type=int, default=64, help="with --formats: INT8 calibration images")
    p.add_argument("--out", default="runs/benchmark", help="folder for --sweep outputs and --formats exports")
    p.add_argument("--imgsz", type=int, default=None, help="square input size (default: the checkpoint's, else 640)")
    p.add_argument("--batch", type=int, default=1, help="images per call")
    _add_device(p)


def _add_demo(sub: Any) -> None:
    p = sub.add_parser("demo", help="the whole story on bundled synthetic data: train, fuse, evaluate, predict")
    p.add_argument("--time", type=float, default=None, help="minutes for the whole demo (default 9)")
    p.add_argument("--epochs", type=int, default=None, help="train this many epochs instead of fitting them to --time")
    p.add_argument("--imgsz", type=int, default=None, help="image size (default: 256 on a CPU, 320 on a GPU)")
    _add_device(p)
    p.add_argument("--project", default="runs/demo", help="parent folder of the run")


def _add_info(sub: Any) -> None:
    p = sub.add_parser("info", help="layers, parameters and GFLOPs of a model YAML or checkpoint, before/after fuse")
    p.add_argument("model", help="model YAML or .pt checkpoint")
    p.add_argument("--imgsz", type=int, default=640, help="image size the GFLOPs are counted at")


def _add_convert(sub: Any) -> None:
    # layout names are checked by convert(), which answers a wrong one in one line
    p = sub.add_parser("convert", help="rewrite a data set from the VOC, COCO or YOLO layout as COCO or YOLO")
    p.add_argument("--from", dest="from_format", required=True, metavar="{voc,coco,yolo}", help="layout of SRC")
    p.add_argument("--to", dest="to_format", required=True, metavar="{coco,yolo}", help="layout to write")
    p.add_argument("src", help="data YAML, or a data set folder (holding data.yaml, or in VOC layout)")
    p.add_argument("dst", help="new folder to write (with its data.yaml)")


def _add_import(sub: Any) -> None:
    p = sub.add_parser("import", help="read a YOLOv6 or ultralytics .pt (no code runs) and write a yolorep checkpoint")
    p.add_argument("src", help="YOLOv6 v3.0 (N/S/M/L), YOLOv8 or YOLO11 detection checkpoint")
    p.add_argument("--out", default=None, help="where to write it (default: SRC's stem + -yolorep.pt, beside it)")


def build_parser() -> _Parser:
    parser = _Parser(
        prog="yolorep",
        description="YOLO detection with re-parameterized RepVGG blocks. Flags also read key=value (epochs=10).",
        formatter_class=_HelpFormatter,
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=f"yolorep {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)
    adders = (_add_train, _add_val, _add_predict, _add_export, _add_benchmark, _add_demo, _add_info, _add_convert)
    for add in (*adders, _add_import):
        add(sub)
    for subparser in sub.choices.values():
        # abbreviations (--epo for --epochs) would hide which flags were given
        subparser.formatter_class, subparser.allow_abbrev = _HelpFormatter, False
    return parser


def _key_value_to_flags(tokens: list[str], subparser: argparse.ArgumentParser) -> list[str]:
    """``epochs=10`` -> ``--epochs 10``; ``cache=true`` -> ``--cache``; a positional's ``model=x`` -> ``x``."""
    actions = {s: a for a in subparser._actions for s in a.option_strings}
    positionals = {a.dest for a in subparser._actions if not a.option_strings}
    out: list[str] = []
    for token in tokens:
        key, sep, value = token.partition("=")
        if token.startswith("-") or not sep or not key.replace("_", "").replace("-", "").isalnum():
            out.append(token)
            continue
        if key in positionals:
            out.append(value)
            continue
        flag = "--" + key.replace("_", "-")
        action = actions.get(flag)
        if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
            try:
                out += [flag] if _bool(value) else []
            except argparse.ArgumentTypeError as err:
                subparser.error(f"{key}={value}: {err}")
        else:
            out += [flag, value]
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
    kwargs = {key.removeprefix("hyp."): value for key, value in values.items() if key in given}
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
    module, function = COMMANDS[command]
    try:
        getattr(importlib.import_module(module), function)(**kwargs)
    except YolorepError as err:
        LOGGER.error("error: %s", err)
        return 2
    except OSError as err:
        message = _environment_error(err)
        if message is None:
            raise
        LOGGER.error("error: %s", message)
        return 2
    except KeyboardInterrupt:
        LOGGER.error("interrupted")
        return 130
    return 0
