"""The backend layer: metadata written and read back, fixed-shape batching, and one-line errors for files that are
not yolorep exports, missing optional packages and INT8 without calibration data."""

import logging
import sys

import cv2
import numpy as np
import pytest
import torch

import yolorep
from yolorep.cli import main
from yolorep.engine.deploy import export, load_backend
from yolorep.engine.deploy.onnx import ONNXBackend
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
