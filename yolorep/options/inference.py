"""The options of the commands that run a trained model: ``val``, ``predict`` and ``export``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from yolorep.errors import ArgumentError
from yolorep.options.fields import Options, at_least, between, fraction, one_of, option
from yolorep.options.train import MAX_IMGSZ

__all__ = [
    "PRECISIONS",
    "ExportOptions",
    "PredictOptions",
    "ValOptions",
    "read_classes",
    "read_model",
    "read_precision",
    "read_source",
]

SPLITS = ("train", "val", "test")  # test: only where the data YAML declares it (yolorep.datasets.spec)
DEVICE_HELP = "cpu, cuda, 0, 0,1 ... (default: the first GPU if any, else cpu)"
MODEL_IMGSZ_HELP = "image size (default: the size the model was trained or exported at)"
AUGMENT_HELP = "test-time augmentation: also run each image flipped and scaled by 0.83 and 0.67, NMS over all"
HALF_HELP = "the device's fast half precision: fp16 on CUDA, bf16 autocast on a CPU with AMX or AVX-512 BF16"
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


PRECISIONS = ("auto", "fp32", "bf16", "fp16", "int8")  # what export --precision takes (yolorep.engine.deploy.precision)
_PRECISION_ALIASES = {"f32": "fp32", "f16": "fp16"}  # OpenVINO's spelling


def read_precision(value: Any) -> str:
    """``auto``, ``fp32`` (or ``f32``), ``bf16``, ``fp16`` (or ``f16``), ``int8`` -> the canonical name."""
    name = str(value).strip().lower()
    name = _PRECISION_ALIASES.get(name, name)
    if name not in PRECISIONS:
        raise ValueError(f"expected one of {', '.join(PRECISIONS)} (f32 and f16 read as fp32 and fp16)")
    return name


def _image_size(default: int | None, help: str) -> Any:
    return option(default, help, check=between(1, MAX_IMGSZ))


@dataclass(frozen=True)
class ValOptions(Options):
    """``yolorep val``: score a checkpoint or an exported model with pycocotools."""

    command = "val"

    weights: Any = option(
        help="checkpoint or exported model to evaluate (.pt, .onnx, .torchscript, OpenVINO folder)", convert=read_model
    )
    data: str | None = option(None, "dataset YAML (default: the one the model was trained on)")
    split: str = option(
        "val", "which split to score: train, val, or test where the data YAML declares one", check=one_of(*SPLITS)
    )
    imgsz: int | None = _image_size(None, MODEL_IMGSZ_HELP)
    batch: int = option(32, "images per batch", check=at_least(1))
    device: str | None = option(None, DEVICE_HELP)
    conf: float | None = option(None, "confidence threshold (default: the model's, 0.001)", check=fraction)
    iou: float | None = option(None, "NMS IoU threshold (default: the model's, 0.7)", check=fraction)
    max_det: int | None = option(None, "detections per image (default: the model's, 300)", check=at_least(1))
    agnostic_nms: bool = option(False, "class-agnostic NMS")
    half: bool = option(False, HALF_HELP)
    workers: int | None = option(None, WORKERS_HELP, check=at_least(0))
    project: str = option("runs/val", "parent folder of the run")
    name: str = option("exp", "run name; exp, exp2, ... are never overwritten")
    protocol: str | None = option(
        None,
        "evaluate with the settings behind a project's published COCO numbers: yolov6 or ultralytics (flags given "
        "beside it still win)",
    )
    augment: bool = option(False, AUGMENT_HELP)
    plots: bool = option(
        True,
        "draw the PR and metric-confidence curves, the confusion matrix and sample images (metrics.json and "
        "predictions.json are written either way)",
    )


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
    half: bool = option(False, HALF_HELP)
    vid_stride: int = option(1, "use every n-th video frame", check=at_least(1))
    save_txt: bool = option(False, "write YOLO-format labels to labels/")
    save_json: bool = option(False, "write predictions.json, a COCO results file (with each row's file name)")
    no_save: bool = option(False, "do not write annotated images or videos (save=False)")
    imgsz: int | None = _image_size(None, MODEL_IMGSZ_HELP)
    batch: int = option(1, "frames per forward pass", check=at_least(1))
    device: str | None = option(None, DEVICE_HELP)
    project: str = option("runs/predict", "parent folder of the run")
    name: str = option("exp", "run name; exp, exp2, ... are never overwritten")
    # later additions stay after the fields that may be passed by position
    save: bool | None = option(
        None, "write annotated images and videos (default: true on the command line, false from Python)"
    )
    save_conf: bool = option(True, "end each --save-txt line with the score (false: plain YOLO labels)")
    save_crop: bool = option(False, "write each detection cut from its image to crops/<class>/")
    show: bool = option(False, "show each annotated image or frame in a window, where a display exists")
    line_width: int | None = option(None, "box line width in pixels (default: scaled to the image)", check=at_least(1))
    agnostic_nms: bool = option(False, "class-agnostic NMS")
    augment: bool = option(False, AUGMENT_HELP)
    verbose: bool = option(True, "log one line per image or frame: its detections and inference time", cli=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.save and self.no_save:
            raise ArgumentError("--save and --no-save: they contradict each other; pass one of them")

    def saves_media(self, by_default: bool) -> bool:
        """Whether annotated images and videos are written: ``save`` when given, else ``by_default`` unless
        ``no_save``."""
        return self.save if self.save is not None else by_default and not self.no_save


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
    precision: str = option(
        "auto",
        "fp32 (f32), bf16, fp16, int8, or auto: bf16 where the CPU has AMX or AVX-512 BF16 and the runtime computes it "
        "(openvino), else fp32; with --data, the fastest measured within 0.005 mAP50-95 of fp32, INT8 included",
        convert=read_precision,
        metavar="PRECISION",
    )
    half: bool = option(
        False,
        "--precision fp16: fp16 weights (onnx, torchscript, tensorrt: --device cuda; ncnn, tflite, coreml: any), "
        "OpenVINO fp16 on the CPU",
    )
    opset: int = option(17, "ONNX opset version", check=at_least(1))
    int8: bool = option(
        False, "--precision int8: post-training quantization (onnx, openvino, tflite, tensorrt); needs --data"
    )
    data: str | None = option(
        None, "dataset YAML: its train split calibrates INT8, its val split scores each precision for auto"
    )
    calib: int = option(64, "calibration images for --int8", check=at_least(1))
    device: str | None = option("cpu", DEVICE_HELP)
