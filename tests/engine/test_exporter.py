import json
import logging

import pytest
import torch
from torch import nn

import yolorep
from yolorep.cli import main
from yolorep.engine.deploy import ExportJob, export
from yolorep.engine.deploy.tolerance import Check
from yolorep.engine.deploy.torchscript import device_constants, export_torchscript
from yolorep.engine.metadata import ModelMetadata
from yolorep.errors import YolorepError
from yolorep.nn import DecodedModel, randomize_batchnorm
from yolorep.nn.modules.conv import Conv
from yolorep.nn.modules.repvgg import RepVGGBlock

onnx = pytest.importorskip("onnx")


def _agrees(expected: torch.Tensor, actual: torch.Tensor) -> bool:
    """Within the fp32 tolerance every export is checked against (``tolerance.TOLERANCES``)."""
    return Check.of("export", actual, expected, "fp32", max(IMGSZ, 128)).ok


ort = pytest.importorskip("onnxruntime")

IMGSZ = 64


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def unfused():
    model = randomize_batchnorm(yolorep.build_model("yolorep-n.yaml", nc=3), seed=1).eval()
    model.names = ["circle", "square", "triangle"]
    return model


@pytest.fixture(scope="module")
def reference(unfused):
    """The unfused model's output on a fixed input: the export must reproduce the multi-branch model."""
    x = torch.rand(2, 3, IMGSZ, IMGSZ, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        return x, unfused.decode(unfused(x))


@pytest.fixture
def weights(unfused, tmp_path):
    return yolorep.save(unfused, tmp_path / "w.pt")


def expected_conv_count(model):
    """One Conv per RepVGGBlock and per Conv module, plus the head's 1x1 prediction convs (counted unfused)."""
    pred = sum(isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1) and m.bias is not None for m in model.modules())
    return sum(isinstance(m, (RepVGGBlock, Conv)) for m in model.modules()) + pred


def test_onnx_export_cli(unfused, reference, weights, caplog):
    caplog.set_level(logging.INFO)
    assert main(["export", "--weights", str(weights), "--format", "onnx", "--imgsz", str(IMGSZ), "--batch", "2"]) == 0
    path = weights.with_suffix(".onnx")
    graph = onnx.load(str(path))
    ops = [node.op_type for node in graph.graph.node]
    assert "BatchNormalization" not in ops
    assert ops.count("Conv") == expected_conv_count(unfused)
    meta = {p.key: p.value for p in graph.metadata_props}
    assert json.loads(meta["names"]) == unfused.names and meta["stride"] == "32"
    assert json.loads(meta["imgsz"]) == [IMGSZ, IMGSZ]
    assert [i.name for i in graph.graph.input] == ["images"] and [o.name for o in graph.graph.output] == ["output0"]
    x, expected = reference
    (actual,) = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"images": x.numpy()})
    assert _agrees(expected, torch.from_numpy(actual))
    assert "onnx check on" in caplog.text and "Conv" in caplog.text


def test_onnx_dynamic_runs_at_two_sizes(reference, weights):
    path = export(weights, format="onnx", imgsz=IMGSZ, dynamic=True)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x, expected = reference
    fused = DecodedModel(yolorep.load(weights).fuse())
    for images in (x, torch.rand(1, 3, 96, 128)):
        (actual,) = session.run(None, {"images": images.numpy()})
        with torch.no_grad():
            want = fused(images)
        assert actual.shape == tuple(want.shape)
        assert _agrees(want, torch.from_numpy(actual))


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
def test_torchscript_reloads_and_matches(unfused, reference, weights):
    path = export(weights, format="torchscript", imgsz=IMGSZ)
    assert path == weights.with_suffix(".torchscript")
    extra = {"config.txt": ""}
    loaded = torch.jit.load(str(path), _extra_files=extra)
    meta = json.loads(extra["config.txt"])
    assert json.loads(meta["names"]) == unfused.names and meta["stride"] == "32"
    x, expected = reference
    with torch.no_grad():
        assert _agrees(expected, loaded(x))


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
def test_torchscript_traced_on_the_cpu_holds_no_device_constant(weights):
    """A device in the graph (a traced ``torch.arange(..., device=...)``) survives ``map_location``: a CPU export
    would then fail on a GPU with "Expected all tensors to be on the same device"."""
    path = export(weights, format="torchscript", imgsz=IMGSZ, device="cpu")
    loaded = torch.jit.load(str(path), map_location="cpu")
    assert device_constants(loaded) == []
    kinds = {node.kind() for node in loaded.inlined_graph.nodes()}
    assert "aten::cumsum" in kinds and "aten::arange" not in kinds  # anchors and DFL bins from the input's device


class _FrozenDevice(nn.Module):
    def forward(self, x):
        return x + torch.arange(x.shape[-1], device=x.device)


@pytest.mark.filterwarnings("ignore::FutureWarning")  # torch.jit deprecation notices
def test_torchscript_export_refuses_a_graph_bound_to_its_device(tmp_path):
    traced = torch.jit.trace(_FrozenDevice(), torch.zeros(2, 3))
    assert device_constants(traced) == ["cpu"]
    with pytest.raises(YolorepError, match=r"device constants \(cpu\), so m.torchscript would run only on cpu"):
        job = ExportJob(_FrozenDevice(), torch.zeros(2, 3), tmp_path / "m.torchscript", ModelMetadata(("a",), 1), 17)
        export_torchscript(job)
    assert not (tmp_path / "m.torchscript").exists()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"half": True}, "--half"),
        ({"imgsz": 50}, "--imgsz 50: must be a positive multiple of the model stride 32; use 32 or 64"),
        ({"format": "tensorflow"}, "--format tensorflow: unknown export format"),
    ],
)
def test_bad_options(weights, kwargs, match):
    with pytest.raises(YolorepError, match=match):
        export(weights, **{"imgsz": IMGSZ, **kwargs})


def test_out_of_tolerance_fails_loudly():
    """Boxes are held to a share of the image size, scores absolutely: a score error is not hidden by pixels."""
    expected = torch.zeros(1, 4, 7)
    expected[..., :4] = 100.0
    actual = expected.clone()
    actual[0, 0, 5] = 0.01
    assert not Check.of("onnx", actual, expected, "fp32", 640).ok
    actual[0, 0, 5] = 0
    actual[0, 0, 0] = 100.05  # 0.05 px at 640: within fp32's 1e-4 of the image size
    assert Check.of("onnx", actual, expected, "fp32", 640).ok
    actual[0, 0, 0] = float("nan")
    assert not Check.of("onnx", actual, expected, "fp32", 640).ok


def test_quantization_friendly_model_exports_fused(tmp_path):
    """yolorep-qa: one Conv per QARepVGGBlock in the graph, no BatchNormalization, outputs of the unfused model."""
    from yolorep.nn.modules.repvgg import QARepVGGBlock

    model = randomize_batchnorm(yolorep.build_model("yolorep-qa-n.yaml", nc=3), seed=4).eval()
    path = export(yolorep.save(model, tmp_path / "qa.pt"), format="onnx", imgsz=IMGSZ)
    ops = [node.op_type for node in onnx.load(str(path)).graph.node]
    pred = sum(isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1) and m.bias is not None for m in model.modules())
    assert "BatchNormalization" not in ops
    assert ops.count("Conv") == sum(isinstance(m, (QARepVGGBlock, Conv)) for m in model.modules()) + pred
    x = torch.rand(1, 3, IMGSZ, IMGSZ)
    (actual,) = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"images": x.numpy()})
    with torch.no_grad():
        assert _agrees(model.decode(model(x)), torch.from_numpy(actual))
