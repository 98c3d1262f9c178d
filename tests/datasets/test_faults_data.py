"""Issue 23 at the data end: nothing written outside its folder, nothing lost, nothing silently skipped or
misread (COCO file names, categories, a killed convert, linked folders, BOMs, 32-bit TIFFs)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from faults import TRAIN, assert_one_line, renamed_class
from PIL import Image

from yolorep.cli import main
from yolorep.datasets.images import check_image
from yolorep.datasets.records import load_records
from yolorep.datasets.spec import load_data_spec

pytestmark = pytest.mark.usefixtures("one_thread")

CASES = [
    ("6 COCO duplicate category id", lambda c: ["val", "--weights", str(c.best), "--data", str(c.edit_val_json(
        lambda d: d["categories"][1].update(id=d["categories"][0]["id"])))], 2,
     "categories[1] ('rectangle') has id 1, as an earlier category ('circle'); category ids must be unique"),
    ("6 train and val categories differ", lambda c: [*TRAIN, "--data", str(renamed_class(c))], 2,
     "categories differ from those of"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "argv", "code", "message"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_gives_one_line_and_exit_code(ctx, caplog, monkeypatch, case, argv, code, message):
    assert_one_line(ctx, caplog, monkeypatch, argv, code, message)


def _snapshot(folder: Path, leave_out: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in folder.rglob("*") if p.is_file() and leave_out not in p.parents}


@pytest.mark.parametrize("to", ["coco", "yolo"])
def test_convert_never_writes_outside_its_destination(ctx, caplog, to):
    """Case 1: a file_name climbing out of the image folder, or absolute, named an existing file outside the
    destination, which convert overwrote with image bytes."""
    precious = ctx.tmp / "precious.txt"
    precious.write_text("the user's file")
    escapes = ["../" * 12 + str(precious).lstrip("/"), str(precious), "sub/../../../precious.txt"]

    def escape(data: dict) -> None:
        for entry, name in zip(data["images"], escapes):
            entry["file_name"] = name

    ctx.edit_val_json(escape)
    before = _snapshot(ctx.tmp, ctx.tmp / "out")
    with caplog.at_level(logging.WARNING):
        assert main(["convert", "--from", "coco", "--to", to, str(ctx.data), str(ctx.tmp / "out" / "a" / "b")]) == 0
    after = _snapshot(ctx.tmp, ctx.tmp / "out")
    assert set(after) == set(before) and all(after[p] == content for p, content in before.items())
    assert caplog.text.count("is not a path inside the image folder") == 3
    assert len(list((ctx.tmp / "out" / "a" / "b" / "images" / "val").iterdir())) == 6 - 3


def test_an_absolute_file_name_is_skipped_and_counted_by_the_loader(ctx):
    """Case 1: the label cache raised a traceback on it (a path outside the image folder)."""
    images = ctx.val_json.parent.parent / "images" / "val"
    ctx.edit_val_json(lambda d: d["images"][0].update(file_name=str(images / d["images"][0]["file_name"])))
    loaded = load_records(load_data_spec(ctx.data), "val")
    assert loaded.stats["skipped_images"] == 1 and len(loaded.records) == 5
    again = load_records(load_data_spec(ctx.data), "val")
    assert again.from_cache and [r.path for r in again.records] == [r.path for r in loaded.records]


KILL_ON_THIRD_COPY = """
import os, shutil, signal, sys
from yolorep.cli import main
copy, calls = shutil.copy2, []
def copy_then_die(*args, **kwargs):
    calls.append(1)
    if len(calls) == 3:
        os.kill(os.getpid(), signal.SIGKILL)
    return copy(*args, **kwargs)
