"""Bad inputs and environment faults, one row per case of issue 11: each gives one clear line and exit code 2 (or a
counted skip), before any run folder is made, leaves no file that looks complete but is not, and loses no file.
The rows of issue 23 are in tests/engine/test_faults_run.py and tests/datasets/test_faults_data.py."""

from __future__ import annotations

import errno
import json
import logging
import os
import resource
import subprocess
import sys
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch
from faults import TRAIN, Ctx, assert_one_line
from faults import with_field as _field

import yolorep
from yolorep.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")


def _fused(ctx: Ctx) -> Path:
    return yolorep.save(yolorep.load(ctx.best).fuse(), ctx.tmp / "fused.pt")


def _huge_width(ctx: Ctx) -> Path:
    path = ctx.tmp / "huge.yaml"
    path.write_text("nc: 2\nscales:\n  x: [1.0, 100000.0, 100000000]\nbackbone:\n  - [-1, 1, Conv, [64, 3, 2]]\n"
                    "  - [-1, 1, RepVGGBlock, [128, 3, 2]]\nhead:\n  - [[0, 1], 1, Detect, [nc]]\n")  # fmt: skip
    return path


def _yaml_with(ctx: Ctx, row: str) -> Path:
    path = ctx.tmp / "row.yaml"
    path.write_text(f"nc: 2\nbackbone:\n  - [-1, 1, Conv, [16, 3, 2]]\n{row}\nhead:\n  - [[0, 1], 1, Detect, [nc]]\n")
    return path


def _garbage(ctx: Ctx, content: bytes) -> Path:
    path = ctx.tmp / "garbage.pt"
    path.write_bytes(content)
    return path


def _fused_last(ctx: Ctx) -> Path:
    raw = torch.load(ctx.last, weights_only=True)
    fused = yolorep.load(ctx.best).fuse()
    raw.update(fused=True, state_dict=fused.state_dict())
    path = ctx.tmp / "run" / "weights" / "last.pt"
    path.parent.mkdir(parents=True)
    torch.save(raw, path)
    return path


