"""Deploying what was trained: every export format (fp32 and INT8) scored by ``val`` and run by ``Detector`` exactly
like the checkpoint it came from, on the tiny trained model at 64 px."""

import importlib.util
import json

import cv2
import numpy as np
import pytest
import torch
from torchvision.ops import box_iou

import yolorep
from yolorep.benchmark.command import randomize_for_check
from yolorep.cli import main
from yolorep.datasets.spec import load_data_spec
from yolorep.engine.deploy import FORMATS as DEPLOY_FORMATS
from yolorep.engine.deploy import export, load_backend
from yolorep.engine.deploy.openvino import find_openvino_xml, read_rt_metadata
from yolorep.engine.predict.predictor import Detector
from yolorep.engine.val.validator import Validator, build_eval_loader, coco_ground_truth, default_eval_settings, val
from yolorep.evaluation import COCOEvaluator, MetricsEvaluator
from yolorep.ops.nms import NMSSettings

pytest.importorskip("onnxruntime")
pytest.importorskip("openvino")
pytest.importorskip("nncf")

pytestmark = pytest.mark.usefixtures("one_thread")

IMGSZ = 64
# (export format, int8): the formats yolorep exports and runs on a CPU, each at the fixed shape [2, 3, 64, 64]
FORMATS = {
    "onnx": ("onnx", False),
    "torchscript": ("torchscript", False),
    "openvino": ("openvino", False),
    "ncnn": ("ncnn", False),
    "tflite": ("tflite", False),
    "onnx-int8": ("onnx", True),
    "openvino-int8": ("openvino", True),
    "tflite-int8": ("tflite", True),
}
# litert-torch converts in a child process that imports JAX: over a minute per file on 2 busy cores
SLOW = {"tflite", "tflite-int8"}


def params(names):
    """``names`` as pytest parameters, the slow formats marked ``slow`` (run them with ``-m slow``)."""
    return [pytest.param(name, marks=pytest.mark.slow) if name in SLOW else name for name in names]


def installed(fmt: str, int8: bool) -> bool:
    """Whether the packages that export and run ``fmt`` are here (NCNN and TFLite are optional extras)."""
    deploy = DEPLOY_FORMATS[fmt]
    modules = deploy.packages + deploy.runtime + (deploy.int8_packages if int8 else ())
    return all(importlib.util.find_spec(m.split(".")[0]) for m in modules)


@pytest.fixture(scope="module")
def best(trained_tiny, tmp_path_factory):
    """The tiny trained model with random BatchNorm statistics and zero class biases: after 2 epochs its scores all
    sit near 0.002, where 1e-7 differences reorder near-ties and flip which boxes survive NMS; spread over 0..1
    they compare the formats themselves."""
    model = randomize_for_check(yolorep.load(trained_tiny / "weights" / "best.pt"), seed=0)
    settings = {key: model.meta[key] for key in ("train_args", "eval_args")}  # the training size (64), as trained
    return yolorep.save(model, tmp_path_factory.mktemp("deploy") / "best.pt", **settings)


class Exports(dict):
    """``FORMATS`` name -> its export, made when a test first asks for it (so the tests that run pay only for their
    formats) and skipped when its optional packages are absent."""

    def __init__(self, best, data):
        super().__init__()
        self.best, self.data = best, data

    def __missing__(self, name):
        fmt, int8 = FORMATS[name]
        if not installed(fmt, int8):
            pytest.skip(f"{name}: its optional packages are not installed")
        precision = "int8" if int8 else "fp32"
        self[name] = export(self.best, format=fmt, imgsz=IMGSZ, batch=2, precision=precision, data=self.data, calib=4)
        return self[name]


@pytest.fixture(scope="module")
def exported(best, tiny_shapes_yaml):
    """Each format, exported at batch 2 (validation at batch 4 then splits each batch; 6 images leave a partial
    one), INT8 calibrated on 4 train images."""
    return Exports(best, tiny_shapes_yaml)


