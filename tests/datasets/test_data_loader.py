from __future__ import annotations

import torch

from yolorep.datasets.dataset import DetectionDataset
from yolorep.datasets.loader import build_dataloader, collate
from yolorep.datasets.spec import load_data_spec


def sample(h: int, w: int, n: int, index: int):
    labels = torch.arange(n * 5, dtype=torch.float32).reshape(n, 5)
    return torch.ones(3, h, w, dtype=torch.uint8), labels, {"index": index}


def test_collate_stacks_and_indexes_targets():
    images, targets, infos = collate([sample(8, 8, 2, 0), sample(8, 8, 0, 1), sample(8, 8, 1, 2)])
    assert images.shape == (3, 3, 8, 8) and images.dtype == torch.uint8
    assert targets.shape == (3, 6) and targets.dtype == torch.float32
    assert targets[:, 0].tolist() == [0, 0, 2]
    assert torch.equal(targets[2, 1:], torch.arange(5, dtype=torch.float32))
    assert [i["index"] for i in infos] == [0, 1, 2]


def test_collate_pads_mixed_sizes_bottom_right():
    images, targets, _ = collate([sample(8, 6, 0, 0), sample(4, 10, 0, 1)])
    assert images.shape == (2, 3, 8, 10) and targets.shape == (0, 6)
    assert (images[0, :, :, :6] == 1).all() and (images[0, :, :, 6:] == 114).all()
    assert (images[1, :, :4] == 1).all() and (images[1, :, 4:] == 114).all()


def test_loader_is_reproducible_with_workers(colour_boxes_yaml):
    spec = load_data_spec(colour_boxes_yaml)
    dataset = DetectionDataset(spec, "train", imgsz=64, augment=True)

    def first_batch(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        loader = build_dataloader(dataset, batch_size=4, shuffle=True, workers=1, seed=seed)
        images, targets, infos = next(iter(loader))
        assert images.shape == (4, 3, 64, 64) and len(infos) == 4
        return images, targets

    a, b, c = first_batch(0), first_batch(0), first_batch(1)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])


def test_rect_loader_keeps_order_and_batch_shapes(colour_boxes_yaml):
    dataset = DetectionDataset(load_data_spec(colour_boxes_yaml), "val", imgsz=128, rect=True, batch_size=2, stride=16)
    loader = build_dataloader(dataset, batch_size=2, shuffle=True, workers=0)  # shuffle is ignored for rect
    batches = list(loader)
    assert [tuple(images.shape[2:]) for images, _, _ in batches] == dataset.batch_shapes
    assert [info["index"] for _, _, infos in batches for info in infos] == list(range(len(dataset)))


def test_batches_are_pinned_only_for_a_process_that_uses_cuda(colour_boxes_yaml, monkeypatch):
    """A CPU run on a GPU machine must not create a CUDA context to pin its batches (here it would fail: no GPU)."""
    dataset = DetectionDataset(load_data_spec(colour_boxes_yaml), "val", imgsz=64)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # a GPU machine, CUDA not used yet
    loader = build_dataloader(dataset, batch_size=2, shuffle=False, workers=0)
    images, _, _ = next(iter(loader))
    assert not loader.pin_memory and not images.is_pinned() and not torch.cuda.is_initialized()
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)  # the model was moved to a GPU first
    assert build_dataloader(dataset, batch_size=2, shuffle=False, workers=0).pin_memory
