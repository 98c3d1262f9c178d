"""Data loader construction: batching (:func:`collate`), seeding and distributed sampling."""

from __future__ import annotations

import logging
import random
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from yolorep.datasets.transforms import PAD_VALUE

__all__ = ["build_dataloader", "collate", "seed_worker"]

logger = logging.getLogger(__name__)


def collate(
    batch: list[tuple[torch.Tensor, torch.Tensor, dict[str, Any]]],
) -> tuple[torch.Tensor, torch.Tensor, list[dict[str, Any]]]:
    """Stack ``(image, labels, info)`` samples of a :class:`~yolorep.datasets.dataset.DetectionDataset`.

    Returns:
        images: ``uint8 [B, 3, H, W]``; samples of different sizes (rect batches split across distributed
            ranks) are padded at the bottom/right, which leaves box coordinates and ``ratio_pad`` valid.
        targets: ``float32 [M, 6]`` rows ``(batch_index, cls, x1, y1, x2, y2)`` in pixels.
        infos: the per-sample info dicts, in batch order.
    """
    images, labels, infos = zip(*batch)
    height, width = max(im.shape[1] for im in images), max(im.shape[2] for im in images)
    if any(im.shape[1:] != (height, width) for im in images):
        out = torch.full((len(images), 3, height, width), PAD_VALUE, dtype=torch.uint8)
        for i, im in enumerate(images):
            out[i, :, : im.shape[1], : im.shape[2]] = im
    else:
        out = torch.stack(images)
    targets = torch.cat(
        [torch.cat([torch.full((len(lab), 1), float(i)), lab], 1) for i, lab in enumerate(labels)]
        + [torch.zeros((0, 6))]
    )
    return out, targets, list(infos)


def seed_worker(worker_id: int) -> None:
    """Seed ``random`` and ``np.random`` from torch's per-worker seed (base seed + worker id)."""
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def build_dataloader(
    dataset: Dataset,
    batch_size: int,
    shuffle: bool,
    workers: int,
    seed: int = 0,
    distributed: bool = False,
) -> DataLoader:
    """Build a loader yielding :func:`collate` batches.

    Augmentation randomness is reproducible for a given ``seed``, rank and ``workers``: the loader's generator is
    seeded with ``seed + rank`` and each worker seeds ``random``/``np.random`` from it. With ``workers=0`` the
    main process's global random state is used, so seed it yourself. Workers are started anew for every epoch
    (not persistent), so re-seeding ``loader.generator`` before an epoch fixes that epoch's data order and
    augmentation whatever ran before: a resumed run sees the same batches as an uninterrupted one. With
    ``distributed`` a :class:`DistributedSampler` shards the data; call ``loader.sampler.set_epoch(epoch)`` every epoch.

    Batches are put in pinned (page-locked) memory, from which copies to a GPU are faster and asynchronous, only in
    a process that already uses CUDA (its model is on a GPU): pinning creates a CUDA context, which would cost a
    CPU run on a GPU machine GPU memory and seconds for nothing.

    Args:
        dataset: usually a :class:`~yolorep.datasets.dataset.DetectionDataset`.
        batch_size: per-process batch size. For a rect dataset it should equal ``dataset.batch_size``.
        shuffle: shuffle every epoch (ignored with a warning for rect datasets, whose order defines the shapes).
        workers: worker processes; > 0 keeps them alive across epochs.
        seed: base seed.
        distributed: shard with ``torch.distributed`` (must be initialised).
    """
    if getattr(dataset, "rect", False):
        if shuffle:
            logger.warning("rect batches need the dataset order; shuffle=True ignored")
            shuffle = False
        if batch_size != dataset.batch_size:
            logger.warning(
                "loader batch_size %d differs from the rect dataset's %d; batches get padded",
                batch_size,
                dataset.batch_size,
            )
    rank = torch.distributed.get_rank() if distributed else 0
    sampler = DistributedSampler(dataset, shuffle=shuffle, seed=seed) if distributed else None
    generator = torch.Generator()
    generator.manual_seed(seed + rank)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle and sampler is None,
        sampler=sampler,
        num_workers=workers,
        pin_memory=torch.cuda.is_available() and torch.cuda.is_initialized(),
        collate_fn=collate,
        worker_init_fn=seed_worker,
        generator=generator,
    )