@pytest.fixture(scope="module")
def square_reference(best, tiny_shapes_yaml, tmp_path_factory):
    """The checkpoint's metrics and predictions on the square 64 x 64 batches a fixed-shape export is scored on."""
    save_dir = tmp_path_factory.mktemp("reference")
    dataset, loader = build_eval_loader(load_data_spec(tiny_shapes_yaml), "val", IMGSZ, 4, 32, rect=False)
    evaluators = [
        MetricsEvaluator(list(dataset.names)),
        COCOEvaluator(coco_ground_truth(dataset), list(dataset.category_ids), save_dir),
    ]
    settings = default_eval_settings()
    validator = Validator(
        dataset, loader, evaluators, nms=NMSSettings(settings["conf"], settings["iou"], settings["max_det"])
    )
    metrics = validator(load_backend(best, "cpu"))
    assert metrics["map50_95"] > 0  # something to compare
    return metrics, json.loads((save_dir / "predictions.json").read_text())


def top_detections(predictions, n):
    """image_id -> its ``n`` best detections as (score, category, xyxy)."""
    by_image = {}
    for p in sorted(predictions, key=lambda p: -p["score"]):
        x, y, w, h = p["bbox"]
        by_image.setdefault(p["image_id"], []).append((p["score"], p["category_id"], [x, y, x + w, y + h]))
    return {image: found[:n] for image, found in by_image.items()}


@pytest.fixture(scope="module")
def square_images(tiny_shapes_yaml, tmp_path_factory):
    """The tiny set's validation images cropped square: letterboxed to 64 x 64 with no padding, so a rectangular
    (PyTorch) and a fixed-shape (export) pipeline see the same pixels."""
    folder = tmp_path_factory.mktemp("square")
    for path in sorted(load_data_spec(tiny_shapes_yaml).split_dir("val").glob("*.jpg")):
        image = cv2.imread(str(path))
        side = min(image.shape[:2])
        cv2.imwrite(str(folder / path.name), image[:side, :side])
    return folder


@pytest.fixture(scope="module")
def expected_results(best, square_images):
    return Detector(best, device="cpu", conf=0.05, max_det=10).predict(square_images)


def raw_metadata(path):
    """The metadata strings as stored in the file, read with each format's own library."""
    if path.suffix == ".onnx":
        return {p.key: p.value for p in pytest.importorskip("onnx").load(str(path)).metadata_props}
    if path.suffix == ".torchscript":
        extra = {"config.txt": ""}
        torch.jit.load(str(path), _extra_files=extra)
        return json.loads(extra["config.txt"])
    if path.suffix == ".tflite":
        from yolorep.engine.deploy.tflite import read_tflite_metadata

        return json.loads(read_tflite_metadata(path.read_bytes(), str(path)))
    if path.name.endswith("_ncnn_model"):
        return json.loads((path / "metadata.json").read_text())
    import openvino

    return read_rt_metadata(openvino.Core().read_model(str(find_openvino_xml(path))))


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
@pytest.mark.parametrize("name", params(FORMATS))
def test_every_format_carries_its_metadata(name, exported, best):
    names = yolorep.load(best).names
    meta = raw_metadata(exported[name])
    assert json.loads(meta["names"]) == names and json.loads(meta["imgsz"]) == [IMGSZ, IMGSZ]
    assert (meta["stride"], meta["batch"], meta["dynamic"], meta["fused"]) == ("32", "2", "false", "true")
    assert (meta["task"], meta["model"], meta["yolorep"]) == ("detect", "yolorep-n", yolorep.__version__)
    assert meta["precision"] == ("int8" if name.endswith("int8") else "fp32")
    assert meta.get("calibration", "") == ("4 train images of shapes.yaml" if name.endswith("int8") else "")


