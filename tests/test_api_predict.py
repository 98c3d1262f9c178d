"""``YOLO`` as an ultralytics user drives it: ``predict`` in a loop keeps one fused model, exported models load, the
ultralytics names (``task``, ``ckpt_path``, ``trainer``, ``metrics.box``, ``results_dict``, ``fitness``), and
``predict(save=..., verbose=...)``."""

from __future__ import annotations

import logging

import cv2
import numpy as np
import pytest
import torch

import yolorep
from yolorep.benchmark.command import randomize_for_check
from yolorep.engine.deploy import export
from yolorep.engine.predict.results import Boxes, Results
from yolorep.errors import YolorepError

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def best(trained_tiny):
    return trained_tiny / "weights" / "best.pt"


@pytest.fixture(scope="module")
def image(tiny_shapes_yaml):
    return sorted((tiny_shapes_yaml.parent / "shapes" / "images" / "val").glob("*.jpg"))[0]


def test_predict_in_a_loop_loads_and_fuses_once(best, image, caplog):
    model = yolorep.YOLO(best, verbose=False)
    caplog.set_level(logging.INFO, logger="yolorep")
    frame = cv2.imread(str(image))
    counts = [len(model(frame, conf=0.0, max_det=m, device="cpu")[0]) for m in (2, 3, 4)]
    assert counts == [2, 3, 4]  # the settings of each call apply to the kept predictor
    predictor = model.predictor
    model.predict(image, conf=0.0, max_det=1, device="cpu", imgsz=96)
    assert model.predictor is predictor and predictor.imgsz == 96
    assert caplog.text.count("fused ") == 1


def test_predict_save_and_verbose(best, image, tmp_path, caplog):
    model = yolorep.YOLO(best, verbose=False)
    caplog.set_level(logging.INFO, logger="yolorep")
    (result,) = model.predict(image, conf=0.0, max_det=3, device="cpu", save=True, project=tmp_path, name="p")
    assert result.save_dir == str(tmp_path / "p") and (tmp_path / "p" / image.name).is_file()
    assert f"image 1/1 {image}: 64x64 " in caplog.text  # one line per image, as ultralytics prints
    caplog.clear()
    (quiet,) = model.predict(image, conf=0.0, max_det=3, device="cpu", verbose=False)
    assert quiet.save_dir is None and "image 1/1" not in caplog.text
    with pytest.raises(YolorepError, match="unknown option 'sve'; did you mean save"):
        model.predict(image, sve=True)


def test_ultralytics_names_on_the_model_and_the_metrics(best, tiny_shapes_yaml, tmp_path):
    model = yolorep.YOLO(best, verbose=False)
    assert model.task == "detect" and model.ckpt_path == str(best) and model.trainer is None
    assert dict(model.names.items())[1] == model.names[1] == "rectangle"
    metrics = model.val(data=str(tiny_shapes_yaml), batch=4, workers=0, device="cpu", project=tmp_path)
    box = metrics.box
    assert (box.map, box.map50, box.map75) == (metrics.map50_95, metrics.map50, metrics.map75)
    assert (box.mp, box.mr) == (metrics.precision, metrics.recall)
    per_class = {row["class"]: row["map50_95"] for row in metrics.per_class}
    assert len(box.maps) == 6 and all(box.maps[c] == ap for c, ap in per_class.items())
    assert all(box.maps[c] == box.map for c in range(6) if c not in per_class)
    assert metrics.fitness == pytest.approx(0.9 * metrics.map50_95 + 0.1 * metrics.map50)
    assert metrics.results_dict == {
        "metrics/precision(B)": metrics.precision, "metrics/recall(B)": metrics.recall,
        "metrics/mAP50(B)": metrics.map50, "metrics/mAP50-95(B)": metrics.map50_95, "fitness": metrics.fitness,
    }  # fmt: skip


def test_train_keeps_its_trainer(tiny_shapes_yaml, tmp_path):
    from helpers import TINY_HYP

    model = yolorep.YOLO("yolorep-n.yaml", verbose=False)
    model.train(data=str(tiny_shapes_yaml), epochs=1, imgsz=64, batch=4, workers=0, device="cpu",
                project=str(tmp_path), name="run", **TINY_HYP)  # fmt: skip
    assert type(model.trainer).__name__ == "Trainer" and model.trainer.save_dir == tmp_path / "run"
    assert model.ckpt_path == str(tmp_path / "run" / "weights" / "best.pt")


FORMATS = {"onnx": "onnxruntime", "torchscript": "torch", "openvino": "openvino"}


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
@pytest.mark.parametrize("fmt", list(FORMATS))
def test_an_exported_model_predicts_and_validates_like_its_checkpoint(fmt, best, image, tiny_shapes_yaml, tmp_path):
    pytest.importorskip(FORMATS[fmt])
    # spread scores over 0..1 (after 2 epochs they all sit near 0.002, where float differences between formats
    # reorder near-ties); saved here, as exports are written beside the checkpoint
    model = randomize_for_check(yolorep.load(best), seed=0)
    own = yolorep.save(model, tmp_path / "best.pt", **{k: model.meta[k] for k in ("train_args", "eval_args")})
    checkpoint = yolorep.YOLO(own, verbose=False)
    path = export(own, format=fmt, imgsz=64, dynamic=fmt != "openvino", precision="fp32")  # exact on any CPU
    exported = yolorep.YOLO(path, verbose=False)
    assert exported.ckpt_path == str(path) and exported.names == checkpoint.names and fmt in repr(exported)
    square = cv2.imread(str(image))[:64, :64]  # a fixed 64 x 64 export and the checkpoint see the same pixels
    expected = checkpoint(square, conf=0.05, device="cpu")[0]
    found = exported(square, conf=0.05, device="cpu")[0]
    assert len(found) == len(expected) > 0
    torch.testing.assert_close(found.boxes.data, expected.boxes.data, atol=1e-2, rtol=1e-3)
    assert exported.info()["format"] == fmt and exported.fuse() is exported
    metrics = exported.val(data=str(tiny_shapes_yaml), batch=4, workers=0, device="cpu", project=tmp_path)
    assert 0 <= metrics.box.map <= 1 and metrics.images == 6
    with pytest.raises(YolorepError, match=f"train: {path} is an exported {fmt} model, which cannot be trained"):
        exported.train(data=str(tiny_shapes_yaml), epochs=1)
    with pytest.raises(YolorepError, match="cannot be exported again"):
        exported.export(format="onnx")


def test_results_in_numpy_and_track_ids(best, image):
    (result,) = yolorep.YOLO(best, verbose=False)(image, conf=0.0, max_det=3, device="cpu")
    as_numpy = result.numpy()
    np.testing.assert_allclose(as_numpy.boxes.xywhn, result.boxes.xywhn.numpy(), rtol=1e-6)
    assert as_numpy.boxes.cls.dtype == np.int64 and as_numpy.orig_img is result.orig_img
    tracked = Boxes(result.boxes.data, result.orig_shape, id=torch.tensor([7, 8, 9]))
    assert tracked.is_track and tracked[1:].id.tolist() == [8, 9]
    rows = Results(tracked, result.names, result.orig_shape, result.path).summary()
    assert [r["track_id"] for r in rows] == [7, 8, 9]
