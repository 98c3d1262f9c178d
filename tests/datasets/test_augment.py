from __future__ import annotations

import random

import numpy as np
import pytest

from yolorep.datasets.dataset import DetectionDataset
from yolorep.datasets.spec import load_data_spec
from yolorep.datasets.transforms import augment_hsv, fliplr, letterbox, mosaic4

NO_HSV = {"hsv_h": 0.0, "hsv_s": 0.0, "hsv_v": 0.0}
MAX_OBJECT_AREA = 47 * 47 * 1.5**2  # largest rectangle in the colour-box set at the largest affine scale


def check_boxes(image_rgb: np.ndarray, labels: np.ndarray, colours: tuple, tight: bool) -> int:
    """Assert every box holds all pixels of its object's colour (2 px slack); return how many boxes were checked.

    With ``tight``, a box of 8+ px a side also hugs those pixels (edges within 2 px, >= 70% of its area).
    """
    checked = 0
    for k, bgr in enumerate(colours):
        mask = (image_rgb == bgr[::-1]).all(-1)
        boxes = labels[labels[:, 0] == k, 1:]
        assert len(boxes) <= 1, "each colour is one object and mosaic tiles are distinct"
        if not len(boxes):
            # a dropped object keeps under ~10% of its area in view
            assert mask.sum() <= 0.12 * MAX_OBJECT_AREA, f"colour {k} visible but unlabelled"
            continue
        x1, y1, x2, y2 = boxes[0]
        ys, xs = np.nonzero(mask)
        if len(xs):
            assert xs.min() >= x1 - 2 and xs.max() + 1 <= x2 + 2 and ys.min() >= y1 - 2 and ys.max() + 1 <= y2 + 2
        if tight and x2 - x1 >= 8 and y2 - y1 >= 8:
            assert abs(xs.min() - x1) <= 2 and abs(xs.max() + 1 - x2) <= 2
            assert abs(ys.min() - y1) <= 2 and abs(ys.max() + 1 - y2) <= 2
            assert mask.sum() >= 0.7 * (x2 - x1) * (y2 - y1)
        checked += 1
    return checked


@pytest.mark.parametrize(("mosaic", "degrees"), [(1.0, 0.0), (0.0, 0.0), (1.0, 15.0)])
def test_augmented_boxes_stay_on_their_objects(colour_boxes_yaml, box_colours, mosaic, degrees):
    hyp = {"mosaic": mosaic, "degrees": degrees, "translate": 0.2, "scale": 0.5, "fliplr": 0.5, **NO_HSV}
    dataset = DetectionDataset(load_data_spec(colour_boxes_yaml), "train", imgsz=128, augment=True, hyp=hyp)
    checked = 0
    for seed in range(24):
        random.seed(seed)
        np.random.seed(seed)
        image, labels, info = dataset[seed % len(dataset)]
        assert image.shape == (3, 128, 128) and info["ratio_pad"] is None
        checked += check_boxes(image.numpy().transpose(1, 2, 0), labels.numpy(), box_colours, tight=degrees == 0)
    assert checked >= 24  # most objects survive, so the checks above saw plenty of boxes


def test_mosaic_can_be_switched_off(colour_boxes_yaml):
    spec = load_data_spec(colour_boxes_yaml)
    hyp = {"mosaic": 1.0, "translate": 0.0, "scale": 0.0, "fliplr": 0.0, **NO_HSV}  # identity affine
    augmented = DetectionDataset(spec, "train", imgsz=128, augment=True, hyp=hyp)
    plain = DetectionDataset(spec, "train", imgsz=128)
    random.seed(0)
    assert not np.array_equal(augmented[0][0].numpy(), plain[0][0].numpy())
    augmented.mosaic_enabled = False
    for i in range(len(plain)):
        np.testing.assert_array_equal(augmented[i][0].numpy(), plain[i][0].numpy())
        np.testing.assert_allclose(augmented[i][1].numpy(), plain[i][1].numpy(), atol=1e-4)


def test_hsv_changes_colours_only():
    image = np.random.default_rng(0).integers(0, 256, (40, 50, 3), dtype=np.uint8)
    np.random.seed(0)
    out = augment_hsv(image.copy(), 0.5, 0.7, 0.4)
    assert out.shape == image.shape and out.dtype == np.uint8 and not np.array_equal(out, image)
    assert augment_hsv(image, 0.0, 0.0, 0.0) is image


def test_fliplr_mirrors_image_and_boxes():
    image = np.zeros((10, 20, 3), np.uint8)
    image[2:5, 1:4] = 255
    out, labels = fliplr(image, np.array([[3, 1, 2, 4, 5]], np.float32))
    assert out.flags.c_contiguous
    np.testing.assert_array_equal(labels, [[3, 16, 2, 19, 5]])
    assert (out[2:5, 16:19] == 255).all() and out.sum() == image.sum()


def test_letterbox_centres_and_reports_exact_ratios():
    image = np.full((50, 100, 3), 7, np.uint8)
    out, (rw, rh), (left, top) = letterbox(image, (64, 64))
    assert out.shape == (64, 64, 3) and (rw, rh) == (0.64, 0.64) and (left, top) == (0, 16)
    assert (out[:16] == 114).all() and (out[16:48] == 7).all() and (out[48:] == 114).all()
    out, ratio, pad = letterbox(image, (128, 128), scaleup=False)
    assert ratio == (1.0, 1.0) and pad == (14, 39) and out.shape == (128, 128, 3)


def test_mosaic_keeps_boxes_on_the_canvas():
    random.seed(1)
    images = [np.full((32, 24, 3), 10 * i, np.uint8) for i in range(4)]
    labels = [np.array([[i, 0, 0, 24, 32]], np.float32) for i in range(4)]
    canvas, out = mosaic4(images, labels, 32)
    assert canvas.shape == (64, 64, 3)
    assert (out[:, 1:] >= 0).all() and (out[:, 1:] <= 64).all()
    for cls, x1, y1, x2, y2 in out:
        tile = canvas[int(y1) : int(y2), int(x1) : int(x2)]
        assert (tile == 10 * int(cls)).all()
