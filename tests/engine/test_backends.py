"""The backend layer: metadata written and read back, fixed-shape batching, and one-line errors for files that are
not yolorep exports, missing optional packages and INT8 without calibration data."""

import logging
import shutil
import sys

import cv2
import numpy as np
import pytest
import torch

import yolorep
from yolorep.cli import main
from yolorep.engine.deploy import cpu as cpu_module
from yolorep.engine.deploy import export, load_backend
from yolorep.engine.deploy.onnx import ONNXBackend, ort_session, write_onnx_metadata
from yolorep.engine.metadata import ModelMetadata
from yolorep.errors import ArgumentError, YolorepError
from yolorep.nn import randomize_batchnorm

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

pytestmark = pytest.mark.usefixtures("one_thread")

IMGSZ = 64
NAMES = ("circle", "rectangle", "triangle", "ellipse", "star", "cross")  # the tiny shapes set's


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    model = randomize_batchnorm(yolorep.build_model("yolorep-n.yaml", nc=len(NAMES)), seed=1)
    model.names = list(NAMES)
    return yolorep.save(model, tmp_path_factory.mktemp("backends") / "w.pt")


@pytest.fixture(scope="module")
def fixed_onnx(weights):
    return export(weights, format="onnx", imgsz=IMGSZ, batch=2)


@pytest.fixture
def foreign_onnx(tmp_path):
    """A valid ONNX model that yolorep did not write: no metadata."""
    helper = onnx.helper
    graph = helper.make_graph(
        [helper.make_node("Identity", ["images"], ["output0"])],
        "foreign",
        [helper.make_tensor_value_info("images", onnx.TensorProto.FLOAT, [1, 3, 64, 64])],
        [helper.make_tensor_value_info("output0", onnx.TensorProto.FLOAT, [1, 3, 64, 64])],
    )
    path = tmp_path / "foreign.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def test_metadata_round_trips_and_reads_older_files():
    info = ModelMetadata(
        ("a", "b"), 32, 320, batch=4, dynamic=False, precision="int8", model="yolorep-n",
        eval_args={"conf": 0.001, "imgsz": 320}, calibration="64 train images of shapes.yaml",
    )  # fmt: skip
    strings = info.to_strings()
    assert all(isinstance(v, str) for v in strings.values())
    assert ModelMetadata.from_strings(strings, "x.onnx") == info
    # written before fused/precision/task existed: the exporter always exported fused models
    older = {"names": '["a"]', "stride": "32", "imgsz": "[64, 64]", "batch": "1", "dynamic": "false", "half": "true",
             "yolorep": "0.1.0"}  # fmt: skip
    parsed = ModelMetadata.from_strings(older, "old.onnx")
    assert parsed.fused and parsed.precision == "fp16" and parsed.imgsz == 64 and parsed.names == ("a",)
    with pytest.raises(YolorepError, match=r"^bad\.onnx: malformed yolorep metadata"):
        ModelMetadata.from_strings(dict(older, stride="thirty-two"), "bad.onnx")


def test_metadata_is_read_from_the_file(weights, fixed_onnx):
    backend = load_backend(fixed_onnx, "cpu")
    assert isinstance(backend, ONNXBackend) and backend.format == "onnx"
    assert backend.names == list(NAMES) and backend.stride == 32 and backend.imgsz == IMGSZ
    assert (backend.batch, backend.dynamic, backend.fused, backend.precision) == (2, False, True, "fp32")
    assert backend.info.model == "yolorep-n" and backend.info.version == yolorep.__version__


def test_fixed_shape_export_splits_and_pads_any_batch(weights, fixed_onnx):
    reference, backend = load_backend(weights, "cpu"), load_backend(fixed_onnx, "cpu")
    x = torch.rand(5, 3, IMGSZ, IMGSZ)  # exported at batch 2: chunks of 2, 2 and 1 padded to 2
    expected, actual = reference(x), backend(x)
    assert actual.shape == expected.shape == (5, 84, 10) and actual.dtype == torch.float32
    assert (actual - expected).abs().max() < 1e-3
    with pytest.raises(ArgumentError, match=r"exported for a fixed 64x64 input, got 64x96; letterbox to 64x64"):
        backend(torch.rand(2, 3, IMGSZ, 96))
    with pytest.raises(ArgumentError, match=r"^--imgsz 96: .* use --imgsz 64, or export again with --imgsz 96"):
        backend.input_size(96)
    assert backend.input_size(None) == IMGSZ


