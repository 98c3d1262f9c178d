"""The edge formats (NCNN, TFLite/LiteRT, CoreML): each export of a tiny model with random BatchNorm statistics,
loaded back through its backend where its runtime runs here and compared with the unfused PyTorch model; CoreML,
which runs only on Apple systems, by its program's structure, weights and metadata. Each format's tests skip when
its optional packages are absent (the dev extra installs NCNN and CoreML; TFLite's converter is large, see
docs/DEPLOY.md). The default run converts two NCNN models and one CoreML model; the TFLite conversions (each a child
process importing JAX: 400 s for the three on 2 busy cores) and a second CoreML one are marked slow."""

import importlib.util
import json
import logging
import sys

import numpy as np
import pytest
import torch
from torch import nn

import yolorep
from yolorep.cli import main
from yolorep.engine.deploy import FORMATS, export, load_backend
from yolorep.engine.deploy.pytorch import load_fused
from yolorep.engine.deploy.quantize import int8_agreement
from yolorep.engine.deploy.tolerance import Check
from yolorep.errors import YolorepError
from yolorep.nn import randomize_batchnorm

pytestmark = pytest.mark.usefixtures("one_thread")

IMGSZ = 64
NAMES = ["circle", "square", "triangle"]


@pytest.fixture(scope="module")
def unfused():
    model = randomize_batchnorm(yolorep.build_model("yolorep-n.yaml", nc=3), seed=2).eval()
    model.names = list(NAMES)
    return model


@pytest.fixture(scope="module")
def weights(unfused, tmp_path_factory):
    return yolorep.save(unfused, tmp_path_factory.mktemp("edge") / "w.pt")


