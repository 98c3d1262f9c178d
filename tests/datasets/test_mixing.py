"""Augmentations of issue 26 (vertical flip, MixUp, box-level copy-paste, all off by default), training on a
fraction of the images, and decoded images cached on disk."""

from __future__ import annotations

import os
import random

import cv2
import numpy as np
import pytest
import torch
from read_only import read_only

from yolorep.datasets import dataset as dataset_module
from yolorep.datasets.dataset import DetectionDataset
from yolorep.datasets.mixing import MAX_COVER, copy_paste, mixup
from yolorep.datasets.spec import load_data_spec
from yolorep.datasets.transforms import flipud
from yolorep.ops.boxes import box_ioa
from yolorep.options.hyp import Hyperparameters

# no mosaic, an identity affine, no colour change, no flips: what is left is the augmentation under test
PLAIN = {"mosaic": 0.0, "translate": 0.0, "scale": 0.0, "fliplr": 0.0, "hsv_h": 0.0, "hsv_s": 0.0, "hsv_v": 0.0}


def test_new_augmentations_are_off_by_default_as_in_ultralytics():
    hyp = Hyperparameters()
    assert (hyp.flipud, hyp.mixup, hyp.copy_paste) == (0.0, 0.0, 0.0)


def test_flipud_mirrors_image_and_boxes():
    image = np.zeros((20, 10, 3), np.uint8)
    image[1:4, 2:5] = 255
    out, labels = flipud(image, np.array([[3, 2, 1, 5, 4]], np.float32))
    assert out.flags.c_contiguous
    np.testing.assert_array_equal(labels, [[3, 2, 16, 5, 19]])
    assert (out[16:19, 2:5] == 255).all() and out.sum() == image.sum()


def test_mixup_blends_two_images_and_keeps_both_boxes():
    np.random.seed(0)
    a, b = np.full((8, 8, 3), 200, np.uint8), np.full((8, 8, 3), 100, np.uint8)
    la, lb = np.array([[0, 1, 1, 4, 4]], np.float32), np.array([[1, 2, 2, 6, 6], [2, 0, 0, 8, 8]], np.float32)
    image, labels = mixup(a, la, b, lb)
    np.testing.assert_array_equal(labels, np.concatenate([la, lb]))
    assert image.dtype == np.uint8 and len(np.unique(image)) == 1 and 130 <= image[0, 0, 0] <= 170  # ratio ~0.5


def test_copy_paste_brings_each_object_with_its_box_where_it_hides_little():
    rng = np.random.default_rng(0)
    image = np.zeros((64, 64, 3), np.uint8)
    labels = np.array([[0, 10, 10, 40, 40]], np.float32)
    donor = rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)
    donor_labels = np.array([[1, 2, 3, 14, 15], [2, 20, 20, 44, 46], [3, 30, 1, 33, 2]], np.float32)  # 3 px high
    pasted_any = False
    for seed in range(20):
        random.seed(seed)
        out, new = copy_paste(image, labels, donor, donor_labels, probability=1.0)
        assert not image.any(), "the input image is not modified"
        np.testing.assert_array_equal(new[:1], labels)
        for k, (cls, x1, y1, x2, y2) in enumerate(new[1:].astype(int), 1):
            source = donor_labels[donor_labels[:, 0] == cls][0, 1:].astype(int)
            visible = np.ones((y2 - y1, x2 - x1), bool)  # not pasted over by a later object
            for lx1, ly1, lx2, ly2 in new[k + 1 :, 1:].astype(int):
                visible[max(ly1 - y1, 0) : max(ly2 - y1, 0), max(lx1 - x1, 0) : max(lx2 - x1, 0)] = False
            assert visible.mean() >= 1 - MAX_COVER
            patch = donor[source[1] : source[3], source[0] : source[2]]
            np.testing.assert_array_equal(out[y1:y2, x1:x2][visible], patch[visible])
            earlier = torch.from_numpy(new[:k, 1:])
            assert (box_ioa(earlier, torch.from_numpy(new[k : k + 1, 1:])) <= MAX_COVER + 1e-6).all()
        assert set(new[1:, 0]) <= {1, 2}  # the 1-px-high object is never pasted
        pasted_any |= len(new) > 1
    assert pasted_any
    random.seed(0)
    out, new = copy_paste(image, labels, donor, donor_labels, probability=0.0)
    assert out is image and len(new) == 1