def test_val_at_another_size_than_a_fixed_export_is_one_line(fixed_onnx, tiny_shapes_yaml, tmp_path, caplog):
    code = main(["val", "--weights", str(fixed_onnx), "--data", str(tiny_shapes_yaml), "--imgsz", "96",
                 "--project", str(tmp_path)])  # fmt: skip
    assert code == 2
    assert "error: --imgsz 96:" in caplog.text and "Traceback" not in caplog.text


def test_foreign_onnx_is_refused_in_one_line(foreign_onnx, tmp_path, caplog):
    with pytest.raises(YolorepError, match=r"foreign\.onnx: no yolorep metadata .* yolorep export"):
        load_backend(foreign_onnx, "cpu")
    cv2.imwrite(str(tmp_path / "image.jpg"), np.zeros((32, 32, 3), np.uint8))
    assert main(["predict", "--weights", str(foreign_onnx), "--source", str(tmp_path), "--device", "cpu"]) == 2
    (line,) = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert "no yolorep metadata" in line and "\n" not in line


def test_unreadable_or_missing_files_are_one_line(tmp_path):
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(YolorepError, match=r"junk\.onnx: onnxruntime cannot load this file"):
        load_backend(tmp_path / "junk.onnx", "cpu")
    with pytest.raises(YolorepError, match=r"missing\.onnx: not found; pass a \.pt checkpoint"):
        load_backend(tmp_path / "missing.onnx", "cpu")


def test_missing_openvino_names_the_extra(weights, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "openvino", None)  # as if not installed: importing it raises ImportError
    folder = tmp_path / "w_openvino_model"
    folder.mkdir()
    with pytest.raises(YolorepError, match=r"needs the openvino package, .*; pip install 'yolorep\[openvino\]'"):
        load_backend(folder, "cpu")
    with pytest.raises(YolorepError, match=r"^--format openvino: needs the openvino package"):
        export(weights, format="openvino", imgsz=IMGSZ)
    assert not weights.with_name("w_openvino_model").exists()  # refused before any work


def test_int8_without_data_is_refused(weights, caplog):
    assert main(["export", "--weights", str(weights), "--format", "onnx", "--int8"]) == 2
    assert "error: --int8: calibration needs images; add --data DATA.yaml" in caplog.text
    assert not weights.with_name("w_int8.onnx").exists()
    with pytest.raises(
        ArgumentError, match="--int8: not available with --format torchscript; use --format onnx or openvino"
    ):
        export(weights, format="torchscript", int8=True, data="data/shapes.yaml")


@pytest.mark.parametrize("dynamic", [False, True])
def test_openvino_outputs_of_successive_calls_are_the_callers(weights, dynamic):
    """Each call's output is the caller's to keep: a later call writes elsewhere, fixed-shape (a tensor per call)
    or dynamic (a copy of the request's buffer)."""
    pytest.importorskip("openvino")
    exported = export(weights, format="openvino", imgsz=IMGSZ, dynamic=dynamic, precision="fp32")
    backend = load_backend(exported, "cpu")
    reference = load_backend(weights, "cpu")
    first, second = torch.rand(1, 3, IMGSZ, IMGSZ), torch.rand(1, 3, IMGSZ, IMGSZ)
    kept = backend(first)
    later = backend(second)
    assert (kept - reference(first)).abs().max() < 1e-3
    assert (later - reference(second)).abs().max() < 1e-3
    assert (kept - later).abs().max() > 1e-2