def _no_source(ctx: Ctx) -> Path:
    listing = ctx.tmp / "list.txt"
    (ctx.tmp / "truncated.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(40))
    listing.write_text(f"{ctx.tmp / 'missing.jpg'}\n{ctx.best}\n{ctx.tmp / 'truncated.mp4'}\n")
    return listing


RANDOM_BYTES = np.random.default_rng(0).bytes(2000)
# (case, argv from the context, exit code, message fragment); the run folder must stay absent on exit code 2
CASES: list[tuple[str, Callable[[Ctx], list[str]], int, str]] = [
    (
        "3 duplicate image ids",
        lambda c: [
            "val",
            "--weights",
            str(c.best),
            "--data",
            str(c.edit_val_json(lambda d: d["images"][1].update(id=d["images"][0]["id"]))),
        ],
        2,
        "share id",
    ),  # fmt: skip
    (
        "3 string image id",
        lambda c: [
            "val",
            "--weights",
            str(c.best),
            "--data",
            str(c.edit_val_json(lambda d: d["images"][0].update(id="img-1"))),
        ],
        2,
        "'img-1' is not an integer; COCO image ids must be integers",
    ),  # fmt: skip
    ("7 export opset 5", lambda c: ["export", "--weights", str(c.best), "--opset", "5"], 2, "--opset 5: this model"),
    ("8 train imgsz 100", lambda c: [*TRAIN, "--data", str(c.data), "--imgsz", "100"], 2, "use 96 or 128"),
    ("8 info imgsz 100", lambda c: ["info", "yolorep-n.yaml", "--imgsz", "100"], 2, "--imgsz 100: must be a positive"),
    ("8 train imgsz -64", lambda c: [*TRAIN, "--data", str(c.data), "--imgsz", "-64"], 2, "--imgsz -64"),
    ("8 train workers -1", lambda c: [*TRAIN, "--data", str(c.data), "--workers", "-1"], 2, "--workers -1: must be"),
    ("8 val batch 0", lambda c: ["val", "--weights", str(c.best), "--batch", "0"], 2, "--batch 0: must be"),
    ("8 val batch -2", lambda c: ["val", "--weights", str(c.best), "--batch", "-2"], 2, "--batch -2: must be"),
    ("8 val conf 2", lambda c: ["val", "--weights", str(c.best), "--conf", "2"], 2, "--conf 2.0: out of range"),
    ("8 val iou 2", lambda c: ["val", "--weights", str(c.best), "--iou", "2"], 2, "--iou 2.0: out of range"),
    ("8 petabyte width", lambda c: ["info", str(_huge_width(c))], 2, "more than this machine's"),
    ("9 random bytes", lambda c: ["val", "--weights", str(_garbage(c, RANDOM_BYTES))], 2, "not a readable"),
    ("9 hello world", lambda c: ["val", "--weights", str(_garbage(c, b"hello world"))], 2, "garbage.pt: not a"),
    (
        "9 string format_version",
        lambda c: ["val", "--weights", str(_field(c, "format_version", "1"))],
        2,
        "'format_version' should be an integer",
    ),  # fmt: skip
    ("9 integer names", lambda c: ["val", "--weights", str(_field(c, "names", 3))], 2, "'names' should be a list"),
    ("9 fused last.pt resumed", lambda c: [*TRAIN, "--resume", str(_fused_last(c))], 2, "holds a fused model"),
    ("10 epochs 0", lambda c: [*TRAIN, "--data", str(c.data), "--epochs", "0"], 2, "--epochs 0: must be"),
    ("10 epochs -1", lambda c: [*TRAIN, "--data", str(c.data), "--epochs", "-1"], 2, "--epochs -1: must be"),
    ("10 batch 0", lambda c: [*TRAIN, "--data", str(c.data), "--batch", "0"], 2, "--batch 0: must be"),
    ("10 max-det 0", lambda c: ["val", "--weights", str(c.best), "--max-det", "0"], 2, "--max-det 0: must be"),
    ("10 device foo", lambda c: [*TRAIN, "--data", str(c.data), "--device", "foo"], 2, "--device foo: not a device"),
    (
        "10 YAML abc",
        lambda c: ["info", str(_yaml_with(c, "  - [-1, 1, Conv, [abc, 3, 2]]"))],
        2,
        "row.yaml:4: backbone[1] Conv: out_channels='abc' must be an integer",
    ),  # fmt: skip
    (
        "10 YAML 0 channels",
        lambda c: ["info", str(_yaml_with(c, "  - [-1, 1, Conv, [0, 3, 2]]"))],
        2,
        "out_channels=0 must be at least 1",
    ),  # fmt: skip
    (
        "12 fused weights",
        lambda c: [*TRAIN, "--data", str(c.data), "--weights", str(_fused(c))],
        2,
        "holds a fused model (BatchNorm folded into its convolutions), which cannot seed",
    ),  # fmt: skip
    (
        "13 resume with other epochs",
        lambda c: [*TRAIN, "--resume", str(c.last), "--epochs", "5"],
        2,
        "--epochs 5 (the run has 2) was given; only --data, --device, --workers, --cache, --plots, --loggers may "
        "change",
    ),  # fmt: skip
    (
        "16 nothing readable",
        lambda c: [
            "predict",
            "--weights",
            str(c.best),
            "--source",
            str(_no_source(c)),
            "--project",
            str(c.tmp / "runs"),
        ],
        2,
        "no image or video frame could be read (3 unreadable",
    ),  # fmt: skip
]


@pytest.mark.parametrize(("case", "argv", "code", "message"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_gives_one_line_and_exit_code(ctx, caplog, monkeypatch, case, argv, code, message):
    assert_one_line(ctx, caplog, monkeypatch, argv, code, message)


def test_disk_full_while_training_is_one_line_and_leaves_no_partial_checkpoint(ctx):
    """A real write failure: the process may not write files over 4 MB, and a checkpoint is about 12 MB."""

    def limit_file_size():
        resource.setrlimit(resource.RLIMIT_FSIZE, (4 << 20, resource.RLIM_INFINITY))

    argv = [*TRAIN, "--data", str(ctx.data), "--epochs", "1", "--project", str(ctx.tmp / "runs"), "hsv_h=0.0"]
    run = subprocess.run([sys.executable, "-m", "yolorep", *argv], cwd=ctx.tmp, capture_output=True, text=True,
                         preexec_fn=limit_file_size, timeout=300)  # fmt: skip
    output = run.stdout + run.stderr
    assert run.returncode == 2 and "Traceback" not in output, output
    weights = ctx.tmp / "runs" / "exp" / "weights"
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(f"error: {weights}/"), output
    assert errors[0].endswith("file too large; free some space or write elsewhere (--project)"), errors
    assert not list(weights.glob("*")), "a partial checkpoint or temporary was left"


def test_read_only_project_is_one_line(ctx, monkeypatch, caplog):
    original = Path.mkdir

    def read_only(self, *args, **kwargs):
        if "readonly" in str(self):
            raise OSError(errno.EROFS, "Read-only file system", str(self))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", read_only)
    with caplog.at_level(logging.ERROR, logger="yolorep"):
        code = main(["predict", "--weights", str(ctx.best), "--source", str(ctx.val_json.parent.parent / "images" /
                     "val"), "--no-save", "--save-txt", "--project", str(ctx.tmp / "readonly")])  # fmt: skip
    assert (
        code == 2 and "readonly: cannot write here (Read-only file system); choose a writable --project" in caplog.text
    )


def _val(ctx: Ctx, name: str, **kwargs) -> dict:
    from yolorep.engine.val.validator import val

    return val(weights=ctx.best, data=ctx.data, batch=4, workers=0, project=ctx.tmp / "val", name=name, **kwargs)


def test_bad_ground_truth_is_dropped_counted_and_not_scored(ctx):
    """Cases 2 and 6: pycocotools scores exactly the ground truth the loader kept (a NaN box once counted as a
    match), and annotations without a usable bbox are skipped before evaluation, not crashed on after it."""
    clean = _val(ctx, "clean")

    def corrupt(data: dict) -> None:
        image_id = data["images"][0]["id"]
        base = {"image_id": image_id, "category_id": data["categories"][0]["id"], "iscrowd": 0, "area": 100.0}
        data["annotations"] += [
            {**base, "id": 9001, "bbox": [float("nan"), 5.0, 10.0, 10.0]},
            {**base, "id": 9002},  # no bbox
            {**base, "id": 9003, "bbox": [1.0, 2.0, 3.0]},
        ]

    ctx.edit_val_json(corrupt)
    dirty = _val(ctx, "dirty")
    assert dirty["map50_95"] == clean["map50_95"] and dirty["map50"] == clean["map50"]
    assert dirty["ground_truth"]["dropped_bad_labels"] == 3 and clean["ground_truth"]["dropped_bad_labels"] == 0
    assert dirty["ground_truth"]["boxes"] == clean["ground_truth"]["boxes"]
    stored = json.loads((ctx.tmp / "val" / "dirty" / "metrics.json").read_text())
    assert stored["ground_truth"] == dirty["ground_truth"]


def test_empty_ground_truth_warns_and_reports_zero(ctx, caplog):
    """Case 11."""
    ctx.edit_val_json(lambda d: d.update(annotations=[]))
    with caplog.at_level(logging.WARNING):
        metrics = _val(ctx, "empty")
    assert metrics["map50_95"] == 0.0 and metrics["map50"] == 0.0 and metrics["ground_truth"]["boxes"] == 0
    assert "has no ground-truth boxes, so mAP is undefined; it is reported as 0" in caplog.text


def test_truncated_and_rotated_images(ctx, caplog):
    """Cases 4 and 5: a truncated JPEG is skipped and counted; an EXIF-rotated one is counted, used as stored,
    and drawn as stored beside its boxes."""
    from PIL import Image

    from yolorep.datasets.records import load_records
    from yolorep.datasets.spec import load_data_spec

    images = ctx.val_json.parent.parent / "images" / "val"
    files = sorted(images.glob("*.jpg"))
    files[0].write_bytes(files[0].read_bytes()[:-400])  # cut the end: PIL still reads the header
    with Image.open(files[1]) as image:
        exif = image.getexif()
        exif[0x0112] = 6  # rotate 90 degrees when displayed
        image.save(files[1], exif=exif, quality=95)
    with caplog.at_level(logging.WARNING):
        loaded = load_records(load_data_spec(ctx.data), "val")
    assert loaded.stats["skipped_images"] == 1 and loaded.stats["exif_rotated"] == 1
    assert "truncated JPEG" in caplog.text and "carry an EXIF rotation" in caplog.text
    with Image.open(files[1]) as image:
        w, h = image.size
    rotated = next(r for r in loaded.records if r.path == files[1])
    assert rotated.shape == (h, w)  # the stored pixels, not the displayed orientation
    metrics = _val(ctx, "exif")
    assert metrics["ground_truth"]["skipped_images"] == 1
    from yolorep.engine.predict.sources import read_image

    assert read_image(files[0]) is None and read_image(files[1]) is not None  # predict skips it as unreadable
    import cv2

    plotted = [cv2.imread(str(p)) for p in (ctx.tmp / "val" / "exif").glob("val_image*_labels_vs_pred.jpg")]
    from yolorep.plots import caption_height

    assert any(image.shape[:2] == (h + caption_height(w), 2 * w + 8) for image in plotted)


def test_failed_start_leaves_no_run_folder_and_abandoned_temporaries_are_removed(ctx, monkeypatch):
    """Case 14: a start that fails on its input makes no folder; temporaries of dead writers are removed."""
    from yolorep.datasets.synthetic import generate_shapes

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    partial = ctx.tmp / f".gen.partial-{dead.stdout.strip()}-abcdef12"
    partial.mkdir()
    (partial / "half.jpg").write_bytes(b"x")
    live = ctx.tmp / f".gen.partial-{os.getpid()}-abcdef12"  # a generation in progress (this process)
    live.mkdir()
    generate_shapes(ctx.tmp / "gen", n_train=2, n_val=1, imgsz=64)
    assert not partial.exists() and live.exists() and (ctx.tmp / "gen" / "annotations").is_dir()
    monkeypatch.chdir(ctx.tmp)
    assert main([*TRAIN, "--data", str(ctx.tmp / "nope.yaml"), "--project", str(ctx.tmp / "runs")]) == 2
    assert not (ctx.tmp / "runs").exists()


def test_few_transferred_tensors_warn(tmp_path, caplog):
    """Case 12: weights of another architecture seed little of the model, and the user is told."""
    from yolorep.engine.train.build import _transfer_weights

    other = yolorep.save(yolorep.build_model("yolorep-s.yaml", nc=6), tmp_path / "s.pt")
    model = yolorep.build_model("yolorep-n.yaml", nc=6)
    with caplog.at_level(logging.WARNING):
        _transfer_weights(model, other)
    assert f"--weights {other}: only" in caplog.text and "most of the model starts from random weights" in caplog.text
