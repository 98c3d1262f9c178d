"""Command line: ``yolorep {train,val,predict,export,benchmark,demo,info}``.

Each subcommand forwards its flags, as keyword arguments, to one engine function; the CLI holds no logic.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from yolorep.errors import YolorepError
from yolorep.version import __version__

LOGGER = logging.getLogger("yolorep")


def _add_common(p: argparse.ArgumentParser, *, imgsz: int = 640, batch: int = 16) -> None:
    p.add_argument("--imgsz", type=int, default=imgsz, help="image size in pixels (longest side)")
    p.add_argument("--batch", type=int, default=batch, help="batch size")
    p.add_argument("--device", default=None, help="cpu, cuda, 0, 0,1 ... (default: first GPU if any, else cpu)")


def _add_run_folder(p: argparse.ArgumentParser, project: str) -> None:
    p.add_argument("--project", default=project, help=f"parent folder of the run (default {project})")
    p.add_argument("--name", default="exp", help="run name; exp, exp2, ... are never overwritten")


def _classes(text: str) -> list[int]:
    return [int(c) for c in text.replace(",", " ").split()]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="yolorep", description="YOLO detection with re-parameterized RepVGG blocks")
    parser.add_argument("--version", action="version", version=f"yolorep {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("train", help="train a detector (multi-branch); validates a fused copy every epoch")
    p.add_argument("--model", default="yolorep-n.yaml", help="model YAML (yolorep-s.yaml selects scale s)")
    p.add_argument("--weights", default=None, help="initial weights (.pt), e.g. a previous last.pt")
    p.add_argument("--data", default="data/shapes.yaml", help="dataset YAML")
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--hyp", default=None, help="hyperparameter YAML overriding cfg/default.yaml")
    p.add_argument("--optimizer", choices=["auto", "SGD", "AdamW"], default="auto")
    p.add_argument("--workers", type=int, default=None, help="dataloader worker processes (default 2)")
    p.add_argument("--resume", nargs="?", const=True, default=False, help="resume a run: its last.pt, or the newest")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sync-bn", action="store_true", help="SyncBatchNorm across DDP processes")
    p.add_argument("--cache", action="store_true", help="keep decoded images in RAM")
    p.add_argument("--patience", type=int, default=0, help="stop after this many epochs without improvement (0: off)")
    _add_common(p, imgsz=640, batch=16)
    _add_run_folder(p, "runs/train")

    p = sub.add_parser("val", help="evaluate a checkpoint (fused) with pycocotools")
    p.add_argument("--weights", required=True)
    p.add_argument("--data", default="data/shapes.yaml")
    p.add_argument("--split", default="val", choices=["train", "val"])
    p.add_argument("--conf", type=float, default=None, help="confidence threshold (default: the checkpoint's, 0.001)")
    p.add_argument("--iou", type=float, default=None, help="NMS IoU threshold (default: the checkpoint's, 0.7)")
    p.add_argument("--max-det", type=int, default=None, help="detections per image (default 300)")
    p.add_argument("--agnostic-nms", action="store_true", help="class-agnostic NMS")
    p.add_argument("--half", action="store_true", help="fp16 inference (CUDA)")
    p.add_argument("--workers", type=int, default=2)
    _add_common(p, imgsz=None, batch=32)
    _add_run_folder(p, "runs/val")

    p = sub.add_parser("predict", help="detect objects in images, folders, globs, videos or a webcam")
    p.add_argument("--weights", required=True)
    p.add_argument("--source", required=True, help="image, folder, glob, video, webcam index or .txt list of paths")
    p.add_argument("--conf", type=float, default=0.25)
    p.add_argument("--iou", type=float, default=0.7)
    p.add_argument("--classes", type=_classes, default=None, help="keep only these class indices, e.g. 0,2")
    p.add_argument("--max-det", type=int, default=300)
    p.add_argument("--half", action="store_true")
    p.add_argument("--vid-stride", type=int, default=1, help="use every n-th video frame")
    p.add_argument("--save-txt", action="store_true", help="YOLO-format labels with scores")
    p.add_argument("--save-json", action="store_true", help="COCO-style predictions.json")
    p.add_argument("--no-save", action="store_true", help="do not write annotated images or videos")
    _add_common(p, imgsz=None, batch=1)  # default: the training or export size
    _add_run_folder(p, "runs/predict")

    p = sub.add_parser("export", help="export the fused model to ONNX, TorchScript or OpenVINO (fp32 or INT8)")
    p.add_argument("--weights", required=True)
    p.add_argument("--format", choices=["onnx", "torchscript", "openvino"], default="onnx")
    p.add_argument("--imgsz", type=int, default=640)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--dynamic", action="store_true", help="dynamic batch and image size axes")
    p.add_argument("--half", action="store_true", help="fp16 weights (needs --device cuda)")
    p.add_argument("--opset", type=int, default=17)
    p.add_argument("--device", default="cpu")
    p.add_argument("--int8", action="store_true", help="INT8 post-training quantization (onnx, openvino); needs --data")
    p.add_argument("--data", default=None, help="dataset YAML whose train split calibrates --int8")
    p.add_argument("--calib", type=int, default=64, help="calibration images for --int8 (default 64)")

    p = sub.add_parser("benchmark", help="fused vs unfused latency, throughput and equivalence, side by side")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--model", default=None, help="model YAML (random weights)")
    source.add_argument("--weights", default=None, help="trained checkpoint")
    p.add_argument("--half", action="store_true", help="fp16 autocast (CUDA)")
    p.add_argument("--bf16", action="store_true", help="bf16 autocast")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--compile", action="store_true", help="torch.compile both models")
    p.add_argument("--cuda-graph", action="store_true", help="replay a captured CUDA graph (CUDA, fixed shapes)")
    p.add_argument("--iters", type=int, default=None, help="timed iterations (default: adaptive)")
    p.add_argument("--warmup", type=int, default=None, help="warm-up iterations")
    p.add_argument("--json", default=None, help="also write the figures to this JSON file")
    p.add_argument("--sweep", action="store_true", help="grid of batch and image sizes -> CSV + plot")
    p.add_argument("--train", action="store_true", help="time training steps (forward+loss+backward+step)")
    p.add_argument("--out", default="runs/benchmark", help="folder for --sweep outputs and --formats exports")
    p.add_argument(
        "--formats", default=None, help="compare exported formats, e.g. torch,onnx,openvino,onnx-int8,openvino-int8"
    )
    p.add_argument("--data", default=None, help="with --formats: dataset YAML for INT8 calibration and mAP")
    p.add_argument("--calib", type=int, default=64, help="with --formats: INT8 calibration images (default 64)")
    _add_common(p, imgsz=640, batch=1)

    p = sub.add_parser("demo", help="the whole story on bundled synthetic data: train, fuse, evaluate, predict")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--imgsz", type=int, default=None)
    p.add_argument("--device", default=None)
    p.add_argument("--project", default="runs/demo")

    p = sub.add_parser("info", help="layers, parameters and GFLOPs of a model YAML or checkpoint, before/after fuse")
    p.add_argument("model", help="model YAML or .pt checkpoint")
    p.add_argument("--imgsz", type=int, default=640)
    return parser


# subcommand -> (module, function); the engine is imported only for the command that runs
COMMANDS = {
    "train": ("yolorep.engine.train_setup", "train"),
    "val": ("yolorep.engine.validator", "val"),
    "predict": ("yolorep.engine.predictor", "predict"),
    "export": ("yolorep.engine.exporter", "export"),
    "benchmark": ("yolorep.benchmark", "benchmark"),
    "demo": ("yolorep.demo", "demo"),
    "info": ("yolorep.engine.summary", "info"),
}


def main(argv: Sequence[str] | None = None) -> int:
    args = vars(build_parser().parse_args(argv))
    logging.basicConfig(
        level=logging.DEBUG if args.pop("verbose") else logging.INFO, format="%(message)s", stream=sys.stdout
    )
    command = args.pop("command")
    module, function = COMMANDS[command]
    try:
        getattr(importlib.import_module(module), function)(**args)
    except YolorepError as err:
        LOGGER.error("error: %s", err)
        return 2
    except KeyboardInterrupt:
        LOGGER.error("interrupted")
        return 130
    return 0
