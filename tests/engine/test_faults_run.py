"""Issue 23 at the training and evaluation end: a resume that writes only into its own run folder, untrusted
metadata that is checked and never echoed, class names compared as lists, output names that never collide."""

from __future__ import annotations

import json
import logging
import shutil
import warnings
from pathlib import Path

import cv2
import pytest
import torch
from faults import TRAIN, Ctx, assert_one_line, renamed_class, with_field

from yolorep.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")


def _outside_run(ctx: Ctx, *, results_csv: bool) -> Path:
    """``last.pt`` in a user's folder that is not a run folder, beside files of the user's that a resume would
    have deleted or overwritten (case 2)."""
    folder = ctx.tmp / "mine"
    last = folder / ("weights" if results_csv else "sub") / "last.pt"
    last.parent.mkdir(parents=True)
    shutil.copy(ctx.last, last)
    (folder / ".draft.tmp").write_text("the user's draft")
    (folder / "results.png").write_text("the user's plot")
    if results_csv:
        (folder / "results.csv").write_text("a,b\n1,2\n")
    return last


def _train_args(ctx: Ctx, **changes: object) -> Path:
    """best.pt with ``changes`` in its train_args and, for ``data``, in its metadata record too (which is what a
    checkpoint's data set is read from)."""
    raw = torch.load(ctx.best, weights_only=True)
    raw["train_args"] = {**raw["train_args"], **changes}
    if "data" in changes and "metadata" in raw:
        raw["metadata"] = {**raw["metadata"], "data": changes["data"]}
    path = ctx.tmp / "train_args.pt"
    torch.save(raw, path)
    return path


def _resume_with_renamed_class(ctx: Ctx) -> list[str]:
    """A copy of the run (its last.pt at epoch 0, so one epoch is left), resumed on data whose first class is
    renamed in both files."""
    run = ctx.tmp / "run"
    shutil.copytree(ctx.last.parent.parent, run)
    raw = torch.load(run / "weights" / "last.pt", weights_only=True)
    raw["epoch"] = 0
    torch.save(raw, run / "weights" / "last.pt")
    renamed_class(ctx)
    train_json = ctx.val_json.with_name("instances_train.json")
    data = json.loads(train_json.read_text())
    data["categories"] = json.loads(ctx.val_json.read_text())["categories"]
    train_json.write_text(json.dumps(data))
    return [*TRAIN, "--resume", str(run / "weights" / "last.pt"), "--data", str(ctx.data)]


