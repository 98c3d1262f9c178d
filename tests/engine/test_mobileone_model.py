"""yolorep-mobileone goes through the same life as yolorep: trained, scored, fused and exported (tiny sizes)."""

from pathlib import Path

import pytest
import torch
from helpers import TINY_HYP
from torch import nn

import yolorep
from yolorep.engine.deploy import export
from yolorep.engine.deploy.tolerance import Check
from yolorep.engine.train.setup import train
from yolorep.nn import MobileOneBlock
from yolorep.nn.modules.conv import Conv

pytestmark = pytest.mark.usefixtures("one_thread")


def test_mobileone_model_trains_fuses_and_exports(tiny_shapes_yaml, tmp_path):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    results = train(
        model="yolorep-mobileone-n.yaml", data=tiny_shapes_yaml, epochs=1, imgsz=64, batch=4, device="cpu",
        workers=0, project=tmp_path, name="mobileone", hyp=dict(TINY_HYP), optimizer="auto",
    )  # fmt: skip
    assert 0.0 <= results["map50_95"] <= 1.0 and results["fused"]
    best = Path(results["save_dir"]) / "weights" / "best.pt"
    model = yolorep.load(best)
    assert not model.is_fused and any(isinstance(m, MobileOneBlock) for m in model.modules())
    path = export(best, format="onnx", imgsz=64)
    ops = [node.op_type for node in onnx.load(str(path)).graph.node]
    pred = sum(isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1) and m.bias is not None for m in model.modules())
    assert "BatchNormalization" not in ops
    assert ops.count("Conv") == sum(isinstance(m, (MobileOneBlock, Conv)) for m in model.modules()) + pred
    x = torch.rand(1, 3, 64, 64)
    (actual,) = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"images": x.numpy()})
    with torch.no_grad():
        assert Check.of("onnx", torch.from_numpy(actual), model.decode(model(x)), "fp32", max(x.shape[2:])).ok
