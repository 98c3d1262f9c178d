"""What a run trains on: the batch size (AutoBatch for ``--batch -1``), the training images (all, or a
``--fraction`` of them), their loader, and where decoded images are kept (``--cache``)."""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn

from yolorep.datasets.dataset import DetectionDataset
from yolorep.datasets.image_cache import DiskImageCache
from yolorep.datasets.loader import build_dataloader
from yolorep.datasets.records import load_records
from yolorep.datasets.spec import DataSpec
from yolorep.engine.device import amp_dtype, available_memory, keep_freed_memory, loader_workers
from yolorep.engine.train import distributed
from yolorep.engine.train.autobatch import auto_batch
from yolorep.engine.train.multiscale import largest_size

__all__ = ["AUTO_CACHE_BYTES", "AUTO_CACHE_SHARE", "build_train_data", "cache_images", "resolve_batch"]

LOGGER = logging.getLogger(__name__)
# --cache auto keeps decoded images in RAM when all processes' copies take at most this share of the memory
# available and this many bytes: small and medium sets then skip decoding every epoch (on a 2-core CPU, 800
# images at 256 px load in 1.6 s an epoch instead of 4.4 s), large ones are never read up front unasked.
AUTO_CACHE_SHARE = 0.25
AUTO_CACHE_BYTES = 4 << 30


def resolve_batch(args: dict[str, Any], model: nn.Module, loss_fn: nn.Module, spec: DataSpec, dev: torch.device) -> int:
    """The total batch: ``args["batch"]``, or for -1 AutoBatch's batch for one device (measured on rank 0 at the
    largest training size, with the training set's most boxes in an image) times the processes."""
    if args["batch"] != -1:
        return args["batch"]
    per_device = None
    if distributed.is_main_process():
        records = load_records(spec, "train").records
        stride = int(model.stride.max())
        options = {
            "device": dev,
            "amp_dtype": amp_dtype(dev) if args["hyp"]["amp"] else None,
            "max_objects": max(len(record.classes) for record in records),
            "n_images": len(records),
        }
        top = largest_size(args["imgsz"], args.get("multi_scale") or 0.0, stride)
        per_device = auto_batch(model, loss_fn, top, options)
    return int(distributed.broadcast_object(per_device)) * distributed.world_size()


def build_train_data(
    args: dict[str, Any], spec: DataSpec, imgsz: int, stride: int, batch: int, dev: torch.device, sharded: bool
) -> tuple[DetectionDataset, torch.utils.data.DataLoader, int]:
    """The augmented training set (``--fraction`` of it), its loader for ``batch`` images a process (``sharded``
    across DDP processes), and the number of loader workers."""
    hyp, rect = args["hyp"], bool(args.get("rect"))
    dataset = DetectionDataset(spec, "train", imgsz, augment=True, hyp=hyp, rect=rect, batch_size=batch, stride=stride)
    if args.get("single_cls"):
        dataset.as_one_class()
    fraction = args.get("fraction", 1.0)
    if fraction < 1:
        total = len(dataset)
        dataset.keep_share(fraction, args["seed"])
        if distributed.is_main_process():
            LOGGER.info("training on %d of the %d training images (--fraction %g, seed %d)", len(dataset), total,
                        fraction, args["seed"])  # fmt: skip
    workers = loader_workers(args["workers"], dev)
    if dev.type == "cpu" and keep_freed_memory():
        LOGGER.debug("glibc keeps freed memory for reuse (mallopt): no page faults on each step's buffers")
    if distributed.is_main_process():
        world = distributed.world_size()
        chosen = " (auto: cores left by the model's threads; --workers N to choose)" if args["workers"] is None else ""
        accumulate = max(round(hyp["nbs"] / (batch * world)), 1)
        LOGGER.info("batch %d x %d ranks, accumulate %d; data loader workers: %d%s", batch, world, accumulate,
                    workers, chosen)  # fmt: skip
    loader = build_dataloader(dataset, batch, not rect, workers, args["seed"], distributed=sharded)
    return dataset, loader, workers


def cache_images(mode: bool | str, datasets: list[DetectionDataset], processes: int = 1) -> bool:
    """Keep the decoded images of ``datasets`` in RAM when ``mode`` is True, or ``"auto"`` and every process's
    copy fits in :data:`AUTO_CACHE_SHARE` of the available memory and :data:`AUTO_CACHE_BYTES`; with ``"disk"``
    in ``.npy`` files (:mod:`yolorep.datasets.image_cache`). True if cached.

    Samples are the same either way (the cache holds exactly what each epoch would decode); only the time
    changes. The log line says what was chosen and how to choose otherwise.
    """
    if mode is False:
        return False
    if mode == "disk":
        return _cache_to_disk(datasets)
    need = sum(dataset.decoded_bytes() for dataset in datasets) * max(processes, 1)
    available = available_memory()
    copies = f" x {processes} processes" if processes > 1 else ""
    if mode == "auto":
        room = 0 if available is None else min(AUTO_CACHE_SHARE * available, AUTO_CACHE_BYTES)
        if need > room:
            where = "unknown free memory" if available is None else f"{_gigabytes(available)} available"
            LOGGER.info(
                "images decoded every epoch: %s resized%s exceed the auto cache (a quarter of %s, at most %s); "
                "--cache true keeps them in RAM, --cache disk as .npy files",
                _gigabytes(need), copies, where, _gigabytes(AUTO_CACHE_BYTES),
            )  # fmt: skip
            return False
    elif available is not None and need > available:
        LOGGER.warning("--cache: %s of images%s exceed the %s available; expect swapping", _gigabytes(need), copies,
                       _gigabytes(available))  # fmt: skip
    for dataset in datasets:
        dataset.cache_images()
    chosen = " (auto; --cache false reads them every epoch)" if mode == "auto" else ""
    LOGGER.info("images kept in RAM: %s resized%s%s", _gigabytes(need), copies, chosen)
    return True


def _cache_to_disk(datasets: list[DetectionDataset]) -> bool:
    written = reused = size = 0
    elsewhere: set[str] = set()
    for dataset in datasets:
        cache = dataset.cache_to_disk()
        written, reused, size = written + cache.written, reused + cache.reused, size + cache.bytes
        elsewhere |= {str(folder) for folder in cache.unwritable}
    where = "beside the images"
    if elsewhere:
        where = f"in {DiskImageCache.fallback_root()} for the read-only {', '.join(sorted(elsewhere))}"
    LOGGER.info("decoded images on disk (--cache disk): %d .npy files, %s, %s (%d written now)", written + reused,
                _gigabytes(size), where, written)  # fmt: skip
    return True


def _gigabytes(size: float) -> str:
    return f"{size / 2**30:.1f} GB" if size >= 2**30 else f"{size / 2**20:.1f} MB"
