"""docs/MIGRATING.md is true of the code: every yolorep flag, Python name and run-folder file it names exists.

Its tables have three columns (ultralytics, yolorep, how they differ); only the yolorep column is checked here.
Commands written out in full (``yolorep train --epochs ...``) are checked by tests/test_cli.py with the other docs.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import re
from pathlib import Path

import numpy as np
import pytest

from yolorep.cli import build_parser

DOC = Path(__file__).parents[1] / "docs" / "MIGRATING.md"


def _tables() -> list[tuple[str, str, list[str]]]:
    """(section heading, sub-heading, yolorep cells) of every table, headings without their '#'."""
    found, section, sub = [], "", ""
    for line in DOC.read_text().splitlines():
        if line.startswith("## "):
            section, sub = line[3:].strip(), ""
        elif line.startswith("### "):
            sub = line[4:].strip()
        elif line.startswith("| ") and not line.startswith("| ---"):
            cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
            if cells[0] != "ultralytics" and cells[0] != "ultralytics (default)":
                found.append((section, sub, cells[1]))
    return found


def _spans(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


def test_the_document_has_the_expected_tables():
    sections = {(section, sub) for section, sub, _ in _tables()}
    for expected in [("Commands", ""), ("Arguments", "yolorep train"), ("Arguments", "yolorep predict"),
                     ("Python API", ""), ("Python API", "Results and Boxes"), ("Python API", "Metrics"),
                     ("Run folders", ""), ("Data sets", "")]:  # fmt: skip
        assert expected in sections, expected


def test_every_flag_exists_for_its_command():
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    checked = 0
    for section, sub, cell in _tables():
        if section != "Arguments":
            continue
        command = sub.removeprefix("yolorep ")
        flags = {s for a in commands[command]._actions for s in a.option_strings}
        for flag in re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", cell):
            assert flag in flags, f"MIGRATING.md, {sub}: {flag} is not a flag of yolorep {command}"
            checked += 1
    assert checked > 60


@pytest.fixture(scope="module")
def objects(trained_tiny):
    """The objects the Python names refer to: a YOLO model, a prediction's Results, a validation's metrics."""
    from yolorep.api import YOLO, Metrics

    model = YOLO(str(trained_tiny / "weights" / "best.pt"), verbose=False)
    image = np.random.default_rng(0).integers(0, 255, (64, 80, 3), dtype=np.uint8)
    result = model.predict(image, imgsz=64, conf=0.0)[0]
    figures = json.loads((trained_tiny / "metrics.json").read_text())
    return {"model": model, "r": result, "metrics": Metrics(dict(figures, save_dir=str(trained_tiny)))}


def test_every_python_name_exists(objects):
    checked = 0
    for section, sub, cell in _tables():
        if section != "Python API":
            continue
        for span in _spans(cell):
            chain = re.match(r"(model|r|metrics)((?:\.\w+)+)", span)
            if chain is None:
                continue
            value = objects[chain.group(1)]
            for name in chain.group(2).strip(".").split("."):
                assert hasattr(value, name), f"MIGRATING.md, {sub or section}: {span}: no {name!r} on {value!r}"
                value = getattr(value, name)
            checked += 1
    assert checked > 60


def test_every_training_file_is_written(trained_tiny):
    """The run-folder files the table names for a training run are in one (predict and export rows aside)."""
    checked = 0
    for section, _, cell in _tables():
        if section != "Run folders" or "runs/predict" in cell or "best.onnx" in cell:
            continue
        for span in _spans(cell):
            if re.fullmatch(r"(weights/)?[\w.-]+\.(pt|yaml|csv|png|jpg|json)", span):
                assert (trained_tiny / span).is_file(), f"MIGRATING.md: {span} is not written by training"
                checked += 1
    assert checked >= 15
    # the results.csv columns the row lists
    header = (trained_tiny / "results.csv").read_text().splitlines()[0].split(",")
    line = next(line for line in DOC.read_text().splitlines() if line.startswith("| `results.csv` | `results.csv`"))
    columns = _spans(line.split(" | ")[2])
    missing = [c for c in columns if not fnmatch.filter(header, c)]  # `lr/pg*` stands for each parameter group's
    assert len(columns) >= 10 and not missing, missing
