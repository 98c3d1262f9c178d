"""Prediction: ``Detector`` (Python API) and ``predict`` (the ``yolorep predict`` command).

The pipeline per batch of frames: letterbox exactly as validation does (``resize_longest`` then pad to a stride
multiple) -> fused model -> ``non_max_suppression`` -> ``scale_boxes`` back to original-image pixels.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator, Sequence
from contextlib import closing
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from yolorep.checks import check_at_least, check_batch, check_fraction
from yolorep.datasets.transforms import letterbox, resize_longest
from yolorep.engine.deploy import Backend, load_backend, load_fused
from yolorep.engine.device import select_device, torch_threads
from yolorep.engine.predict.results import Boxes, ClassNames, Results
from yolorep.engine.predict.sources import Frame, Source, load_source
from yolorep.engine.predict.tta import AugmentedBackend
from yolorep.engine.predict.writer import Outputs, PredictionWriter, written
from yolorep.engine.run_dir import increment_run_dir
from yolorep.errors import YolorepError
from yolorep.ops import non_max_suppression, scale_boxes
from yolorep.options import PredictOptions

__all__ = ["Detector", "describe_frame", "load_fused", "predict"]

LOGGER = logging.getLogger(__name__)
SPEED_KEYS = ("preprocess", "inference", "postprocess")  # Results.speed, ultralytics' names


class Detector:
    """Run a fused detector on images, videos, webcams or numpy arrays.

    Args:
        weights: a checkpoint path, an exported model (``.onnx``, ``.torchscript``, OpenVINO folder; see
            ``load_backend``), or a model (a ``DetectionModel``, or any module with ``names`` and ``stride`` whose
            eval output is [B, N, 4 + nc]). An unfused model is copied and the copy fused; a fused one is used as
            is (moved to ``device``). A fixed-shape export gets square ``imgsz x imgsz`` inputs at its own size.
        device: ``None`` (first GPU, else CPU), ``"cpu"``, ``"0"``, ``"cuda:1"`` ...
        imgsz: longest image side fed to the model, a multiple of its stride (default: the training size, or 640).
        conf: keep detections scoring above this.
        iou: NMS IoU threshold.
        half: the fast half precision of the device: fp16 on CUDA, bf16 autocast on a CPU with AMX or AVX-512 BF16
            (for a PyTorch model; an exported file runs at the precision it was exported with).
        classes: keep only these class indices.
        max_det: detections per image at most.

    ``configure(options)`` changes the thresholds, image size, class-agnostic NMS and test-time augmentation
    without reloading the model.
    """

    def __init__(
        self,
        weights: str | Path | nn.Module,
        device: str | int | None = None,
        imgsz: int | None = None,
        conf: float = 0.25,
        iou: float = 0.7,
        half: bool = False,
        classes: Sequence[int] | None = None,
        max_det: int = 300,
    ) -> None:
        self.device = select_device(device)
        self.half = half
        self.model = load_backend(weights, self.device, half=half)
        # fp16 input only for fp16 weights on CUDA; a CPU backend (bf16 autocast, OpenVINO) takes fp32
        self.dtype = torch.float16 if self.model.precision == "fp16" and self.device.type == "cuda" else torch.float32
        self.names = ClassNames(self.model.names)
        self.stride = self.model.stride
        self.agnostic = False  # class-agnostic NMS
        self.augment = False  # test-time augmentation (``AugmentedBackend``)
        self._augmented: AugmentedBackend | None = None
        self._set(imgsz, conf, iou, classes, max_det)
        self.times = {"preprocess": 0.0, "inference": 0.0, "nms": 0.0}  # seconds, since the last predict()
        self.seen = 0  # frames since the last predict()
        self.last_shape: tuple[int, ...] = ()  # input shape of the last batch
        # a runtime with threads of its own gets the cores to itself: torch works on one around it (torch_threads)
        self.host_threads = 1 if self.model.own_threads and self.device.type == "cpu" else None

    def _set(self, imgsz: int | None, conf: float, iou: float, classes: Sequence[int] | None, max_det: int) -> None:
        check_fraction(conf, "--conf")
        check_fraction(iou, "--iou")
        check_at_least(max_det, 1, "--max-det")
        if classes is not None and any(not 0 <= c < len(self.names) for c in classes):
            raise YolorepError(
                f"--classes {list(classes)}: unknown class index; this model has classes 0 to {len(self.names) - 1}"
            )
        self.imgsz = self.model.input_size(imgsz)  # default: the training or export size
        self.conf, self.iou, self.classes, self.max_det = conf, iou, classes, max_det

    def configure(self, options: PredictOptions) -> Detector:
        """Apply the settings of ``options`` that need no reload: ``imgsz``, ``conf``, ``iou``, ``classes``,
        ``max_det``, ``agnostic_nms`` and ``augment`` (``device`` and ``half`` are fixed when it is built)."""
        self._set(options.imgsz, options.conf, options.iou, options.classes, options.max_det)
        self.agnostic, self.augment = options.agnostic_nms, options.augment
        return self

    @property
    def speed(self) -> dict[str, float]:
        """Milliseconds per image for each stage since the last ``predict`` started."""
        return {k: 1000 * v / max(self.seen, 1) for k, v in self.times.items()}

    def predict(
        self, source: Any, stream: bool = False, batch: int = 1, vid_stride: int = 1, verbose: bool = False
    ) -> list[Results] | Iterator[Results]:
        """Detect objects in ``source`` (see ``load_source``: paths, folders, globs, videos, webcams, arrays).

        Args:
            stream: return a generator yielding one ``Results`` at a time (constant memory on long videos) instead
                of a list.
            batch: frames per forward pass; a batch shares one input shape.
            vid_stride: keep every n-th video frame.
            verbose: log one line per image or frame (``image 3/40 path: 320x256 2 raccoons, 30.1ms``).

        Returns:
            One ``Results`` per readable image or frame, in source order.

        Raises:
            YolorepError: the source does not exist (raised at once, also with ``stream=True``).
        """
        check_batch(batch)
        source = load_source(source, vid_stride)
        if not stream and source.has_video:
            LOGGER.warning("predict: a list of results keeps every video frame in memory; use stream=True for videos")
        results = self._stream(source, batch, verbose)
        return results if stream else list(results)

    def _stream(self, source: Source, batch: int, verbose: bool) -> Iterator[Results]:
        self.times = dict.fromkeys(self.times, 0.0)
        self.seen = 0
        frames: list[Frame] = []
        for frame in source:
            frames.append(frame)
            if len(frames) == batch:
                yield from self._logged(self._run(frames), frames, len(source.items), verbose)
                frames = []
        if frames:
            yield from self._logged(self._run(frames), frames, len(source.items), verbose)

    def _logged(self, results: list[Results], frames: list[Frame], items: int, verbose: bool) -> list[Results]:
        if verbose and LOGGER.isEnabledFor(logging.INFO):
            height, width = self.last_shape[2:]
            for result, frame in zip(results, frames):
                where = describe_frame(frame, items)
                ms = result.speed["inference"]
                LOGGER.info("%s: %dx%d %s%.1fms", where, height, width, result.verbose(), ms)
        return results

    def preprocess(self, images: list[np.ndarray]) -> tuple[Tensor, list[tuple[tuple[float, float], tuple[int, int]]]]:
        """Letterbox BGR images [H_i, W_i, 3] to one shape: the smallest stride multiple that fits them all.

        Returns:
            ``x [B, 3, H, W]`` RGB in 0..1 on the model's device and dtype, and per image its
            ``((r_w, r_h), (pad_w, pad_h))`` such that ``input = original * r + pad``.
        """
        resized = [resize_longest(image, self.imgsz) for image in images]
        shape = tuple(max(math.ceil(im.shape[i] / self.stride) * self.stride for im, _ in resized) for i in (0, 1))
        if not self.model.dynamic:  # a fixed-shape export takes only its own square size
            shape = (self.imgsz, self.imgsz)
        boxed, ratio_pads = [], []
        for image, (rw, rh) in resized:
            out, (gw, gh), pad = letterbox(image, shape, scaleup=False)
            boxed.append(out)
            ratio_pads.append(((rw * gw, rh * gh), pad))
        x = torch.from_numpy(np.stack(boxed)).to(self.device, non_blocking=True)  # [B, H, W, 3] uint8 BGR
        # contiguous here, where it is cheapest (uint8) and timed as preprocessing: a runtime would copy it anyway
        return x.permute(0, 3, 1, 2).flip(1).contiguous().to(self.dtype).div_(255), ratio_pads

    def _sync(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)  # else the timings measure kernel launches, not the work
        return time.perf_counter()

    @torch.inference_mode()
    def _run(self, frames: list[Frame]) -> list[Results]:
        t0 = self._sync()
        with torch_threads(self.host_threads):
            x, ratio_pads = self.preprocess([f.image for f in frames])
        t1 = self._sync()
        preds = self._network()(x)  # [B, N, 4 + nc]
        t2 = self._sync()
        with torch_threads(self.host_threads):
            results = self._results(preds, frames, ratio_pads)
        t3 = self._sync()
        for key, seconds in zip(self.times, (t1 - t0, t2 - t1, t3 - t2)):
            self.times[key] += seconds
        per_image = {k: 1000 * v / len(frames) for k, v in zip(SPEED_KEYS, (t1 - t0, t2 - t1, t3 - t2))}
        for result in results:
            result.speed = dict(per_image)
        self.seen += len(frames)
        self.last_shape = tuple(x.shape)
        return results

    def _results(self, preds: Tensor, frames: list[Frame], ratio_pads: list) -> list[Results]:
        """NMS on [B, N, 4 + nc] and one ``Results`` per frame, boxes in its own pixels."""
        dets = non_max_suppression(preds, self.conf, self.iou, self.max_det, self.classes, agnostic=self.agnostic)
        results = []
        for det, frame, ratio_pad in zip(dets, frames, ratio_pads):
            det = det.cpu()  # [M, 6] (x1, y1, x2, y2, score, class) in input pixels
            shape = frame.image.shape[:2]
            det[:, :4] = scale_boxes(det[:, :4], ratio_pad, shape)
            results.append(
                Results(Boxes(det, shape), self.names, shape, frame.path, frame.index, frame.image, frame.video)
            )
        return results

    def _network(self) -> Backend:
        """The model, or its test-time augmented form when ``augment`` is set (built once)."""
        if not self.augment:
            return self.model
        if self._augmented is None:
            self._augmented = AugmentedBackend(self.model)
        return self._augmented


def describe_frame(frame: Frame, items: int) -> str:
    """Where a frame comes from, as the predict log line starts: ``image 3/40 path`` or
    ``video 1/2 (frame 5/48) path``."""
    if frame.video is None:
        return f"image {frame.item + 1}/{items} {frame.path}"
    total = f"/{frame.video.frame_count}" if frame.video.frame_count else ""
    return f"video {frame.item + 1}/{items} (frame {frame.index + 1}{total}) {frame.path}"


def predict(*args: Any, **kwargs: Any) -> Path | None:
    """``yolorep predict``: detect, log a line per image or frame, and write what the options ask for (annotated
    images and videos by default, labels, crops, predictions.json) to a run folder.

    The options are ``PredictOptions`` (or its fields as keywords; see ``yolorep predict --help`` and
    ``Detector``); ``weights`` may also be a model, as for ``Detector``.

    Returns:
        The run folder (``project/name``, ``name2`` ... never overwritten), or None when nothing was to be saved
        (``no_save`` without ``save_txt``, ``save_crop`` or ``save_json``).

    Raises:
        YolorepError: nothing in ``source`` could be read (each unreadable file was logged).
    """
    o = PredictOptions.build(args, kwargs)
    src = load_source(o.source, o.vid_stride)  # before loading the model: a typo in --source fails at once
    detector = Detector(o.weights, o.device, o.imgsz, o.conf, o.iou, o.half, o.classes, o.max_det).configure(o)
    outputs = Outputs.of(o, media_by_default=True)
    run_dir = increment_run_dir(o.project, o.name) if outputs.writes_files else None
    if o.vid_stride > 1 and src.has_video:
        LOGGER.info(
            "--vid-stride %d: output videos keep frames 0, %d, %d ... (ceil(n / %d) of n) at the source frame rate",
            o.vid_stride, o.vid_stride, 2 * o.vid_stride, o.vid_stride,
        )  # fmt: skip
    start, count = time.perf_counter(), 0
    results = detector.predict(src, stream=True, batch=o.batch, verbose=o.verbose)
    with closing(written(results, PredictionWriter(run_dir, outputs))) as stream:
        for _ in stream:
            count += 1
    if count == 0:
        if run_dir is not None and not any(run_dir.iterdir()):
            run_dir.rmdir()
        raise YolorepError(
            f"--source {o.source}: no image or video frame could be read ({src.skipped} unreadable, see the "
            "warnings above); check the files or pass other ones"
        )
    elapsed = time.perf_counter() - start
    speed = detector.speed
    LOGGER.info(
        "Speed: %.1f ms preprocess, %.1f ms inference, %.1f ms NMS per image at shape %s; %.1f frames/s overall",
        speed["preprocess"], speed["inference"], speed["nms"], detector.last_shape, count / max(elapsed, 1e-9),
    )  # fmt: skip
    LOGGER.info(
        "%d image(s)/frame(s) predicted, %d unreadable skipped; %s", count, src.skipped,
        f"results saved to {run_dir}" if run_dir else "nothing saved (--no-save)",
    )  # fmt: skip
    return run_dir
