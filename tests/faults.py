"""What the fault tests share: a writable copy of the tiny shapes set beside a trained run, and the contract a bad
input must meet (one clear line, its exit code, no run folder, no half-written file, no file lost)."""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from yolorep.cli import main

TRAIN = ["train", "--device", "cpu", "--workers", "0", "--imgsz", "64", "--batch", "4"]


@dataclass
class Ctx:
    tmp: Path
    data: Path  # a writable copy of the tiny shapes set (COCO layout)
    best: Path  # best.pt of a 2-epoch run (unfused)
    last: Path  # last.pt of that run

    @property
    def val_json(self) -> Path:
        return self.data.parent / "shapes" / "annotations" / "instances_val.json"

    def edit_val_json(self, edit: Callable[[dict], None]) -> Path:
        data = json.loads(self.val_json.read_text())
        edit(data)
        self.val_json.write_text(json.dumps(data))
        return self.data


def make_ctx(tiny_shapes_yaml: Path, trained_tiny: Path, tmp_path: Path) -> Ctx:
    """A copy of the tiny set under ``tmp_path`` (with its data YAML) beside the trained run (the ``ctx`` fixture)."""
    shutil.copytree(tiny_shapes_yaml.parent / "shapes", tmp_path / "shapes")
    data = tmp_path / "data.yaml"
    data.write_text("path: shapes\ntrain: images/train\nval: images/val\ntrain_json: annotations/instances_train.json\n"
                    "val_json: annotations/instances_val.json\n")  # fmt: skip
    return Ctx(tmp_path, data, trained_tiny / "weights" / "best.pt", trained_tiny / "weights" / "last.pt")


def assert_one_line(ctx: Ctx, caplog, monkeypatch, argv: Callable[[Ctx], list[str]], code: int, message: str) -> None:
    """``argv(ctx)`` (which may write the files of its case) run by the CLI exits with ``code`` and logs exactly one
    error line holding ``message``; no run folder or temporary is left, and every file that existed beforehand is
    still there, unchanged."""
    monkeypatch.chdir(ctx.tmp)
    before = set(ctx.tmp.rglob("*"))
    args = argv(ctx)
    files = {p: p.read_bytes() for p in ctx.tmp.rglob("*") if p.is_file() and "cache.npz" not in p.name}
    made = set(ctx.tmp.rglob("*")) - before  # files the case itself wrote
    with caplog.at_level(logging.ERROR, logger="yolorep"):
        assert main([*args, "--project", str(ctx.tmp / "runs")] if args[0] in ("train", "val") else args) == code
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and message in errors[0] and "\n" not in errors[0], errors
    assert not (ctx.tmp / "runs").exists() or not any((ctx.tmp / "runs").rglob("*")), "a run folder was left"
    assert not [p for p in set(ctx.tmp.rglob("*")) - before - made if p.suffix == ".tmp"]
    assert not [p for p, content in files.items() if not p.is_file() or p.read_bytes() != content], "a file was lost"


def with_field(ctx: Ctx, key: str, value: object) -> Path:
    """A copy of the run's ``best.pt`` with ``key`` set to ``value``."""
    raw = torch.load(ctx.best, weights_only=True)
    raw[key] = value
    path = ctx.tmp / f"field_{key}.pt"
    torch.save(raw, path)
    return path


def renamed_class(ctx: Ctx) -> Path:
    """The data set with its first class renamed in the val file (same count, same order otherwise)."""
    return ctx.edit_val_json(lambda d: d["categories"][0].update(name="renamed"))
