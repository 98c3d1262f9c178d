"""The options of the commands that run a trained model: ``val``, ``predict`` and ``export``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from yolorep.options.fields import Options, at_least, between, fraction, one_of, option
from yolorep.options.train import MAX_IMGSZ

__all__ = ["ExportOptions", "PredictOptions", "ValOptions", "read_classes", "read_model", "read_source"]

DEVICE_HELP = "cpu, cuda, 0, 0,1 ... (default: the first GPU if any, else cpu)"
WORKERS_HELP = "data loader worker processes (default: on a CPU the cores torch's threads leave free, on a GPU up to 8)"


def read_model(value: Any) -> Any:
    """A file path as a string; an in-memory model (a module or a backend) as it is."""
    if isinstance(value, Path):
        return str(value)
    if value is None or isinstance(value, (bool, int, float, list, tuple, dict)):
        raise ValueError("expected a checkpoint or exported model file, or a model")
    return value


def read_source(value: Any) -> Any:
    """A path as a string; anything else predict reads (a webcam index, arrays, images, lists) as it is."""
    if value is None:
        raise ValueError("expected an image, folder, glob, video, webcam index or list")
    return str(value) if isinstance(value, Path) else value


def read_classes(value: Any) -> tuple[int, ...]:
    """``0,2`` or ``[0, 2]`` -> (0, 2)."""
    expected = "expected class indices such as 0,2"
    if isinstance(value, str):
        try:
            return tuple(int(c) for c in value.replace(",", " ").split())
        except ValueError:
            raise ValueError(expected) from None
    if isinstance(value, int) and not isinstance(value, bool):
        return (value,)
    if isinstance(value, (list, tuple)) and all(isinstance(c, int) and not isinstance(c, bool) for c in value):
        return tuple(value)
    raise ValueError(expected)


def _image_size(default: int | None, help: str) -> Any:
    return option(default, help, check=between(1, MAX_IMGSZ))


@dataclass(frozen=True)
class ValOptions(Options):
    """``yolorep val``: score a checkpoint or an exported model with pycocotools."""

    command = "val"

    weights: Any = option(
        help="checkpoint or exported model to evaluate (.pt, .onnx, .torchscript, OpenVINO folder)", convert=read_model
    )
    data: str | None = option(None, "dataset YAML (default: the one the checkpoint was trained on)")
    split: str = option("val", "which split to score", check=one_of("train", "val"))
    imgsz: int | None = _image_size(None, "image size (default: the checkpoint's training size)")
    batch: int = option(32, "images per batch", check=at_least(1))
    device: str | None = option(None, DEVICE_HELP)
    conf: float | None = option(None, "confidence threshold (default: the checkpoint's, 0.001)", check=fraction)
    iou: float | None = option(None, "NMS IoU threshold (default: the checkpoint's, 0.7)", check=fraction)
    max_det: int | None = option(None, "detections per image (default: the checkpoint's, 300)", check=at_least(1))
    agnostic_nms: bool = option(False, "class-agnostic NMS")
    half: bool = option(False, "fp16 inference (CUDA)")
    workers: int | None = option(None, WORKERS_HELP, check=at_least(0))
    project: str = option("runs/val", "parent folder of the run")
    name: str = option("exp", "run name; exp, exp2, ... are never overwritten")


@dataclass(frozen=True)
class PredictOptions(Options):
    """``yolorep predict``: detect objects in images, folders, globs, videos or a webcam."""

    command = "predict"

    weights: Any = option(
        help="checkpoint or exported model (.pt, .onnx, .torchscript, OpenVINO folder)", convert=read_model
    )
    source: Any = option(help="image, folder, glob, video, webcam index or .txt list of paths", convert=read_source)
    conf: float = option(0.25, "keep detections scoring above this", check=fraction)
    iou: float = option(0.7, "NMS IoU threshold", check=fraction)
    classes: tuple[int, ...] | None = option(
        None, "keep only these class indices, e.g. 0,2", convert=read_classes, metavar="CLASSES"
    )
    max_det: int = option(300, "detections per image at most", check=at_least(1))
    half: bool = option(False, "fp16 inference (CUDA)")
    vid_stride: int = option(1, "use every n-th video frame", check=at_least(1))
    save_txt: bool = option(False, "write YOLO-format labels with scores")
    save_json: bool = option(False, "write COCO-style predictions.json")
    no_save: bool = option(False, "do not write annotated images or videos")
    imgsz: int | None = _image_size(None, "image size (default: the checkpoint's training size)")
    batch: int = option(1, "frames per forward pass", check=at_least(1))
    device: str | None = option(None, DEVICE_HELP)
    project: str = option("runs/predict", "parent folder of the run")
    name: str = option("exp", "run name; exp, exp2, ... are never overwritten")


@dataclass(frozen=True)
class ExportOptions(Options):
    """``yolorep export``: the fused model as ONNX, TorchScript, OpenVINO, NCNN, TFLite, CoreML or TensorRT (fp32,
    fp16 or INT8), checked."""

    command = "export"

    weights: Any = option(help="checkpoint to export (.pt)", convert=read_model)
    format: str = option("onnx", "file format: onnx, torchscript, openvino, ncnn, tflite, coreml or tensorrt")
    imgsz: int | None = _image_size(None, "input size (default: the checkpoint's training size)")
    batch: int = option(1, "batch size of the exported input", check=at_least(1))
    dynamic: bool = option(False, "dynamic batch and image size axes")
    half: bool = option(False, "fp16 weights (onnx, torchscript, tensorrt: --device cuda; ncnn, tflite, coreml: any)")
    opset: int = option(17, "ONNX opset version", check=at_least(1))
    int8: bool = option(False, "INT8 post-training quantization (onnx, openvino, tflite, tensorrt); needs --data")
    data: str | None = option(None, "dataset YAML whose train split calibrates --int8")
    calib: int = option(64, "calibration images for --int8", check=at_least(1))
    device: str | None = option("cpu", DEVICE_HELP)