def _saturating_int8_conv(path):
    """One QDQ convolution whose u8 inputs and s8 weights are all large, so that pairs of products overflow 16 bits:
    the case where ONNX Runtime's u8 x s8 kernels on a CPU without VNNI saturate."""
    helper, numpy_helper = onnx.helper, onnx.numpy_helper
    rng = np.random.default_rng(0)
    weight = rng.integers(60, 128, (8, 16, 3, 3)).astype(np.int8)
    weight[:, :, 1] *= -1
    constants = {
        "x_scale": np.array(1 / 255, np.float32), "x_zero": np.array(0, np.uint8),
        "w": weight, "w_scale": np.full(8, 0.01, np.float32), "w_zero": np.zeros(8, np.int8),
        "y_scale": np.array(0.2, np.float32), "y_zero": np.array(128, np.uint8),
    }  # fmt: skip
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "x_scale", "x_zero"], ["xq"]),
        helper.make_node("DequantizeLinear", ["xq", "x_scale", "x_zero"], ["xd"]),
        helper.make_node("DequantizeLinear", ["w", "w_scale", "w_zero"], ["wd"], axis=0),
        helper.make_node("Conv", ["xd", "wd"], ["conv"], pads=[1, 1, 1, 1]),
        helper.make_node("QuantizeLinear", ["conv", "y_scale", "y_zero"], ["yq"]),
        helper.make_node("DequantizeLinear", ["yq", "y_scale", "y_zero"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes, "saturating", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 16, 8, 8])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)],
        [numpy_helper.from_array(value, name) for name, value in constants.items()],
    )  # fmt: skip
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    x = (0.5 + 0.5 * rng.random((1, 16, 8, 8))).astype(np.float32)
    exact = torch.nn.functional.conv2d(
        torch.from_numpy(np.round(x * 255) / 255), torch.from_numpy(weight.astype(np.float32) * 0.01), padding=1
    ).numpy()
    return x, (np.clip(np.round(exact / 0.2) + 128, 0, 255) - 128) * 0.2  # through the output's QDQ


def test_int8_convolutions_are_exact_on_every_cpu(tmp_path):
    """Measured on an AVX2 EPYC: without session.x64quantprecision this convolution is off by 6.0 of 25.4 (and a
    RepVGG-fused yolorep-n lost 0.061 mAP50-95); ort_session computes it exactly on any CPU."""
    x, expected = _saturating_int8_conv(tmp_path / "conv.onnx")
    (output,) = ort_session(tmp_path / "conv.onnx", torch.device("cpu"), "test").run(None, {"x": x})
    assert np.abs(output - expected).max() < 1e-4


@pytest.mark.parametrize("flags, exact_path", [("avx2 fma", True), ("avx2 avx512f avx512_vnni", False)])
def test_the_exact_int8_path_is_asked_for_only_without_vnni(flags, exact_path, monkeypatch, tmp_path):
    monkeypatch.setattr(cpu_module, "cpu_flags", lambda: frozenset(flags.split()))
    _saturating_int8_conv(tmp_path / "conv.onnx")
    options = ort_session(tmp_path / "conv.onnx", torch.device("cpu"), "test").get_session_options()
    try:
        asked = options.get_session_config_entry("session.x64quantprecision") == "1"
    except RuntimeError:  # onnxruntime raises for a key never set
        asked = False
    assert asked == exact_path


@pytest.mark.parametrize("flags", ["avx2 fma", "avx2 avx512f avx512_vnni"])
def test_an_int8_onnx_file_on_a_cpu_without_vnni_points_to_openvino(flags, fixed_onnx, monkeypatch, tmp_path, caplog):
    monkeypatch.setattr(cpu_module, "cpu_flags", lambda: frozenset(flags.split()))
    path = shutil.copy(fixed_onnx, tmp_path / "w_int8.onnx")
    strings = {prop.key: prop.value for prop in onnx.load(str(path)).metadata_props}
    info = ModelMetadata.from_strings(strings, str(path))
    write_onnx_metadata(path, info.with_precision("int8").to_strings())
    with caplog.at_level(logging.INFO, logger="yolorep.engine.deploy.onnx"):
        assert ONNXBackend(path, torch.device("cpu")).precision == "int8"
    advised = "this CPU has no VNNI (AVX2); ONNX Runtime computes INT8 exactly here but little faster than fp32"
    assert (advised in caplog.text) == ("vnni" not in flags)
