"""The options of ``yolorep demo``, ``info``, ``convert`` and ``check-data``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from yolorep.options.fields import Options, at_least, between, greater_than, option
from yolorep.options.inference import read_model
from yolorep.options.train import MAX_IMGSZ

__all__ = ["CheckDataOptions", "ConvertOptions", "DemoOptions", "ImportOptions", "InfoOptions"]


@dataclass(frozen=True)
class DemoOptions(Options):
    """``yolorep demo``: the whole story on bundled synthetic data."""

    command = "demo"

    time: float | None = option(None, "minutes for the whole demo (default 9)", check=greater_than(0, 600_000))
    epochs: int | None = option(None, "train this many epochs instead of fitting them to --time", check=at_least(1))
    imgsz: int | None = option(None, "image size (default: 256 on a CPU, 320 on a GPU)", check=between(1, MAX_IMGSZ))
    device: str | None = option(None, "cpu, cuda, 0, 0,1 ... (default: the first GPU if any, else cpu)")
    project: str = option("runs/demo", "parent folder of the run")
    data: str | None = option(None, "dataset YAML (default: the bundled shapes set)", cli=False)
    batch: int | None = option(None, "images per batch (default: 8 on a CPU, 32 on a GPU)", cli=False)
    workers: int | None = option(None, "data loader worker processes", check=at_least(0), cli=False)
    speed_iters: int | None = option(
        None, "timed calls per model of the fused/unfused speed check", check=at_least(1), cli=False
    )


@dataclass(frozen=True)
class InfoOptions(Options):
    """``yolorep info``: layers, parameters and GFLOPs before and after the fuse."""

    command = "info"

    model: Any = option(help="model YAML or .pt checkpoint", flag="", convert=read_model)
    imgsz: int = option(640, "image size the GFLOPs are counted at", check=between(1, MAX_IMGSZ))


@dataclass(frozen=True)
class ConvertOptions(Options):
    """``yolorep convert``: a data set read with one layout and written with another. The layouts are those of
    ``yolorep.datasets.layouts`` (which the options layer does not import: ``convert`` checks the names)."""

    command = "convert"

    from_format: str = option(help="layout of SRC (one yolorep reads)", flag="--from", metavar="LAYOUT")
    to_format: str = option(help="layout to write (one yolorep writes)", flag="--to", metavar="LAYOUT")
    src: str = option(help="data YAML, or a data set folder (holding data.yaml, or in VOC layout)", flag="")
    dst: str = option(help="new folder to write (with its data.yaml)", flag="")


@dataclass(frozen=True)
class ImportOptions(Options):
    """``yolorep import``: a YOLOv6 or ultralytics checkpoint read without running it, written as yolorep's."""

    command = "import"

    src: str = option(help="YOLOv6 v3.0 (N/S/M/L), YOLOv8 or YOLO11 detection checkpoint", flag="")
    out: str | None = option(None, "where to write it (default: SRC's stem + -yolorep.pt, beside it)")


@dataclass(frozen=True)
class CheckDataOptions(Options):
    """``yolorep check-data``: what a data set holds and what is wrong with it, without training."""

    command = "check-data"

    data: str = option(help="dataset YAML (or a built-in name: shapes.yaml)", flag="")
    imgsz: int = option(
        640, "training image size; boxes under 2 px a side at this size count as tiny", check=between(1, MAX_IMGSZ)
    )
    near_duplicates: bool = option(
        False, "also find near-duplicate images (re-encoded, resized) by a perceptual hash; decodes every image"
    )
    project: str = option("runs/check-data", "parent folder of the report")
    name: str = option("exp", "run name; exp, exp2, ... are never overwritten")
