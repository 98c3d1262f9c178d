"""Importing YOLOv6 and ultralytics checkpoints (made in their layouts by ``fakes``): tensors land where they
belong, architectures are recognised from the tree, and anything else is refused in one line."""

from __future__ import annotations

import hashlib

import pytest
import torch
from fakes import save, ultralytics_checkpoint, ultralytics_yolov8n, yolov6_checkpoint, yolov6n

from yolorep.cli import main
from yolorep.engine.checkpoint import load_checkpoint, read_checkpoint
from yolorep.errors import CheckpointError
from yolorep.foreign import import_checkpoint


@pytest.fixture(scope="module")
def v8_file(tmp_path_factory):
    model = ultralytics_yolov8n(nc=80)
    reference = {k: v.half().float() for k, v in model.state_dict().items()}
    return save(ultralytics_checkpoint(model), tmp_path_factory.mktemp("u") / "yolov8n.pt"), reference


@pytest.fixture(scope="module")
def v6_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("v6")
    files = {}
    for head in ("plain", "fuse_ab", "distill_ns"):
        model = yolov6n(nc=80, head=head)
        reference = {k: v.half().float() for k, v in model.state_dict().items()}
        files[head] = save(yolov6_checkpoint(model), folder / f"yolov6n_{head}.pt"), reference
    return files


def test_ultralytics_tensors_land_in_the_yolov8_yaml(v8_file):
    path, reference = v8_file
    checkpoint = import_checkpoint(path)
    state = checkpoint["state_dict"]
    assert checkpoint["model_name"] == "yolov8" and checkpoint["scale"] == "n"
    assert checkpoint["names"][:2] == ["thing0", "thing1"] and checkpoint["imgsz"] == 320
    assert checkpoint["source"]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    pairs = {
        "model.0.conv.weight": "layers.0.conv.weight",
        "model.2.cv1.bn.running_var": "layers.2.split.bn.running_var",
        "model.4.m.1.cv2.conv.weight": "layers.4.blocks.1.conv2.conv.weight",
        "model.9.cv2.bn.bias": "layers.9.expand.bn.bias",
        "model.22.cv2.1.2.bias": "layers.22.box_branches.1.2.bias",
        "model.22.cv3.2.0.conv.weight": "layers.22.cls_branches.2.0.conv.weight",
    }
    for theirs, ours in pairs.items():
        assert state[ours].dtype == torch.float32 and torch.equal(state[ours], reference[theirs])
    # every tensor but the DFL's constant projection is used once
    assert len(state) == len(reference) - 1
    model = load_checkpoint(path)
    assert model.nc == 80 and model.head.reg_max == 16 and model.meta["eval_args"]["conf"] == 0.001


@pytest.mark.parametrize("head", ["plain", "fuse_ab", "distill_ns"])
def test_yolov6_heads_import_their_anchor_free_branch(v6_files, head):
    path, reference = v6_files[head]
    checkpoint = import_checkpoint(path)
    state = checkpoint["state_dict"]
    assert checkpoint["model_name"] == "yolov6" and checkpoint["scale"] == "n"
    assert checkpoint["names"][0] == "person" and checkpoint["eval_args"]["conf"] == 0.03
    pairs = {
        "backbone.stem.rbr_dense.conv.weight": "layers.0.dense.conv.weight",
        "backbone.ERBlock_2.1.conv1.rbr_1x1.bn.running_var": "layers.2.blocks.0.pointwise.bn.running_var",
        "backbone.ERBlock_3.1.block.2.rbr_identity.weight": "layers.4.blocks.3.identity.weight",
        "backbone.ERBlock_5.2.cspsppf.cv4.block.conv.weight": "layers.9.main.2.conv.weight",
        "neck.Bifusion0.upsample.upsample_transpose.weight": "layers.11.upsample.weight",
        "neck.Bifusion1.cv2.block.bn.running_mean": "layers.14.finer.bn.running_mean",
        "detect.stems.0.block.conv.weight": "layers.22.levels.0.stem.conv.weight",
        "detect.reg_preds.2.bias": "layers.22.levels.2.reg_pred.bias",
    }
    for theirs, ours in pairs.items():
        assert torch.equal(state[ours], reference[theirs]), theirs
    training_only = [k for k in reference if k.startswith("detect.") and ("_ab" in k or "_dist" in k or "proj" in k)]
    assert len(state) == len(reference) - len(training_only)
    model = load_checkpoint(path)
    assert model.head.reg_max == 0 and type(model.layers[0].act).__name__ == "ReLU"
    assert model.layers[0].dense.bn.eps == pytest.approx(1e-3)  # the file's BatchNorm epsilon


def test_an_unknown_architecture_is_refused_in_one_line(tmp_path):
    model = ultralytics_yolov8n()
    model.model[4].m[1].cv1.conv = torch.nn.Conv2d(32, 24, 3, bias=False)  # a bottleneck of another width
    path = save(ultralytics_checkpoint(model), tmp_path / "odd.pt")
    with pytest.raises(CheckpointError, match="architecture yolorep does not know; closest: yolov8.yaml") as error:
        read_checkpoint(path)
    assert "\n" not in str(error.value) and "layers.4.blocks.1.conv1.conv.weight" in str(error.value)