@pytest.fixture(scope="module")
def images_and_reference(unfused):
    """Three images (the batch-2 exports then pad a second batch) and the unfused multi-branch model's output."""
    x = torch.rand(3, 3, IMGSZ, IMGSZ, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        return x, unfused.decode(unfused(x))


def skip_without(module: str) -> None:
    """Skip unless ``module`` is installed, without importing it: litert_torch imports JAX, whose threads would stay in
    the test process and make a later fork (a DataLoader's workers) prone to deadlock, and take seconds to load."""
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed")


def conv_count(model: nn.Module) -> int:
    return sum(isinstance(m, nn.Conv2d) for m in load_fused(model).modules())


def compared(path, images_and_reference, precision):
    """The backend of ``path`` and its check against the unfused model at ``precision``'s tolerance."""
    backend = load_backend(path, "cpu")
    x, expected = images_and_reference
    return backend, Check.of(backend.format, backend(x), expected, precision, IMGSZ)


# NCNN --------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ncnn_exports(weights):
    pytest.importorskip("pnnx")
    pytest.importorskip("ncnn")
    return {half: export(weights, format="ncnn", imgsz=IMGSZ, batch=2, half=half) for half in (False, True)}


def test_ncnn_fp32_computes_what_pytorch_does(ncnn_exports, weights, unfused, images_and_reference):
    from yolorep.engine.deploy.ncnn import _layer_counts

    folder = ncnn_exports[False]
    assert folder.name == "w_ncnn_model" and sorted(p.name for p in folder.iterdir()) == [
        "metadata.json", "model.ncnn.bin", "model.ncnn.param",
    ]  # fmt: skip
    layers = _layer_counts(folder / "model.ncnn.param")
    assert layers["Convolution"] == conv_count(unfused) and "BatchNorm" not in layers  # fused: plain convolutions
    backend, check = compared(folder, images_and_reference, "fp32")
    assert check.ok, check
    assert (backend.format, backend.precision, backend.names, backend.imgsz, backend.batch) == (
        "ncnn", "fp32", NAMES, IMGSZ, 2,
    )  # fmt: skip
    meta = json.loads((folder / "metadata.json").read_text())
    assert json.loads(meta["names"]) == NAMES and meta["fused"] == "true" and meta["precision"] == "fp32"
    # the .param file passed instead of its folder loads the same model
    assert load_backend(folder / "model.ncnn.param", "cpu").names == NAMES


def test_ncnn_fp16_stores_half_the_weights_on_any_device(ncnn_exports, images_and_reference):
    fp32, fp16 = ncnn_exports[False], ncnn_exports[True]
    assert fp16.name == "w_fp16_ncnn_model"
    ratio = (fp16 / "model.ncnn.bin").stat().st_size / (fp32 / "model.ncnn.bin").stat().st_size
    assert 0.45 < ratio < 0.55, ratio
    backend, check = compared(fp16, images_and_reference, "fp16")
    assert backend.precision == "fp16" and check.ok, check
    # rounded weights: not the fp32 model's output, yet within the fp16 tolerance
    x, _ = images_and_reference
    assert (backend(x) - load_backend(fp32, "cpu")(x)).abs().max() > 1e-6


def test_ncnn_folder_without_metadata_is_refused(ncnn_exports, tmp_path):
    import shutil

    copy = shutil.copytree(ncnn_exports[False], tmp_path / "m_ncnn_model")
    (copy / "metadata.json").unlink()
    with pytest.raises(YolorepError, match="no yolorep metadata"):
        load_backend(copy, "cpu")
    (copy / "metadata.json").write_text("[1, 2]")
    with pytest.raises(YolorepError, match=r"malformed yolorep metadata \(metadata.json: not a JSON mapping"):
        load_backend(copy, "cpu")


# TFLite ------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tflite_exports(weights, tiny_shapes_yaml):
    skip_without("litert_torch")
    pytest.importorskip("ai_edge_litert")
    options = {"fp32": {}, "fp16": {"half": True}, "int8": {"int8": True, "data": tiny_shapes_yaml, "calib": 4}}
    return {name: export(weights, format="tflite", imgsz=IMGSZ, batch=2, **kw) for name, kw in options.items()}


@pytest.mark.slow
def test_tflite_fp32_and_fp16_compute_what_pytorch_does(tflite_exports, images_and_reference, unfused):
    from yolorep.engine.deploy.tflite import tensor_types

    assert [p.name for p in tflite_exports.values()] == ["w.tflite", "w_fp16.tflite", "w_int8.tflite"]
    for precision in ("fp32", "fp16"):
        backend, check = compared(tflite_exports[precision], images_and_reference, precision)
        assert (backend.precision, backend.names, backend.batch) == (precision, NAMES, 2) and check.ok, check
    assert "float16" not in tensor_types(tflite_exports["fp32"])
    assert tensor_types(tflite_exports["fp16"])["float16"] == conv_count(unfused)  # every convolution's weights


@pytest.mark.slow
def test_tflite_int8_is_full_integer_and_follows_fp32(tflite_exports, images_and_reference):
    from yolorep.engine.deploy.tflite import tensor_types

    types = tensor_types(tflite_exports["int8"])
    assert types["int8"] > types.get("float32", 0)  # the network in int8; the decode tail and the I/O in float
    backend = load_backend(tflite_exports["int8"], "cpu")
    assert backend.precision == "int8" and "4 train images" in backend.info.calibration
    x, expected = images_and_reference
    agreement = int8_agreement(expected, backend(x))
    assert agreement["box_iou"] > 0.9 and agreement["score_mean"] < 0.01, agreement


@pytest.mark.slow
def test_tflite_metadata_round_trip(tflite_exports):
    from yolorep.engine.deploy.tflite import read_tflite_metadata, write_tflite_metadata

    data = tflite_exports["fp32"].read_bytes()
    assert json.loads(read_tflite_metadata(data, "x"))["names"] == json.dumps(NAMES)
    rewritten = write_tflite_metadata(data, {"yolorep": "9", "names": "[]"})
    assert json.loads(read_tflite_metadata(rewritten, "x")) == {"yolorep": "9", "names": "[]"}  # replaced, not added


def test_tflite_foreign_file_is_refused(tmp_path):
    pytest.importorskip("ai_edge_litert")
    (tmp_path / "junk.tflite").write_bytes(b"\0" * 64)
    with pytest.raises(YolorepError, match="junk.tflite: not a TFLite model"):
        load_backend(tmp_path / "junk.tflite", "cpu")


def test_tflite_int8_needs_data(weights):
    skip_without("litert_torch")
    with pytest.raises(YolorepError, match="--int8: calibration needs images; add --data"):
        export(weights, format="tflite", imgsz=IMGSZ, int8=True)


# CoreML ------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def coreml_exports(weights):
    pytest.importorskip("coremltools")
    return {True: export(weights, format="coreml", imgsz=IMGSZ, batch=2, half=True)}


def test_coreml_program_is_the_fused_network_with_fp16_weights(coreml_exports, unfused):
    from yolorep.engine.deploy.coreml import coreml_program

    fp16 = coreml_exports[True]
    assert fp16.name == "w_fp16.mlpackage" and (fp16 / "Manifest.json").is_file()
    program = coreml_program(fp16)
    assert program["ops"]["conv"] == conv_count(unfused) and "batch_norm" not in program["ops"]
    assert program["weight_types"] == {"FLOAT16": conv_count(unfused)}
    assert program["inputs"] == {"images": [2, 3, IMGSZ, IMGSZ]}
    assert program["outputs"] == {"output0": [2, 84, 4 + len(NAMES)]}  # 84 anchors at 64 px


def test_coreml_weights_are_the_fused_models(coreml_exports, weights):
    """Every fused convolution's weight and bias, as stored in the package: PyTorch's rounded to fp16, exactly."""
    ct = pytest.importorskip("coremltools")
    stored = ct.optimize.coreml.get_weights_metadata(
        ct.models.MLModel(str(coreml_exports[True]), skip_model_load=True), weight_threshold=1
    )
    state = load_fused(weights).state_dict()  # keys "model.layers.0.conv.weight" ...
    convs = [key for key in state if key.endswith((".weight", ".bias")) and state[key].dim() in (1, 4)]
    checked = 0
    for key in convs:
        name = "p_" + key.replace(".", "_") + "_to_fp16"
        if name in stored:
            np.testing.assert_array_equal(stored[name].val, state[key].half().numpy())
            checked += 1
    assert checked >= 2 * conv_count(yolorep.load(weights)) - 3, checked  # every weight and (nearly) every bias


def test_coreml_metadata_and_running_elsewhere(coreml_exports):
    from yolorep.engine.deploy.coreml import read_coreml_metadata

    meta = read_coreml_metadata(coreml_exports[True])
    assert json.loads(meta["names"]) == NAMES and meta["precision"] == "fp16" and meta["batch"] == "2"
    if FORMATS["coreml"].runs_here():
        pytest.skip("on macOS the package runs; the export check compares it with PyTorch")
    with pytest.raises(YolorepError, match="CoreML models run on macOS and iOS only"):
        load_backend(coreml_exports[True], "cpu")


@pytest.mark.slow
def test_coreml_cli_export_in_fp32_says_it_was_not_run(unfused, tmp_path, caplog):
    pytest.importorskip("coremltools")
    from yolorep.engine.deploy.coreml import coreml_program

    caplog.set_level(logging.INFO)
    weights = yolorep.save(unfused, tmp_path / "cli.pt")
    code = main(["export", "--weights", str(weights), "--format", "coreml", "--imgsz", str(IMGSZ)])
    assert code == 0 and "CoreML program: " in caplog.text
    assert coreml_program(tmp_path / "cli.mlpackage")["weight_types"] == {"FLOAT32": conv_count(unfused)}
    if not FORMATS["coreml"].runs_here():
        assert f"coreml does not run on {sys.platform}; outputs not checked here" in caplog.text
