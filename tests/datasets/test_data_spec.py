from __future__ import annotations

from pathlib import Path

import pytest

from yolorep.datasets.layouts.yolo import labels_dir
from yolorep.datasets.spec import ensure_data, load_data_spec
from yolorep.errors import DatasetError

REPO = Path(__file__).resolve().parents[2]


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_relative_paths_resolve_against_the_yaml_folder(tmp_path):
    yaml_path = write(tmp_path / "cfg" / "d.yaml", "path: ../ds\ntrain: images/train\nval: images/val\nnames: [a, b]\n")
    spec = load_data_spec(yaml_path, ensure=False)
    assert spec.root == (tmp_path / "ds").resolve()
    assert spec.split_dir("train") == (tmp_path / "ds" / "images" / "train").resolve()
    assert labels_dir(spec, "val") == (tmp_path / "ds" / "labels" / "val").resolve()
    assert spec.names == ("a", "b") and spec.layout.name == "yolo"
    assert spec.category_ids == (1, 2)  # YOLO layout: class i is category i + 1


def test_names_as_index_dict(tmp_path):
    yaml_path = write(tmp_path / "d.yaml", "train: images/train\nval: images/val\nnames: {0: cat, 1: dog}\n")
    spec = load_data_spec(yaml_path, ensure=False)
    assert spec.names == ("cat", "dog") and spec.root == tmp_path.resolve()


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("val: images/val\nnames: [a]\n", "train"),
        ("train: images/train\nval: images/val\n", "names"),
        ("train: images/train\nval: images/val\nnames: {0: a, 2: b}\n", "names"),
        ("train: images/train\nval: images/val\nnames: [a]\nnc: 3\n", "nc"),
        ("train: a\nval: b\ntrain_json: x.json\n", "train_json/val_json"),
        ("train: images/train\nval: images/val\nnames: [a]\nsynthetic: {n_train: 3}\n", "train_json"),
        (
            "train: images/train\nval: images/val\ntrain_json: annotations/instances_train.json\n"
            "val_json: annotations/instances_val.json\nsynthetic: {n_trian: 3}\n",
            "synthetic.n_trian",
        ),
    ],
)
def test_bad_yaml_names_file_and_key(tmp_path, text, key):
    yaml_path = write(tmp_path / "bad.yaml", text)
    with pytest.raises(DatasetError, match=f"bad.yaml: {key}: "):
        load_data_spec(yaml_path, ensure=False)


def test_missing_yaml_and_missing_folders(tmp_path):
    with pytest.raises(DatasetError, match="nope.yaml: dataset YAML not found"):
        load_data_spec(tmp_path / "nope.yaml")
    yaml_path = write(tmp_path / "d.yaml", "train: images/train\nval: images/val\nnames: [a]\n")
    with pytest.raises(DatasetError, match=r"d.yaml: train: image folder .*images/train does not exist"):
        load_data_spec(yaml_path)
    for split in ("train", "val"):
        (tmp_path / "images" / split).mkdir(parents=True)
    with pytest.raises(DatasetError, match=r"d.yaml: train: label folder .*labels/train does not exist"):
        load_data_spec(yaml_path)


def test_coco_names_and_ids_come_from_json(coco_factory):
    categories = [{"id": 9, "name": "nine"}, {"id": 4, "name": "four"}]
    yaml_path = coco_factory([{"id": 1, "file_name": "a.jpg", "width": 32, "height": 24}], [], categories)
    spec = load_data_spec(yaml_path)
    assert spec.layout.name == "coco"
    assert spec.names == ("four", "nine") and spec.category_ids == (4, 9)  # ascending category id
    assert spec.category_to_class(9) == 1 and spec.class_to_category(0) == 4

    # names given in the YAML must agree in count with the JSON categories
    yaml_path.write_text(yaml_path.read_text() + "names: [a, b, c]\n")
    with pytest.raises(DatasetError, match="data.yaml: names: 3 names but .* has 2 categories"):
        load_data_spec(yaml_path)


def test_corrupt_json_is_a_dataset_error(coco_factory):
    yaml_path = coco_factory([], [], [{"id": 1, "name": "x"}])
    spec = load_data_spec(yaml_path, ensure=False)
    spec.layout.val_json.write_text("{not json")
    with pytest.raises(DatasetError, match="val.json: cannot read JSON"):
        ensure_data(spec)


def test_bundled_yamls_parse():
    shapes = load_data_spec(REPO / "data" / "shapes.yaml", ensure=False)
    assert shapes.synthetic == {"n_train": 800, "n_val": 200, "imgsz": 320, "seed": 0}
    assert shapes.root == (REPO / "datasets" / "shapes").resolve() and shapes.layout.name == "coco"
    coco = load_data_spec(REPO / "data" / "coco.yaml", ensure=False)
    assert coco.synthetic is None and coco.val == (REPO / "datasets" / "coco" / "images" / "val2017").resolve()