# (case, argv from the context, exit code, message fragment), checked by faults.assert_one_line
CASES = [
    ("2 resume a last.pt outside weights/", lambda c: [*TRAIN, "--resume", str(_outside_run(c, results_csv=False))],
     2, "--resume takes the weights/last.pt of a run folder"),
    ("2 resume beside an unrelated results.csv",
     lambda c: [*TRAIN, "--resume", str(_outside_run(c, results_csv=True))], 2,
     "not a yolorep run folder (no args.yaml, and no results.csv listing the epochs"),
    ("4 train_args.data names a system file", lambda c: ["val", "--weights", str(_train_args(c, data="/etc/passwd"))],
     2, "its metadata names the data set '/etc/passwd', which is not a data YAML; pass --data"),
    ("6 val --data with another class name",
     lambda c: ["val", "--weights", str(c.best), "--data", str(renamed_class(c))], 2,
     "class 0 is 'circle' in the model and 'renamed' in the data set"),
    ("6 resume --data with a renamed class", _resume_with_renamed_class, 2,
     "does not list the run's classes in the run's order (class 0 is 'circle' in the model and 'renamed'"),
    ("9 demo --epochs 0", lambda c: ["demo", "--epochs", "0", "--device", "cpu"], 2, "--epochs 0: must be"),
    ("9 demo --time nan", lambda c: ["demo", "--time", "nan", "--device", "cpu"], 2, "--time nan: must be a finite"),
    ("11 eval_args of the wrong type", lambda c: ["val", "--weights", str(with_field(c, "eval_args", [0.5]))], 2,
     "field 'eval_args' should be a mapping, got list"),
    ("11 eval_args conf 2", lambda c: ["val", "--weights", str(with_field(c, "eval_args", {"conf": 2.0}))], 2,
     "field eval_args.conf: expected a number in 0..1; the file is corrupt"),
    ("11 train_args.imgsz a string", lambda c: ["val", "--weights", str(_train_args(c, imgsz="64"))], 2,
     "field 'train_args.imgsz' should be an integer"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "argv", "code", "message"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_gives_one_line_and_exit_code(ctx, caplog, monkeypatch, case, argv, code, message):
    assert_one_line(ctx, caplog, monkeypatch, argv, code, message)


def test_a_data_path_in_metadata_never_echoes_the_file(ctx, caplog, monkeypatch):
    """Case 4: whatever file the metadata names, its content never reaches the error line."""
    secret = "hunter2-the-password"
    files = {"secret.yaml": f"password: {secret}\n", "broken.yaml": f"password: {secret}: {secret}\n",
             "list.yaml": f"- {secret}\n", "secret.txt": f"root:{secret}\n"}  # fmt: skip
    for name, content in files.items():
        (ctx.tmp / name).write_text(content)
        weights = _train_args(ctx, data=str(ctx.tmp / name))
        caplog.clear()
        with caplog.at_level(logging.ERROR, logger="yolorep"):
            assert main(["val", "--weights", str(weights), "--project", str(ctx.tmp / "runs")]) == 2
        assert secret not in caplog.text and "error:" in caplog.text, (name, caplog.text)


def test_resuming_a_finished_run_whose_results_csv_was_deleted(ctx):
    """Case 11: the run is recognised by its args.yaml, and results.csv is written again from last.pt."""
    run = ctx.tmp / "run"
    shutil.copytree(ctx.last.parent.parent, run)
    rows = (run / "results.csv").read_text().splitlines()
    (run / "results.csv").unlink()
    (run / ".draft.tmp").write_text("the user's")  # not one of the run's temporaries: kept
    assert main([*TRAIN, "--resume", str(run / "weights" / "last.pt")]) == 0
    assert (run / "results.csv").read_text().splitlines() == rows
    assert (run / ".draft.tmp").read_text() == "the user's" and (run / "metrics.json").is_file()


def _reordered(ctx: Ctx) -> Path:
    """The val set with its category ids permuted (so its classes, in id order, come in another order), and the
    annotations following them: the same objects, the same names, another order."""
    data = json.loads(ctx.val_json.read_text())
    ids = [c["id"] for c in data["categories"]]
    new_id = dict(zip(ids, reversed(ids)))
    for category in data["categories"]:
        category["id"] = new_id[category["id"]]
    for annotation in data["annotations"]:
        annotation["category_id"] = new_id[annotation["category_id"]]
    path = ctx.tmp / "reordered.yaml"
    json_path = ctx.val_json.with_name("reordered_val.json")
    json_path.write_text(json.dumps(data))
    path.write_text(
        f"path: shapes\ntrain: images/val\nval: images/val\ntrain_json: {json_path}\nval_json: {json_path}\n"
    )
    return path


def test_val_on_the_same_classes_in_another_order_scores_the_same(ctx, caplog):
    """Case 6: the model's scores are mapped to the data set's classes by name (it scored 0.0084 for 0.0231)."""
    from yolorep.datasets.spec import load_data_spec
    from yolorep.engine.val.validator import val

    reordered = _reordered(ctx)
    assert load_data_spec(reordered).names == tuple(reversed(load_data_spec(ctx.data).names))
    kwargs = dict(weights=ctx.best, batch=4, workers=0, device="cpu", project=ctx.tmp / "val")
    expected = val(data=ctx.data, name="same", **kwargs)
    with caplog.at_level(logging.INFO):
        mapped = val(data=reordered, name="reordered", **kwargs)
    assert "lists the model's classes in another order; detections are mapped to its classes by name" in caplog.text
    assert expected["map50_95"] > 0
    assert mapped["map50_95"] == pytest.approx(expected["map50_95"], abs=1e-9)
    assert mapped["map50"] == pytest.approx(expected["map50"], abs=1e-9)
    by_name = {c["name"]: dict(c, **{"class": None}) for c in expected["per_class"]}
    assert all(dict(c, **{"class": None}) == by_name[c["name"]] for c in mapped["per_class"])


def test_weights_seed_the_class_rows_by_name(ctx):
    """Case 6, train --weights: a checkpoint whose classes come in another order seeds each class's row."""
    import yolorep
    from yolorep.engine.train.build import _transfer_weights

    source = yolorep.load(ctx.best)
    names = list(reversed(source.names))
    model = yolorep.build_model("yolorep-n.yaml", nc=len(names))
    model.names = names
    _transfer_weights(model, ctx.best)
    rows = {k: v for k, v in source.state_dict().items() if k.endswith(("cls_pred.weight", "cls_pred.bias"))}
    assert rows
    for key, value in rows.items():
        torch.testing.assert_close(model.state_dict()[key], value.flip(0), msg=key)
    others = [k for k in source.state_dict() if k not in rows]
    assert all(torch.equal(model.state_dict()[k], source.state_dict()[k]) for k in others)


def test_predicted_files_of_the_same_name_in_two_folders_are_both_kept(ctx, tmp_path):
    """Case 8: a/x.jpg and b/x.jpg wrote one image and one label file, and JSON rows that could not be told apart."""
    images = sorted((ctx.data.parent / "shapes" / "images" / "val").glob("*.jpg"))
    for folder, image in (("a", images[0]), ("b", images[1])):
        (tmp_path / "src" / folder).mkdir(parents=True)
        shutil.copy(image, tmp_path / "src" / folder / "x.jpg")
    argv = ["predict", "--weights", str(ctx.best), "--source", str(tmp_path / "src" / "**" / "*.jpg"), "--conf",
            "0.0001", "--save-txt", "--save-json", "--project", str(tmp_path / "out"), "--device", "cpu"]  # fmt: skip
    assert main(argv) == 0
    run = tmp_path / "out" / "exp"
    assert sorted(p.name for p in run.glob("*.jpg")) == ["x.jpg", "x_2.jpg"]
    assert sorted(p.name for p in (run / "labels").iterdir()) == ["x.txt", "x_2.txt"]
    for name, source in (("x.jpg", images[0]), ("x_2.jpg", images[1])):  # each drawn on its own image
        assert cv2.imread(str(run / name)).shape == cv2.imread(str(source)).shape
    rows = json.loads((run / "predictions.json").read_text())
    assert {row["file_name"] for row in rows} == {str(tmp_path / "src" / f / "x.jpg") for f in "ab"}


@pytest.fixture(scope="module")
def exports(trained_tiny, tmp_path_factory) -> dict[str, Path]:
    """ONNX and TorchScript exports of the trained tiny run, whose metadata the cases below alter."""
    from yolorep.engine.deploy import export

    best = tmp_path_factory.mktemp("exports") / "best.pt"
    shutil.copy(trained_tiny / "weights" / "best.pt", best)
    return {fmt: export(best, format=fmt, imgsz=64) for fmt in ("onnx", "torchscript")}


def _crafted(exports: dict[str, Path], fmt: str, changes: dict[str, str] | None, folder: Path) -> Path:
    """A copy of an export with its metadata strings updated by ``changes`` (TorchScript: ``config.txt`` replaced
    by text that is not JSON when ``changes`` is None)."""
    path = folder / exports[fmt].name
    if fmt == "onnx":
        import onnx

        graph = onnx.load(str(exports[fmt]))
        strings = {p.key: p.value for p in graph.metadata_props} | changes
        del graph.metadata_props[:]
        for key, value in strings.items():
            graph.metadata_props.add(key=key, value=value)
        onnx.save(graph, str(path))
        return path
    extra = {"config.txt": ""}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=FutureWarning)  # torch.jit deprecation notice
        module = torch.jit.load(str(exports[fmt]), _extra_files=extra)
        text = "{not json" if changes is None else json.dumps(json.loads(extra["config.txt"]) | changes)
        torch.jit.save(module, str(path), _extra_files={"config.txt": text})
    return path


# (case, format, metadata changes, message fragment): untrusted metadata is checked by type and range (cases 4, 9, 11)
CRAFTED = [
    ("4 onnx data=/etc/passwd", "onnx", {"data": "/etc/passwd"}, "names the data set '/etc/passwd', which is not a"),
    ("9 onnx names 'abcdef'", "onnx", {"names": '"abcdef"'}, "names: expected a non-empty list of class names, got"),
    ("11 onnx eval_args a list", "onnx", {"eval_args": "[1]"}, "eval_args: expected a mapping, got list"),
    ("11 onnx eval_args iou -1", "onnx", {"eval_args": '{"iou": -1}'}, "eval_args.iou: expected a number in 0..1"),
    ("11 onnx batch 0", "onnx", {"batch": "0"}, "malformed yolorep metadata (batch: expected a positive integer)"),
    ("11 onnx stride not JSON", "onnx", {"stride": "3 2"}, "malformed yolorep metadata (stride: not a JSON value)"),
    ("11 torchscript config.txt not JSON", "torchscript", None, "config.txt: not a JSON mapping of strings"),
    ("11 torchscript imgsz a string", "torchscript", {"imgsz": '"64"'}, "imgsz: expected a positive integer"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "fmt", "changes", "message"), CRAFTED, ids=[c[0] for c in CRAFTED])
def test_crafted_export_metadata_is_one_line(exports, tmp_path, caplog, case, fmt, changes, message):
    weights = _crafted(exports, fmt, changes, tmp_path)
    with caplog.at_level(logging.ERROR, logger="yolorep"):
        assert main(["val", "--weights", str(weights), "--project", str(tmp_path / "runs"), "--device", "cpu"]) == 2
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and message in errors[0] and "\n" not in errors[0], errors
    assert not (tmp_path / "runs").exists()
