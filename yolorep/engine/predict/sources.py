"""Where prediction frames come from: images, folders, globs, ``.txt`` lists, videos, webcams, numpy arrays.

``load_source`` resolves what the user typed into a ``Source``; iterating it yields ``Frame`` objects one at a time,
reading each image or video frame only when it is needed, so memory stays constant on an hour-long video.
Unreadable images and corrupt video frames are logged and counted in ``Source.skipped``, never fatal.
"""

from __future__ import annotations

import glob
import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

import cv2
import numpy as np

from yolorep.datasets.images import jpeg_tail_is_truncated
from yolorep.errors import YolorepError

__all__ = ["IMAGE_SUFFIXES", "VIDEO_SUFFIXES", "Frame", "Source", "VideoInfo", "load_source", "read_image", "to_bgr"]

LOGGER = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".bmp", ".dng", ".jpeg", ".jpg", ".jp2", ".mpo", ".pfm", ".png", ".tif", ".tiff", ".webp"})
VIDEO_SUFFIXES = frozenset({".avi", ".m4v", ".mkv", ".mov", ".mp4", ".mpeg", ".mpg", ".ts", ".webm", ".wmv"})
SOURCE_HELP = "pass an image, a folder, a glob such as 'images/*.jpg', a video, a webcam index or a .txt list of paths"

# One entry of a Source: ("image", path), ("video", path), ("webcam", index) or ("array", name, image).
Item = Union[tuple[str, str], tuple[str, int], tuple[str, str, np.ndarray]]


@dataclass(frozen=True)
class VideoInfo:
    """What a video writer needs to reproduce its source: frame rate, frame size and length."""

    fps: float
    width: int
    height: int
    frame_count: int  # frames in the file as the container reports it; 0 when unknown (webcams, some streams)


@dataclass
class Frame:
    """One image or video frame to run the detector on."""

    image: np.ndarray  # [H, W, 3] uint8 BGR
    path: str  # the file it came from, "webcam0" for a webcam, "image0" ... for arrays
    index: int | None = None  # 0-based frame number in its video (skipped frames counted), None for still images
    video: VideoInfo | None = None  # set for video and webcam frames
    item: int = 0  # 0-based position in the source of the image or video it came from


def to_bgr(image: np.ndarray) -> np.ndarray:
    """Return ``image`` as [H, W, 3] uint8 BGR: grayscale [H, W] or [H, W, 1], BGRA [H, W, 4] and 16-bit input work.

    Raises:
        ValueError: for an array that is not an image.
    """
    if image.dtype == np.uint16:
        image = (image // 257).astype(np.uint8)  # 65535 -> 255
    if image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 or uint16 image, got dtype {image.dtype}")
    if image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1):
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    if image.ndim == 3 and image.shape[2] == 3:
        return image
    raise ValueError(f"expected an image [H, W], [H, W, 1], [H, W, 3] or [H, W, 4], got shape {image.shape}")


def read_image(path: str | Path) -> np.ndarray | None:
    """Read an image file as [H, W, 3] uint8 BGR, or None if it is missing, cannot be decoded or is a truncated
    JPEG.

    Grayscale, alpha and 16-bit files are converted by OpenCV. EXIF orientation is ignored, like the training and
    validation datasets do, so boxes and ``--save-txt`` labels refer to the pixels as stored.
    """
    try:
        data = np.fromfile(str(path), dtype=np.uint8)  # imdecode, unlike imread, handles non-ASCII paths everywhere
    except OSError:
        return None
    if data.size == 0:
        return None
    if data[:2].tobytes() == b"\xff\xd8" and jpeg_tail_is_truncated(data.data):
        return None  # OpenCV would fill the missing part with grey and detect in it: skip it as unreadable
    return cv2.imdecode(data, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)


def _video_info(capture: cv2.VideoCapture) -> VideoInfo:
    fps = capture.get(cv2.CAP_PROP_FPS)
    count = capture.get(cv2.CAP_PROP_FRAME_COUNT)
    return VideoInfo(
        fps=fps if math.isfinite(fps) and fps > 0 else 30.0,  # webcams often report 0
        width=int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
        height=int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)),
        frame_count=int(count) if math.isfinite(count) and count > 0 else 0,
    )