def test_activations_are_read_from_the_file(tmp_path):
    """ultralytics 8.4 builds SPPF's first conv without activation; the import follows the file, and an activation
    yolorep's YAML does not have is refused rather than silently changed."""
    path = save(ultralytics_checkpoint(ultralytics_yolov8n(reduce_act=False)), tmp_path / "new.pt")
    model = load_checkpoint(path)
    assert type(model.layers[9].reduce.act).__name__ == "Identity"
    assert type(model.layers[9].expand.act).__name__ == "SiLU"
    relu = ultralytics_yolov8n()
    relu.model[0].act = torch.nn.ReLU()
    with pytest.raises(CheckpointError, match="layers.0.act: file ReLU vs model SiLU"):
        read_checkpoint(save(ultralytics_checkpoint(relu), tmp_path / "relu.pt"))


def test_a_file_that_is_not_a_detector_is_refused(tmp_path):
    path = save({"model": torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1))}, tmp_path / "seq.pt")
    with pytest.raises(CheckpointError, match="nor a YOLOv6 or ultralytics one|yolorep imports YOLOv6"):
        read_checkpoint(path)


def test_import_command_writes_a_weights_only_checkpoint(v8_file, tmp_path, caplog):
    path, _ = v8_file
    out = tmp_path / "y8.pt"
    assert main(["import", str(path), "--out", str(out)]) == 0
    stored = torch.load(out, map_location="cpu", weights_only=True)
    assert stored["source"]["family"] == "ultralytics" and stored["source"]["architecture"] == "yolov8-n"
    assert stored["source"]["file"] == "yolov8n.pt" and stored["imgsz"] == 320
    original, imported = load_checkpoint(path), load_checkpoint(out)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(original.decode(original(x)), imported.decode(imported(x)))
    assert main(["import", str(tmp_path / "absent.pt")]) == 2


@pytest.mark.parametrize("family", ["yolov6", pytest.param("ultralytics", marks=pytest.mark.slow)])
def test_fine_tuning_keeps_all_but_the_class_predictions(family, v6_files, v8_file, tiny_shapes_yaml, tmp_path,
                                                         caplog):  # fmt: skip
    """--weights FOREIGN.pt with another class count trains the file's own architecture, starts from every tensor
    but the class predictors, says so, and --freeze keeps the first layers at the imported weights."""
    from yolorep.engine.train.setup import train

    path = v6_files["plain"][0] if family == "yolov6" else v8_file[0]
    caplog.set_level("INFO", logger="yolorep")
    results = train(weights=str(path), data=tiny_shapes_yaml, epochs=1, imgsz=64, batch=4, device="cpu", workers=0,
                    project=tmp_path, freeze=4, seed=0)  # fmt: skip
    log = caplog.text
    imported = import_checkpoint(path)["state_dict"]
    trained = torch.load(f"{results['save_dir']}/weights/last.pt", map_location="cpu", weights_only=True)
    assert trained["model_name"] == ("yolov6" if family == "yolov6" else "yolov8")
    left = log.split("kept every tensor of")[1].split("\n")[0]
    predictor = "cls_pred" if family == "yolov6" else "cls_branches.0.2"
    assert predictor in left and all(("cls_pred" in k or ".2." in k) for k in left.split(" except ")[1].split(", ")[:6])
    for key, value in trained["state_dict"].items():
        if key.startswith(("layers.0.", "layers.3.")) and key.endswith("conv.weight"):  # frozen layers
            # last.pt holds the EMA of the weights: d * w + (1 - d) * w is w up to rounding
            assert torch.allclose(value, imported[key], rtol=0, atol=1e-6), key


@pytest.mark.parametrize(
    ("family", "fmt", "int8"),
    [
        ("yolov6", "onnx", False),
        ("ultralytics", "onnx", False),
        ("yolov6", "openvino", True),
        pytest.param("yolov6", "onnx", True, marks=pytest.mark.slow),
        pytest.param("ultralytics", "openvino", True, marks=pytest.mark.slow),
    ],
)
def test_imported_models_export_fused(family, fmt, int8, v6_files, v8_file, tiny_shapes_yaml):
    """The fused imported model exports (the exporter checks the file's outputs against PyTorch) and the export
    runs as a backend with the file's class names."""
    from yolorep.engine.deploy import export, load_backend

    path = v6_files["distill_ns"][0] if family == "yolov6" else v8_file[0]
    data = {"int8": True, "data": tiny_shapes_yaml, "calib": 4} if int8 else {}
    exported = export(path, format=fmt, imgsz=64, **data)
    backend = load_backend(exported, torch.device("cpu"))
    assert backend.names[0] == ("person" if family == "yolov6" else "thing0")
    with torch.no_grad():
        out = backend(torch.rand(1, 3, 64, 64))
    assert out.shape == (1, 84, 84)  # [B, anchors at 64 px, 4 + 80 classes]
