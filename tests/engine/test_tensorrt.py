"""TensorRT: what runs without a GPU (the engine file and its metadata, the ONNX graphs TensorRT builds from, INT8
calibration as explicit symmetric Q/DQ checked with ONNX Runtime, the clean refusals) and, where a GPU and the
tensorrt package are present, the engine built and compared with PyTorch."""

import json

import numpy as np
import pytest
import torch

import yolorep
from yolorep.cli import main
from yolorep.engine.deploy import ExportJob, export, load_backend
from yolorep.engine.deploy.pytorch import load_fused
from yolorep.engine.deploy.quantize import calibration_batches, int8_agreement
from yolorep.engine.deploy.tensorrt import MAGIC, read_engine_file, tensorrt_onnx, write_engine_file
from yolorep.engine.deploy.tolerance import Check
from yolorep.engine.metadata import metadata_of
from yolorep.errors import YolorepError
from yolorep.nn import randomize_batchnorm

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

pytestmark = pytest.mark.usefixtures("one_thread")

IMGSZ = 64
GPU = torch.cuda.is_available()


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    model = randomize_batchnorm(yolorep.build_model("yolorep-n.yaml", nc=3), seed=5).eval()
    model.names = ["a", "b", "c"]
    return yolorep.save(model, tmp_path_factory.mktemp("trt") / "w.pt")


def job_for(weights, path, calibration=None):
    model = load_fused(weights)
    info = metadata_of(model, "fp32")
    if calibration is not None:
        info = info.with_precision("int8", f"{sum(len(b) for b in calibration)} images")
    return ExportJob(model, torch.zeros(2, 3, IMGSZ, IMGSZ), path, info, 17, calibration)


def run_onnx(path, x):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return torch.from_numpy(session.run(None, {"images": x.numpy()})[0])


def test_engine_file_carries_the_metadata_before_the_plan(weights, tmp_path):
    strings = metadata_of(load_fused(weights), "fp16").to_strings()
    path = tmp_path / "w.engine"
    write_engine_file(path, b"\x00plan bytes\xff", strings)
    data = path.read_bytes()
    assert data.startswith(MAGIC) and data.endswith(b"\x00plan bytes\xff")
    assert read_engine_file(data, "w.engine") == (strings, b"\x00plan bytes\xff")
    with pytest.raises(YolorepError, match="w.engine: no yolorep metadata .* --format tensorrt --device 0"):
        read_engine_file(b"\x00plan bytes\xff", "w.engine")  # a plain TensorRT plan, as trtexec writes
    with pytest.raises(YolorepError, match="truncated"):
        read_engine_file(data[: len(MAGIC) + 10], "w.engine")
    with pytest.raises(YolorepError, match=r"malformed yolorep metadata \(engine header"):
        read_engine_file(MAGIC + (2).to_bytes(4, "little") + b"[]", "w.engine")


def test_the_engine_loads_only_on_a_gpu(weights, tmp_path):
    path = tmp_path / "w.engine"
    write_engine_file(path, b"plan", metadata_of(load_fused(weights), "fp32").to_strings())
    with pytest.raises(YolorepError, match="runs on the NVIDIA GPU it was built for; add --device 0"):
        load_backend(path, "cpu")


def test_fp32_graph_for_tensorrt_is_the_plain_export(weights, tmp_path):
    job = job_for(weights, tmp_path / "unused.engine")
    path = tensorrt_onnx(job, tmp_path / "fp32.onnx")
    x = torch.rand(2, 3, IMGSZ, IMGSZ, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert Check.of("onnx", run_onnx(path, x), job.model(x), "fp32", IMGSZ).ok


def test_int8_graph_for_tensorrt_is_symmetric_int8_and_follows_fp32(weights, tiny_shapes_yaml, tmp_path):
    """TensorRT takes INT8 only as explicit quantization: signed int8 Q/DQ with zero points 0 in the network, the
    decode tail in fp32, biases unquantized; ONNX Runtime runs the same graph here."""
    calibration = calibration_batches(tiny_shapes_yaml, IMGSZ, 2, 4, 32)
    job = job_for(weights, tmp_path / "unused.engine", calibration)
    graph = onnx.load(str(tensorrt_onnx(job, tmp_path / "int8.onnx"))).graph
    initializers = {t.name: onnx.numpy_helper.to_array(t) for t in graph.initializer}
    quantize = [n for n in graph.node if n.op_type == "QuantizeLinear"]
    assert len(quantize) >= 40
    for node in quantize:
        zero_point = initializers[node.input[2]]
        assert zero_point.dtype == np.int8 and not zero_point.any(), node.name
    dequantized = {initializers[n.input[0]].dtype for n in graph.node if n.op_type == "DequantizeLinear"
                   if n.input[0] in initializers}  # fmt: skip
    assert dequantized == {np.dtype(np.int8)}  # weights int8; no int32 bias
    # what is quantized is the network's (or the input image): no tensor of the decode tail
    producers = {output: node.name for node in graph.node for output in node.output}
    quantized_from = {producers.get(node.input[0], "graph input or weight") for node in quantize}
    assert not [name for name in quantized_from if name.startswith("/") and not name.startswith("/model/")]
    images = torch.from_numpy(np.concatenate(calibration))
    with torch.no_grad():
        agreement = int8_agreement(job.model(images), run_onnx(tmp_path / "int8.onnx", images))
    assert agreement["box_iou"] > 0.9 and agreement["score_mean"] < 0.01, agreement


def test_export_without_a_gpu_fails_in_one_line(weights, caplog):
    if GPU:
        pytest.skip("a GPU is present")
    code = main(["export", "--weights", str(weights), "--format", "tensorrt", "--imgsz", str(IMGSZ)])
    assert code == 2
    assert "needs the tensorrt package" in caplog.text or "needs a CUDA device" in caplog.text
    assert "Traceback" not in caplog.text


@pytest.mark.skipif(not GPU, reason="TensorRT builds engines on a GPU")
@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_engine_on_the_gpu_computes_what_pytorch_does(precision, weights, tiny_shapes_yaml):
    pytest.importorskip("tensorrt")
    options = {"fp16": {"half": True}, "int8": {"int8": True, "data": tiny_shapes_yaml, "calib": 4}}
    path = export(weights, format="tensorrt", imgsz=IMGSZ, batch=2, device="0", **options.get(precision, {}))
    backend = load_backend(path, "0")
    assert backend.precision == precision and json.loads(json.dumps(backend.names)) == ["a", "b", "c"]
    x = torch.rand(3, 3, IMGSZ, IMGSZ, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = load_fused(weights)(x)
    actual = backend(x).cpu()
    if precision == "int8":
        assert int8_agreement(expected, actual)["box_iou"] > 0.9
    else:
        assert Check.of("tensorrt", actual, expected, precision if precision == "fp16" else "tf32", IMGSZ).ok