class Source:
    """An ordered collection of images, videos and webcams, read lazily frame by frame.

    Args:
        items: what to read, in order (see ``load_source``, which builds them from user input).
        vid_stride: keep video frames 0, s, 2s, ...: a video of n frames gives ceil(n / s) frames.
        max_retries: consecutive failed reads tolerated inside a video before it is declared finished.
    """

    def __init__(self, items: Sequence[Item], vid_stride: int = 1, max_retries: int = 5) -> None:
        if vid_stride < 1:
            raise YolorepError(f"--vid-stride {vid_stride}: must be at least 1; use 1 to keep every frame")
        self.items = list(items)
        self.vid_stride = vid_stride
        self.max_retries = max_retries
        self.skipped = 0  # unreadable images, unopenable videos and unreadable video frames so far

    @property
    def has_video(self) -> bool:
        return any(item[0] in ("video", "webcam") for item in self.items)

    def count_frames(self) -> int | None:
        """Frames iteration should yield (before skipping unreadable ones), or None when unknown (webcam)."""
        total = 0
        for kind, target, *_ in self.items:
            if kind == "webcam":
                return None
            if kind == "video":
                capture = cv2.VideoCapture(target)
                total += math.ceil(_video_info(capture).frame_count / self.vid_stride)
                capture.release()
            else:
                total += 1
        return total

    def __iter__(self) -> Iterator[Frame]:
        for item, (kind, target, *rest) in enumerate(self.items):
            if kind == "array":
                yield Frame(to_bgr(rest[0]), target, item=item)
            elif kind == "image":
                image = read_image(target)
                if image is None:
                    self.skipped += 1
                    LOGGER.warning("%s: cannot read this image (missing, corrupt or not an image); skipped", target)
                    continue
                yield Frame(image, target, item=item)
            else:
                yield from self._video_frames(target, f"webcam{target}" if kind == "webcam" else target, item)

    def _video_frames(self, target: str | int, name: str, item: int = 0) -> Iterator[Frame]:
        """Frames of one video or webcam; the capture is released however iteration ends."""
        capture = cv2.VideoCapture(target)
        try:
            if not capture.isOpened():
                self.skipped += 1
                LOGGER.warning("%s: cannot open this video (missing codec or corrupt file); skipped", name)
                return
            info = _video_info(capture)
            index, pending, missing = -1, 0, 0
            while True:
                index += 1
                if index % self.vid_stride:
                    ok, image = capture.grab(), None  # grab without decoding: skipped frames are cheap
                else:
                    ok, image = capture.read()
                if ok:
                    missing, pending = missing + pending, 0  # failures followed by a frame were mid-video
                    if image is not None:
                        yield Frame(image, name, index, info, item)
                    continue
                pending += 1
                # A failed read is the end only past the reported length or after several failures in a row:
                # a corrupt frame mid-file must not truncate the rest of the video.
                if (info.frame_count and index >= info.frame_count) or pending > self.max_retries:
                    break
            if missing:
                self.skipped += missing
                LOGGER.warning("%s: %d frame(s) could not be read (corrupt or missing); continued", name, missing)
        finally:
            capture.release()


def _is_webcam(text: str) -> bool:
    return text.isdigit() and not Path(text).exists()


def _kind(path: Path) -> str:
    return "video" if path.suffix.lower() in VIDEO_SUFFIXES else "image"


def _from_list_file(path: Path) -> list[Item]:
    """A .txt list: one path per line, relative to the list's folder (or the working directory)."""
    items: list[Item] = []
    for line in path.read_text(encoding="utf-8-sig").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            listed = Path(line).expanduser()
            if not listed.is_absolute() and (path.parent / listed).exists():
                listed = path.parent / listed
            items.append((_kind(listed), str(listed)))
    if not items:
        raise YolorepError(f"--source {path}: the list has no paths; write one image or video path per line")
    return items


