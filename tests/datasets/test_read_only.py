"""A data set on a read-only file system works (issue 23, case 10): train, val, convert and export --int8 read it,
and the label cache is in the user cache folder (where it always goes since issue 26)."""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from helpers import TINY_HYP
from read_only import read_only

from yolorep.cli import main
from yolorep.datasets.records import load_records
from yolorep.datasets.spec import load_data_spec

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def data(tiny_shapes_yaml, tmp_path, monkeypatch) -> Path:
    """A copy of the tiny shapes set without label caches, and an empty user cache folder."""
    root = tmp_path / "ro"
    load_data_spec(tiny_shapes_yaml)  # generates the set
    shutil.copytree(tiny_shapes_yaml.parent / "shapes", root / "shapes")
    for cache in root.rglob("*.cache.npz"):
        cache.unlink()
    yaml_path = root / "data.yaml"
    jsons = "train_json: annotations/instances_train.json\nval_json: annotations/instances_val.json\n"
    yaml_path.write_text("path: shapes\ntrain: images/train\nval: images/val\n" + jsons)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "user_cache"))
    return yaml_path


def test_the_label_cache_is_in_the_user_cache_folder(data, tmp_path, monkeypatch):
    with read_only(data.parent, monkeypatch) as refused:
        first = load_records(load_data_spec(data), "val")
        second = load_records(load_data_spec(data), "val")
    assert not refused, "the loader tried to write beside the data"
    assert not first.from_cache and second.from_cache
    assert first.cache_path == second.cache_path and (tmp_path / "user_cache" / "yolorep" / "labels") in (
        first.cache_path.parents
    )
    assert [r.path for r in first.records] == [r.path for r in second.records]
    assert not list(data.parent.rglob("*.cache.npz")) and not list(data.parent.rglob("*.tmp"))


def test_an_unwritable_user_cache_is_a_warning_not_a_refusal(data, tmp_path, monkeypatch, caplog):
    with read_only(tmp_path, monkeypatch), caplog.at_level(logging.WARNING):
        loaded = load_records(load_data_spec(data), "train")
    assert loaded.records and not loaded.from_cache
    assert "cannot write the label cache of" in caplog.text and "(Read-only file system)" in caplog.text
    assert "set XDG_CACHE_HOME to a writable folder" in caplog.text


def test_train_val_convert_and_int8_export_on_a_read_only_data_set(data, trained_tiny, tmp_path, monkeypatch, caplog):
    best = tmp_path / "best.pt"
    shutil.copy(trained_tiny / "weights" / "best.pt", best)
    hyp = " ".join(f"{k}={v}" for k, v in TINY_HYP.items())
    int8 = "--format onnx --int8 --imgsz 64 --calib 4 --device cpu"
    commands = {  # one line each (tmp_path holds no space)
        "train": f"train --data {data} --epochs 1 --imgsz 64 --batch 4 --device cpu --workers 0 "
        f"--project {tmp_path / 'runs'} {hyp}",
        "val": f"val --weights {best} --data {data} --batch 4 --workers 0 --device cpu --project {tmp_path / 'val'}",
        "convert": f"convert --from coco --to yolo {data} {tmp_path / 'converted'}",
        "export --int8": f"export --weights {best} --data {data} {int8}",
    }
    with read_only(data.parent, monkeypatch):
        for command, argv in commands.items():
            with caplog.at_level(logging.ERROR, logger="yolorep"):
                assert main(argv.split()) == 0, (command, caplog.text)
    assert (tmp_path / "converted" / "data.yaml").is_file() and list(tmp_path.glob("best*int8*.onnx"))
    assert not list(data.parent.rglob("*.cache.npz"))


def _can_mount_read_only() -> bool:
    """unshare can give this process a private mount namespace in which a bind mount is read-only."""
    if not sys.platform.startswith("linux") or shutil.which("unshare") is None:
        return False
    with tempfile.TemporaryDirectory() as folder:
        probe = f"mount --bind -o ro {folder} {folder} && ! touch {folder}/x 2>/dev/null"
        return subprocess.run(["unshare", "-rm", "sh", "-c", probe], capture_output=True).returncode == 0


@pytest.mark.skipif(not _can_mount_read_only(), reason="needs unshare and a read-only bind mount (Linux)")
def test_a_real_read_only_mount(data, tmp_path):
    """The same with the kernel's EROFS: the data set's folder bind-mounted read-only in a private mount
    namespace."""
    command = (f"mount --bind -o ro {data.parent} {data.parent} && {sys.executable} -m yolorep convert --from coco "
               f"--to yolo {data} {tmp_path / 'converted'}")  # fmt: skip
    done = subprocess.run(["unshare", "-rm", "sh", "-c", command], capture_output=True, text=True, timeout=300)
    output = done.stdout + done.stderr
    assert done.returncode == 0 and "Traceback" not in output, output
    assert list((tmp_path / "user_cache" / "yolorep" / "labels").glob("*.cache.npz"))
    assert not list(data.parent.rglob("*.cache.npz"))
    assert len(list((tmp_path / "converted" / "labels" / "train").glob("*.txt"))) == 12
