"""The layout registry: every layout meets the contract, every writer's output is read back (and detected) as the
same boxes, a named layout is checked against the keys of the others, and no code asks which layout it holds.
Parametrised over the registry, so a new layout is tested without a new test."""

from __future__ import annotations

import ast
import dataclasses
import inspect
from pathlib import Path

import numpy as np
import pytest
from voc_files import coloured_voc_set, write_yaml

from yolorep.datasets.convert import convert
from yolorep.datasets.layouts.base import Evidence, Layout, YamlSource
from yolorep.datasets.layouts.registry import LAYOUTS, WRITERS, detect_layout
from yolorep.datasets.records import load_records
from yolorep.datasets.spec import SPLITS, load_data_spec
from yolorep.errors import DatasetError

PACKAGE = Path(__file__).parents[2] / "yolorep"


@pytest.mark.parametrize("name", list(LAYOUTS))
def test_each_layout_meets_the_contract(name, tmp_path):
    layout = LAYOUTS[name]
    assert layout.name == name and layout.title and issubclass(layout, Layout)
    assert dataclasses.is_dataclass(layout) and layout.__dataclass_params__.frozen  # a spec holds it: immutable
    assert not inspect.isabstract(layout), f"{name}: abstract methods left: {layout.__abstractmethods__}"
    for key in layout.own_keys:  # a key of its own is a key of no other layout
        assert all(key not in other.own_keys for other in LAYOUTS.values() if other is not layout)
    if layout.writes:
        assert layout.write_split.__func__ is not Layout.write_split.__func__
        assert set(layout.data_yaml(("a",))) >= {"path", *SPLITS}
    empty = YamlSource(tmp_path / "d.yaml", {"train": "images/train", "val": "images/val"}, tmp_path)
    assert isinstance(layout.detect(empty), Evidence)


def _boxes(spec_yaml: Path) -> dict[str, dict[str, list[tuple]]]:
    """``{split: {file name: sorted (class name, x0, y0, x1, y1)}}`` as yolorep loads the data set."""
    spec = load_data_spec(spec_yaml)
    found: dict[str, dict[str, list[tuple]]] = {}
    for split in SPLITS:
        rows = {}
        for r in load_records(spec, split, use_cache=False).records:
            named = [(spec.names[c], *np.round(b, 3).tolist()) for c, b in zip(r.classes.tolist(), r.boxes_xyxy)]
            rows[r.path.name] = sorted(named)
        found[split] = rows
    return found


@pytest.mark.parametrize("first", list(WRITERS))
@pytest.mark.parametrize("second", list(WRITERS))
def test_what_a_writer_writes_is_detected_and_read_back_as_the_same_boxes(first, second, tmp_path):
    source = coloured_voc_set(tmp_path / "voc")
    expected = _boxes(source)
    once = convert("voc", first, source, tmp_path / "once")
    twice = convert(first, second, once, tmp_path / "twice")
    for written, name in ((once, first), (twice, second)):
        assert load_data_spec(written / "data.yaml", ensure=False).layout.name == name  # detected, not named
        got = _boxes(written / "data.yaml")
        assert got.keys() == expected.keys()
        for split in SPLITS:
            assert got[split].keys() == expected[split].keys()
            for file_name, rows in expected[split].items():
                assert [r[0] for r in got[split][file_name]] == [r[0] for r in rows]
                np.testing.assert_allclose([r[1:] for r in got[split][file_name]], [r[1:] for r in rows], atol=1e-3)


def test_detection_takes_the_strongest_evidence(tmp_path):
    root = tmp_path / "d"
    (root / "labels" / "train").mkdir(parents=True)
    (root / "Annotations").mkdir()
    raw = {"train": "images/train", "val": "images/val"}
    assert detect_layout(YamlSource(root / "d.yaml", raw, root)).name == "yolo"  # labels/ beats XML annotations
    assert detect_layout(YamlSource(root / "d.yaml", {**raw, "val_json": "v.json"}, root)).name == "coco"
    (root / "labels" / "train").rmdir()
    assert detect_layout(YamlSource(root / "d.yaml", raw, root)).name == "voc"


@pytest.mark.parametrize("named", [n for n in LAYOUTS if not LAYOUTS[n].own_keys])
def test_a_named_layout_beside_another_layouts_own_keys_is_refused(named, tmp_path):
    for other in (layout for layout in LAYOUTS.values() if layout.own_keys):
        keys = "".join(f"{k}: x.json\n" for k in other.own_keys)
        text = f"layout: {named}\ntrain: images/train\nval: images/val\nnames: [a]\n{keys}"
        with pytest.raises(DatasetError, match=f"d.yaml: layout: {named}, but {'/'.join(other.own_keys)} are given"):
            load_data_spec(write_yaml(tmp_path / "d.yaml", text), ensure=False)


@pytest.mark.parametrize(("value", "shown"), [("cvat", "'cvat'"), ("[coco]", "['coco']"), ("{a: 1}", "{'a': 1}")])
def test_an_unknown_layout_lists_the_registry(tmp_path, value, shown):
    match = f"layout: {shown} unknown; use one of {', '.join(LAYOUTS)}, or leave it out"
    with pytest.raises(DatasetError, match=match.replace("[", r"\[").replace("]", r"\]")):
        load_data_spec(write_yaml(tmp_path / "d.yaml", f"layout: {value}\ntrain: a\nval: b\n"), ensure=False)


def _layout_branches(path: Path) -> list[str]:
    """Comparisons with a layout name (``x == "coco"``, ``x in ("voc", ...)``) and ``is_<layout>`` attributes."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            values = [e for o in operands for e in (o.elts if isinstance(o, (ast.Tuple, ast.List, ast.Set)) else [o])]
            if any(isinstance(v, ast.Constant) and v.value in LAYOUTS for v in values):
                found.append(f"{path}:{node.lineno}: {ast.unparse(node)}")
        elif isinstance(node, ast.Attribute) and node.attr in {f"is_{name}" for name in LAYOUTS}:
            found.append(f"{path}:{node.lineno}: {ast.unparse(node)}")
    return found


def test_no_code_asks_which_layout_it_holds():
    """Code outside the layout modules calls a layout's methods; a layout asks nothing of the others either."""
    assert [line for path in sorted(PACKAGE.rglob("*.py")) for line in _layout_branches(path)] == []