@pytest.mark.parametrize("name", params(["onnx", "torchscript", "openvino", "ncnn", "tflite"]))
def test_fp32_export_scores_like_the_checkpoint(name, exported, square_reference, tiny_shapes_yaml, tmp_path):
    metrics = val(exported[name], data=tiny_shapes_yaml, batch=4, workers=0, project=tmp_path, name="v")
    expected, expected_predictions = square_reference
    stored = json.loads((tmp_path / "v" / "metrics.json").read_text())
    assert stored["source"] == "pycocotools" and stored["fused"] is True and metrics["images"] == 6
    assert metrics["map50_95"] == pytest.approx(expected["map50_95"], abs=1e-3)
    assert metrics["map50"] == pytest.approx(expected["map50"], abs=1e-3)
    # the detections themselves, not only their summary: each of the reference's 20 best per image is found
    predictions = top_detections(json.loads((tmp_path / "v" / "predictions.json").read_text()), 40)
    for image, reference in top_detections(expected_predictions, 20).items():
        for score, category, box in reference:
            assert any(
                c == category and abs(s - score) < 1e-4 and np.abs(np.subtract(b, box)).max() < 0.05
                for s, c, b in predictions[image]
            ), (name, image, score, category, box)


@pytest.mark.parametrize("name", params(["onnx-int8", "openvino-int8", "tflite-int8"]))
def test_int8_export_scores_and_finds_the_same_boxes(name, exported, square_reference, tiny_shapes_yaml, tmp_path):
    backend = load_backend(exported[name], "cpu")
    assert backend.precision == "int8" and "4 train images" in backend.info.calibration
    metrics = val(exported[name], data=tiny_shapes_yaml, batch=4, workers=0, project=tmp_path, name="v")
    assert metrics["source"] == "pycocotools" and metrics["images"] == 6 and 0 <= metrics["map50_95"] <= 1
    predictions = top_detections(json.loads((tmp_path / "v" / "predictions.json").read_text()), 20)
    ious = []
    for image, reference in top_detections(square_reference[1], 5).items():
        found = torch.tensor([b for _, _, b in predictions[image]])
        ious += box_iou(torch.tensor([b for _, _, b in reference]), found).amax(1).tolist()
    assert np.mean(ious) > 0.8, ious


@pytest.mark.parametrize("name", params(FORMATS))
def test_predict_from_every_format_finds_the_checkpoints_boxes(name, exported, expected_results, square_images):
    expected = expected_results
    detector = Detector(exported[name], device="cpu", conf=0.05, max_det=10)
    assert detector.imgsz == IMGSZ and detector.names == expected[0].names  # read from the file
    results = detector.predict(square_images)
    assert [r.path for r in results] == [r.path for r in expected]
    assert sum(len(r) for r in expected) > 0
    for want, got in zip(expected, results):
        if name.endswith("int8"):  # quantized: the same objects, boxes within a few pixels
            if len(want):
                assert len(got) and box_iou(want.boxes.xyxy, got.boxes.xyxy).amax(1).mean() > 0.8
            continue
        assert len(got) == len(want)
        torch.testing.assert_close(got.boxes.xyxy, want.boxes.xyxy, atol=0.05, rtol=0)
        torch.testing.assert_close(got.boxes.conf, want.boxes.conf, atol=1e-4, rtol=0)
        assert got.boxes.cls.tolist() == want.boxes.cls.tolist()


def test_cli_val_of_a_dynamic_export_equals_the_checkpoint(best, tiny_shapes_yaml, tmp_path):
    """A --dynamic export is scored on the same rectangular batches as the checkpoint: the same numbers."""
    onnx_path = export(best, format="onnx", imgsz=IMGSZ, dynamic=True)
    common = ["--data", str(tiny_shapes_yaml), "--batch", "4", "--workers", "0", "--project", str(tmp_path)]
    assert main(["val", "--weights", str(best), "--name", "pt", *common]) == 0
    assert main(["val", "--weights", str(onnx_path), "--name", "onnx", *common]) == 0
    pt, onnx = (json.loads((tmp_path / name / "metrics.json").read_text()) for name in ("pt", "onnx"))
    assert onnx["coco_stats"] == pytest.approx(pt["coco_stats"], abs=1e-3)
    assert onnx["map50_95"] == pytest.approx(pt["map50_95"], abs=1e-3)