def test_copy_paste_and_mixup_in_the_training_set(colour_boxes_yaml, box_colours):
    """Each box shows its object's colour over most of it: pasted objects are whole, and at most two pastes
    (each donor image has two objects) each hide at most 30% of a box."""
    spec = load_data_spec(colour_boxes_yaml)
    pasted = DetectionDataset(spec, "train", imgsz=128, augment=True, hyp=dict(PLAIN, copy_paste=1.0))
    plain = DetectionDataset(spec, "train", imgsz=128, augment=True, hyp=PLAIN)
    added = 0
    for i in range(len(pasted)):
        random.seed(i)
        image, labels, _ = pasted[i]
        rgb = image.numpy().transpose(1, 2, 0)
        for cls, x1, y1, x2, y2 in labels.numpy().round().astype(int):
            inside = (rgb[y1:y2, x1:x2] == box_colours[cls][::-1]).all(-1)
            assert inside.mean() >= 1 - 2 * MAX_COVER - 0.05, (i, cls)
        added += len(labels) - len(plain[i][1])
    assert added >= len(pasted)  # most images received an object
    mixed = DetectionDataset(spec, "train", imgsz=128, augment=True, hyp=dict(PLAIN, mixup=1.0))
    random.seed(0)
    image, labels, _ = mixed[0]
    assert len(labels) == 4 and len(np.unique(labels[:, 0])) == 4  # two images' two objects


def test_a_fraction_of_the_images_drawn_with_the_seed(colour_boxes_yaml):
    spec = load_data_spec(colour_boxes_yaml)

    def kept(seed, rect=False):
        dataset = DetectionDataset(spec, "train", imgsz=128, augment=True, rect=rect, batch_size=2)
        dataset.keep_share(0.5, seed)
        return dataset

    half = kept(0)
    assert len(half) == 3 and half.stats["images"] == 3
    assert (
        {r.path for r in half.records}
        == {r.path for r in kept(0, rect=True).records}
        == {r.path for r in kept(0).records}
    )
    assert len(kept(0, rect=True).batch_shapes) == 2
    assert len({frozenset(r.path for r in kept(seed).records) for seed in range(6)}) > 1


def test_decoded_images_cached_on_disk(colour_boxes_yaml, monkeypatch, tmp_path):
    spec = load_data_spec(colour_boxes_yaml)
    plain = DetectionDataset(spec, "val", imgsz=96)
    cached = DetectionDataset(spec, "val", imgsz=96)
    cache = cached.cache_to_disk()
    files = sorted(colour_boxes_yaml.parent.rglob("images/val/*.png.npy"))
    assert cache.written == len(files) == len(cached) and not cache.unwritable
    np.testing.assert_array_equal(np.load(files[0]), cv2.imread(str(files[0].with_suffix(""))))
    expected = [plain[i][0].numpy() for i in range(len(plain))]
    monkeypatch.setattr(dataset_module.cv2, "imread", lambda *a: None)  # from now on only the .npy files can serve
    for i in range(len(plain)):
        np.testing.assert_array_equal(cached[i][0].numpy(), expected[i])
    monkeypatch.undo()
    # a second run reuses them; an image edited since gets a new copy
    image = files[0].with_suffix("")
    cv2.imwrite(str(image), 255 - cv2.imread(str(image)))
    later = os.stat(files[0]).st_mtime_ns + 10**9
    os.utime(image, ns=(later, later))
    again = DetectionDataset(spec, "val", imgsz=96).cache_to_disk()
    assert (again.written, again.reused) == (1, len(files) - 1)
    np.testing.assert_array_equal(np.load(files[0]), cv2.imread(str(image)))


def test_decoded_images_of_a_read_only_data_set_go_to_the_user_cache(colour_boxes_yaml, monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "user_cache"))
    spec = load_data_spec(colour_boxes_yaml)
    plain = DetectionDataset(spec, "train", imgsz=96)
    with read_only(colour_boxes_yaml.parent, monkeypatch) as refused:
        cache = DetectionDataset(spec, "train", imgsz=96).cache_to_disk()
        cached = DetectionDataset(spec, "train", imgsz=96)
        again = cached.cache_to_disk()
    assert refused and all(path.startswith(str(colour_boxes_yaml.parent / "images" / "train")) for path in refused)
    assert len(refused) < 3 * len(plain)  # the folder is known to be read-only after the first refusal
    assert cache.written == len(plain) and (again.written, again.reused) == (0, len(plain))
    assert len(list((tmp_path / "user_cache" / "yolorep" / "images").rglob("*.png.npy"))) == len(plain)
    assert not list(colour_boxes_yaml.parent.rglob("*.npy"))
    for i in range(len(plain)):
        np.testing.assert_array_equal(cached[i][0].numpy(), plain[i][0].numpy())


@pytest.mark.parametrize("key", ["flipud", "mixup", "copy_paste"])
def test_the_new_augmentations_take_probabilities(key):
    with pytest.raises(Exception, match=rf"--{key.replace('_', '-')} 1.5: out of range; use a value in \[0, 1\]"):
        Hyperparameters(**{key: 1.5})