shutil.copy2 = copy_then_die
main(sys.argv[1:])
"""


def test_a_killed_convert_leaves_nothing_the_next_one_does_not_remove(ctx):
    """Case 12: SIGKILL in the middle of a convert left a hidden partial folder that nothing cleaned up."""
    out = ctx.tmp / "out"
    argv = ["convert", "--from", "coco", "--to", "yolo", str(ctx.data)]
    killed = subprocess.run([sys.executable, "-c", KILL_ON_THIRD_COPY, *argv, str(out / "first")], timeout=300)
    assert killed.returncode == -9 and not (out / "first").exists()
    assert [p.name for p in out.iterdir() if p.name.startswith(".first.")], "the kill left no partial folder"
    assert main([*argv, str(out / "first")]) == 0  # the same command again
    assert sorted(p.name for p in out.iterdir()) == ["first"]


def _yolo_set(root: Path, names: list[str]) -> Path:
    for split in ("train", "val"):
        (root / "images" / split).mkdir(parents=True)
        (root / "labels" / split).mkdir(parents=True)
    path = root / "data.yaml"
    path.write_text(json.dumps({"path": ".", "train": "images/train", "val": "images/val", "names": names}))
    return path


def _image(path: Path, h: int = 40, w: int = 50) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((h, w, 3), 90, np.uint8))


@pytest.mark.skipif(os.name == "nt", reason="symbolic links need privileges on Windows")
def test_images_in_linked_folders_are_loaded_once(tmp_path):
    """Case 9: images in a symlinked subfolder were skipped without a count; a link cycle must still end."""
    yaml_path = _yolo_set(tmp_path / "set", ["a"])
    elsewhere = tmp_path / "elsewhere"
    for i in range(3):
        _image(elsewhere / "images" / f"{i}.jpg")
        (elsewhere / "labels").mkdir(exist_ok=True)
        (elsewhere / "labels" / f"{i}.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    for split in ("train", "val"):
        _image(tmp_path / "set" / "images" / split / "own.jpg")
        (tmp_path / "set" / "images" / split / "linked").symlink_to(elsewhere / "images", target_is_directory=True)
        (tmp_path / "set" / "labels" / split / "linked").symlink_to(elsewhere / "labels", target_is_directory=True)
    (elsewhere / "images" / "loop").symlink_to(elsewhere / "images", target_is_directory=True)
    loaded = load_records(load_data_spec(yaml_path), "train")
    assert sorted(r.path.relative_to(tmp_path / "set" / "images" / "train").as_posix() for r in loaded.records) == [
        "linked/0.jpg", "linked/1.jpg", "linked/2.jpg", "own.jpg"]  # fmt: skip
    assert sum(len(r.classes) for r in loaded.records) == 3


def test_a_label_file_starting_with_a_bom_keeps_its_first_row(tmp_path):
    """Case 9: the BOM made the first row unreadable, and it was dropped."""
    yaml_path = _yolo_set(tmp_path / "set", ["a", "b"])
    for split in ("train", "val"):
        _image(tmp_path / "set" / "images" / split / "x.jpg")
        label = "\ufeff0 0.5 0.5 0.2 0.2\r\n1 0.25 0.25 0.1 0.1\r\n"
        (tmp_path / "set" / "labels" / split / "x.txt").write_bytes(label.encode("utf-8"))
    (record,) = load_records(load_data_spec(yaml_path), "train").records
    assert record.classes.tolist() == [0, 1]


def test_a_32_bit_float_tiff_is_skipped_when_loading_not_mid_epoch(tmp_path, caplog):
    """Case 11: PIL reads its header, OpenCV cannot decode it: training aborted mid-epoch."""
    yaml_path = _yolo_set(tmp_path / "set", ["a"])
    for split in ("train", "val"):
        _image(tmp_path / "set" / "images" / split / "ok.jpg")
        pixels = np.random.default_rng(0).random((40, 50), dtype=np.float32)
        Image.fromarray(pixels, mode="F").save(tmp_path / "set" / "images" / split / "float.tif")
    assert check_image(tmp_path / "set" / "images" / "train" / "float.tif").shape is None
    with caplog.at_level(logging.WARNING):
        loaded = load_records(load_data_spec(yaml_path), "train")
    assert [r.path.name for r in loaded.records] == ["ok.jpg"] and loaded.stats["skipped_images"] == 1
    assert "32-bit samples (PIL mode F)" in caplog.text
