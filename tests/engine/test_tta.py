"""Test-time augmentation: every view's boxes come back to the input's pixels, on dynamic and fixed-shape backends,
and ``val --augment`` / ``predict --augment`` run it."""

import json

import numpy as np
import pytest
import torch

from yolorep.engine.deploy import load_backend
from yolorep.engine.predict.predictor import Detector
from yolorep.engine.predict.tta import TTA_VIEWS, AugmentedBackend
from yolorep.engine.val.validator import val
from yolorep.options import PredictOptions

pytestmark = pytest.mark.usefixtures("one_thread")


class BrightBoxModel(torch.nn.Module):
    """Finds the bright (> 0.7) pixels of each image and returns their bounding box, class 0 score 0.9:
    [B, 1, 4 + 1], xyxy in input pixels, as a detector's decoded output."""

    names = ["bright"]
    stride = torch.tensor([8.0, 16.0, 32.0])

    def forward(self, x):
        self.shapes = [*getattr(self, "shapes", []), tuple(x.shape)]
        out = torch.zeros(x.shape[0], 1, 5)
        for i, image in enumerate(x):
            ys, xs = torch.nonzero(image.mean(0) > 0.7, as_tuple=True)
            out[i, 0, :4] = torch.stack((xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)).float()
        out[..., 4] = 0.9
        return out


def bright_square(h=64, w=96, box=(50, 10, 80, 30)):
    x = torch.full((1, 3, h, w), 0.2)
    x1, y1, x2, y2 = box
    x[..., y1:y2, x1:x2] = 1.0
    return x


def test_every_view_finds_the_box_where_it_is_in_the_input():
    net = BrightBoxModel()
    augmented = AugmentedBackend(load_backend(net, "cpu"))
    out = augmented(bright_square())
    assert out.shape == (1, len(TTA_VIEWS), 5)
    # scaled views are padded right and bottom to a stride multiple: 0.83 -> 53 x 80 -> 64 x 96
    assert net.shapes == [(1, 3, 64, 96), (1, 3, 64, 96), (1, 3, 64, 64)]
    expected = torch.tensor([50.0, 10.0, 80.0, 30.0]).expand(len(TTA_VIEWS), 4)
    torch.testing.assert_close(out[0, :, :4], expected, atol=2.0, rtol=0)  # resampling moves edges a pixel
    flipped = out[0, 1, :4]
    assert flipped[0] > 45 and flipped[2] > 75  # mirrored back: still on the right half


def test_a_fixed_shape_backend_gets_its_own_input_size():
    backend = load_backend(BrightBoxModel(), "cpu")
    backend.dynamic, backend.imgsz, backend.batch = False, 64, 1
    net = backend.model
    out = AugmentedBackend(backend)(bright_square(64, 64, (20, 10, 40, 30)))
    assert set(net.shapes) == {(1, 3, 64, 64)}
    torch.testing.assert_close(out[0, :, :4], torch.tensor([20.0, 10.0, 40.0, 30.0]).expand(3, 4), atol=2.0, rtol=0)


def test_predict_augment_keeps_the_box_in_original_pixels():
    image = np.full((64, 96, 3), 50, np.uint8)
    image[10:30, 50:80] = 255
    detector = Detector(BrightBoxModel(), device="cpu", imgsz=96, conf=0.5)
    plain = detector.predict(image)[0]
    detector.configure(PredictOptions(weights="unused", source="unused", imgsz=96, conf=0.5, augment=True))
    augmented = detector.predict(image)[0]
    assert len(plain) == 1 and len(augmented) == 1  # NMS merges the three views' boxes
    torch.testing.assert_close(augmented.boxes.xyxy, plain.boxes.xyxy, atol=2.0, rtol=0)


def test_val_augment_scores_the_augmented_model(trained_tiny, tiny_shapes_yaml, tmp_path, caplog):
    caplog.set_level("INFO")
    weights = trained_tiny / "weights" / "best.pt"
    plain = val(weights, tiny_shapes_yaml, batch=4, workers=0, device="cpu", project=tmp_path, name="plain")
    tta = val(weights, tiny_shapes_yaml, batch=4, workers=0, device="cpu", project=tmp_path, name="tta", augment=True)
    assert tta["images"] == plain["images"] == 6 and 0 <= tta["map50_95"] <= 1
    assert "with test-time augmentation" in caplog.text
    predictions = [json.loads((tmp_path / n / "predictions.json").read_text()) for n in ("plain", "tta")]
    assert predictions[1] != predictions[0]  # the views' detections changed what was scored
