"""``yolorep benchmark --formats``: exported formats checked, timed side by side and scored, on a tiny model."""

import json
import logging

import pytest

import yolorep
from yolorep.benchmark.command import randomize_for_check
from yolorep.benchmark.formats import parse_formats
from yolorep.cli import main
from yolorep.errors import ArgumentError

pytest.importorskip("onnxruntime")

pytestmark = pytest.mark.usefixtures("one_thread")


def test_parse_formats_puts_the_reference_first():
    assert parse_formats("onnx, openvino-int8,onnx") == ["torch", "onnx", "openvino-int8"]
    with pytest.raises(
        ArgumentError, match=r"--formats onnx,caffe: unknown format \['caffe'\]; use auto or some of torch"
    ):
        parse_formats("onnx,caffe")
    # every deploy format, its INT8 form where it quantizes and its fp16 form where it has --half
    assert parse_formats("ncnn-fp16,tflite-int8,tflite-fp16,coreml-fp16,tensorrt-int8") == [
        "torch", "ncnn-fp16", "tflite-int8", "tflite-fp16", "coreml-fp16", "tensorrt-int8",
    ]  # fmt: skip
    with pytest.raises(ArgumentError, match="unknown format"):
        parse_formats("ncnn-int8")  # NCNN has no INT8 export


def test_formats_table_with_map(trained_tiny, tiny_shapes_yaml, tmp_path, caplog):
    # random BatchNorm statistics spread the barely trained model's scores (all near 0.002, where 1e-7 differences
    # reorder near-ties) so the two formats' mAP compare the formats, not rounding
    model = randomize_for_check(yolorep.load(trained_tiny / "weights" / "best.pt"), seed=0)
    weights = yolorep.save(model, tmp_path / "best.pt", eval_args=model.meta["eval_args"])
    caplog.set_level(logging.INFO)
    code = main(["benchmark", "--formats", "onnx", "--weights", str(weights), "--data", str(tiny_shapes_yaml),
                 "--imgsz", "64", "--iters", "4", "--warmup", "1", "--device", "cpu", "--out", str(tmp_path / "b"),
                 "--json", str(tmp_path / "formats.json")])  # fmt: skip
    assert code == 0
    result = json.loads((tmp_path / "formats.json").read_text())
    torch_row, onnx_row = result["rows"]
    assert [torch_row["format"], onnx_row["format"]] == ["torch", "onnx"] and result["scored"]
    assert torch_row["speedup"] == 1.0 and onnx_row["speedup"] > 0 and onnx_row["ms"] > 0
    assert onnx_row["max_box_diff_px"] < 0.05 and onnx_row["max_score_diff"] < 1e-4 and onnx_row["top100_iou"] > 0.99
    assert torch_row["map50_95"] > 0 and abs(onnx_row["map_diff"]) < 1e-3 and torch_row["val_images"] == 6
    assert (tmp_path / "b" / "formats" / "best.onnx").is_file() and weights.with_suffix(".onnx").exists() is False
    assert "yolorep benchmark --formats" in caplog.text and "mAP50-95" in caplog.text


def test_int8_formats_need_data(caplog):
    assert main(["benchmark", "--formats", "onnx-int8", "--imgsz", "64", "--device", "cpu"]) == 2
    assert "INT8 formats need calibration images; add --data DATA.yaml" in caplog.text


@pytest.mark.slow  # two pnnx conversions and the timing rounds: half a minute on 2 cores
def test_ncnn_fp32_and_fp16_side_by_side(tmp_path):
    """An fp16 form exported on the CPU beside its fp32 form, both checked against PyTorch and timed."""
    pytest.importorskip("pnnx")
    pytest.importorskip("ncnn")
    code = main(["benchmark", "--formats", "ncnn,ncnn-fp16", "--model", "yolorep-n.yaml", "--imgsz", "64", "--iters",
                 "2", "--warmup", "1", "--device", "cpu", "--out", str(tmp_path / "b"), "--json",
                 str(tmp_path / "f.json")])  # fmt: skip
    assert code == 0
    rows = {row["format"]: row for row in json.loads((tmp_path / "f.json").read_text())["rows"]}
    assert (rows["ncnn"]["precision"], rows["ncnn-fp16"]["precision"]) == ("fp32", "fp16")
    assert rows["ncnn"]["max_box_diff_px"] < 0.05 and rows["ncnn"]["top100_iou"] > 0.99
    assert 0 < rows["ncnn-fp16"]["max_box_diff_px"] < 0.64 and rows["ncnn-fp16"]["ms"] > 0  # fp16 tolerance at 64
    assert {p.name for p in (tmp_path / "b" / "formats").iterdir()} >= {
        "yolorep-n_ncnn_model",
        "yolorep-n_fp16_ncnn_model",
    }