def _from_path(text: str) -> list[Item]:
    path = Path(text).expanduser()
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES | VIDEO_SUFFIXES)
        if not files:
            raise YolorepError(f"--source {text}: the folder has no images or videos; {SOURCE_HELP}")
        return [(_kind(p), str(p)) for p in files]
    if path.is_file():
        return _from_list_file(path) if path.suffix.lower() == ".txt" else [(_kind(path), str(path))]
    if any(c in text for c in "*?["):
        files = sorted(Path(p) for p in glob.glob(str(path), recursive=True) if Path(p).is_file())
        if not files:
            raise YolorepError(f"--source {text}: the pattern matches no file; {SOURCE_HELP}")
        return [(_kind(p), str(p)) for p in files]
    raise YolorepError(f"--source {text}: no such file or folder; {SOURCE_HELP}")


def _from_pil(image: Any) -> np.ndarray:
    """A PIL image (any mode) as [H, W, 3] uint8 BGR."""
    return np.ascontiguousarray(np.asarray(image.convert("RGB"))[:, :, ::-1])


def _from_tensor(images: Any, where: str) -> list[np.ndarray]:
    """A torch tensor [3, H, W] or [B, 3, H, W], RGB, float in 0..1 or uint8, as BGR uint8 images."""
    batch = images[None] if images.ndim == 3 else images
    if batch.ndim != 4 or batch.shape[1] != 3:
        raise YolorepError(f"{where}: a tensor source must be [3, H, W] or [B, 3, H, W] RGB; got {tuple(images.shape)}")
    if batch.is_floating_point():
        batch = (batch.detach().float().clamp(0, 1) * 255).round()
    array = batch.cpu().byte().permute(0, 2, 3, 1).numpy()
    return [np.ascontiguousarray(image[:, :, ::-1]) for image in array]


def _in_memory(entry: Any, name: str) -> list[Item] | None:
    """Items for an in-memory image (numpy BGR, PIL, torch tensor), or None for anything else."""
    if isinstance(entry, np.ndarray):
        return [("array", name, entry)]
    if type(entry).__module__.startswith("PIL.") and hasattr(entry, "convert"):
        return [("array", name, _from_pil(entry))]
    if type(entry).__module__.startswith("torch") and hasattr(entry, "ndim"):
        images = _from_tensor(entry, name)
        return [("array", name if len(images) == 1 else f"{name}_{i}", im) for i, im in enumerate(images)]
    return None


def load_source(source: object, vid_stride: int = 1) -> Source:
    """Resolve user input into a ``Source``.

    Args:
        source: a path (image, video, folder, glob, ``.txt`` list), a webcam index (``0`` or ``"0"``), an
            in-memory image (a BGR numpy array [H, W, 3] as OpenCV gives, a PIL image, or a torch tensor
            [3, H, W] / [B, 3, H, W] RGB in 0..1), a ``Source``, or a list of any of these.
        vid_stride: keep every ``vid_stride``-th video frame.

    Raises:
        YolorepError: the source does not exist, matches nothing, or is of an unsupported type.
    """
    if isinstance(source, Source):
        return source
    if isinstance(source, int) and not isinstance(source, bool):
        return Source([("webcam", source)], vid_stride)
    in_memory = _in_memory(source, "image0")
    if in_memory is not None:
        return Source(in_memory, vid_stride)
    if isinstance(source, (str, Path)):
        text = str(source)
        if _is_webcam(text):
            return Source([("webcam", int(text))], vid_stride)
        return Source(_from_path(text), vid_stride)
    if isinstance(source, (list, tuple)) and source:
        items: list[Item] = []
        for i, entry in enumerate(source):
            if isinstance(entry, (str, Path)):
                items.extend(_from_path(str(entry)))
                continue
            found = _in_memory(entry, f"image{i}")
            if found is None:
                raise YolorepError(
                    f"source[{i}]: unsupported type {type(entry).__name__}; use paths, numpy, PIL or tensor images"
                )
            items.extend(found)
        return Source(items, vid_stride)
    raise YolorepError(f"source: unsupported {type(source).__name__} {source!r:.60}; {SOURCE_HELP}")
