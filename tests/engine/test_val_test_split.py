"""``val --split test`` scores a data set's test split; training never reads it."""

from __future__ import annotations

from helpers import TINY_HYP

import yolorep.datasets.dataset as dataset_module
from yolorep.cli import main
from yolorep.engine.train.setup import train
from yolorep.engine.val.validator import val


def _with_test(tiny_shapes_yaml, folder, test: str, test_json: str):
    """The tiny shapes set described again, with a test split."""
    root = (tiny_shapes_yaml.parent / "shapes").resolve()
    text = tiny_shapes_yaml.read_text().replace("path: shapes", f"path: {root}").split("synthetic:")[0]
    path = folder / "with_test.yaml"
    path.write_text(text + f"test: {test}\ntest_json: {test_json}\n")
    return path


def test_val_scores_the_declared_test_split(trained_tiny, tiny_shapes_yaml, tmp_path):
    # the training images declared as the test split: scored as `--split train` scores them
    data = _with_test(tiny_shapes_yaml, tmp_path, "images/train", "annotations/instances_train.json")
    best = trained_tiny / "weights" / "best.pt"
    common = dict(weights=best, data=data, batch=4, workers=0, project=tmp_path)
    on_test = val(split="test", name="test", **common)
    on_train = val(split="train", name="train", **common)
    assert on_test["images"] == on_train["images"] == 12  # the val split has 6
    assert on_test["map50_95"] == on_train["map50_95"]
    assert (tmp_path / "test" / "predictions.json").is_file()


def test_val_split_test_without_one_is_one_line_and_exit_2(trained_tiny, tiny_shapes_yaml, tmp_path, caplog):
    argv = ["val", "--weights", str(trained_tiny / "weights" / "best.pt"), "--data", str(tiny_shapes_yaml)]
    assert main([*argv, "--split", "test", "--project", str(tmp_path)]) == 2
    assert "declares no test split; add test: <images> and test_json: <instances file>" in caplog.text
    assert main([*argv, "--split", "testing", "--project", str(tmp_path)]) == 2
    assert not any(tmp_path.iterdir())


def test_training_never_reads_the_test_split(tiny_shapes_yaml, tmp_path, monkeypatch):
    # a test split that is not there: training must neither need nor open it
    data = _with_test(tiny_shapes_yaml, tmp_path, "images/absent", "annotations/absent.json")
    read = []
    original = dataset_module.load_records
    monkeypatch.setattr(
        dataset_module, "load_records", lambda spec, split, *a: read.append(split) or original(spec, split, *a)
    )
    train(model="yolorep-n.yaml", data=data, epochs=1, imgsz=64, batch=4, device="cpu", workers=0,
          project=tmp_path, name="run", hyp=dict(TINY_HYP))  # fmt: skip
    assert read and set(read) == {"train", "val"}
