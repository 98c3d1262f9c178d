"""Writing prediction results: annotated images and videos, YOLO label files and ``predictions.json``."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from yolorep.atomic import write_text_atomic
from yolorep.confined import confined
from yolorep.engine.results import Results
from yolorep.errors import YolorepError
from yolorep.plots import write_image

__all__ = ["VIDEO_CODECS", "PredictionWriter", "open_video_writer"]

LOGGER = logging.getLogger(__name__)

# Output codecs tried in order for a source video's suffix, as (fourcc, output suffix). OpenCV wheels often lack
# an H.264 encoder (avc1), and MJPG in .avi is available wherever OpenCV can write video at all.
VIDEO_CODECS: dict[str, tuple[tuple[str, str], ...]] = {
    ".mp4": (("mp4v", ".mp4"), ("avc1", ".mp4"), ("MJPG", ".avi")),
    ".avi": (("MJPG", ".avi"), ("XVID", ".avi"), ("mp4v", ".mp4")),
    ".mkv": (("mp4v", ".mkv"), ("XVID", ".mkv"), ("MJPG", ".avi")),
}


def open_video_writer(path: Path, fps: float, size_wh: tuple[int, int]) -> tuple[Any, Path]:
    """Open a cv2.VideoWriter for ``path``, falling back to other codecs (and logging it) when one is missing.

    Returns:
        The opened writer and the file it writes (the suffix changes when falling back to MJPG/.avi).
    """
    import cv2

    codecs = VIDEO_CODECS.get(path.suffix.lower(), VIDEO_CODECS[".mp4"])
    for i, (fourcc, suffix) in enumerate(codecs):
        out = path.with_suffix(suffix)
        writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*fourcc), fps, size_wh)
        if writer.isOpened():
            if i:
                missing = ", ".join(c for c, _ in codecs[:i])
                LOGGER.warning("%s: codec %s not available; writing %s with %s", path, missing, out, fourcc)
            return writer, out
        writer.release()
        out.unlink(missing_ok=True)
    tried = ", ".join(f"{c} ({s})" for c, s in codecs)
    raise YolorepError(f"{path}: OpenCV cannot write video with {tried}; use an OpenCV build with FFmpeg or --no-save")


class PredictionWriter:
    """Writes annotated images and videos, ``labels/*.txt`` and ``predictions.json`` for a run.

    Use it as a context manager: the open video writer is released and predictions.json written however the run
    ends (error, Ctrl-C), so a partial video still plays.
    """

    def __init__(self, run_dir: Path, save_media: bool = True, save_txt: bool = False, save_json: bool = False):
        self.run_dir, self.save_media, self.save_txt, self.save_json = run_dir, save_media, save_txt, save_json
        self.predictions: list[dict[str, Any]] = []
        self.saved: list[Path] = []  # annotated images and videos written
        self._video: tuple[str, Any] | None = None  # (source path, cv2.VideoWriter) of the video being written
        self._stems: dict[str, str] = {}  # source path -> the stem of its output files, unique in the run
        self._taken: set[str] = set()  # those stems, case-folded (a.jpg and A.jpg are one file on some systems)

    def __enter__(self) -> PredictionWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def add(self, result: Results) -> None:
        if self.save_media:
            self.write_media(result)
        if self.save_txt:
            stem = self._stem(result.path) + ("" if result.frame is None else f"_{result.frame}")
            result.save_txt(confined(self.run_dir / "labels", f"{stem}.txt"))
        if self.save_json:
            self.predictions.extend(result.to_json())

    def _stem(self, source: str) -> str:
        """The stem of ``source``'s output files: its own, or ``<stem>_2``, ``<stem>_3`` ... when a source of another
        folder had that name (``a/x.jpg`` and ``b/x.jpg`` must not write one ``x.jpg``)."""
        if source not in self._stems:
            stem = Path(source).stem
            stem = stem if stem not in ("", ".", "..") else "image"
            candidate, n = stem, 1
            while candidate.casefold() in self._taken:
                n += 1
                candidate = f"{stem}_{n}"
            if n > 1:
                LOGGER.warning("%s: another source is also named %s; its outputs are named %s", source, stem, candidate)
            self._stems[source] = candidate
            self._taken.add(candidate.casefold())
        return self._stems[source]

    def write_media(self, result: Results) -> None:
        """Write the annotated image, or the annotated frame into its video."""
        if result.video is None:
            self._write_image(result)
        else:
            self._video_writer(result).write(self.render(result))

    def render(self, result: Results) -> np.ndarray:
        """The annotated frame [H, W, 3] uint8 BGR (tracking adds trails)."""
        return result.plot()

    def _write_image(self, result: Results) -> None:
        import cv2

        suffix = Path(result.path).suffix
        if not suffix or not cv2.haveImageWriter(f"x{suffix}"):  # in-memory input, or a format OpenCV cannot write
            suffix += ".jpg"
        self.saved.append(write_image(confined(self.run_dir, self._stem(result.path) + suffix), self.render(result)))

    def _video_writer(self, result: Results) -> Any:
        if self._video is not None and self._video[0] == result.path:
            return self._video[1]
        self._release_video()
        suffix = Path(result.path).suffix
        path = confined(self.run_dir, self._stem(result.path) + (suffix if suffix.lower() in VIDEO_CODECS else ".mp4"))
        h, w = result.orig_shape  # the frames' own size: a writer silently drops frames of any other size
        writer, out = open_video_writer(path, result.video.fps, (w, h))
        self._video = (result.path, writer)
        self.saved.append(out)
        return writer

    def _release_video(self) -> None:
        if self._video is not None:
            self._video[1].release()
            self._video = None

    def close(self) -> None:
        self._release_video()
        if self.save_json:
            write_text_atomic(self.run_dir / "predictions.json", json.dumps(self.predictions, indent=1))
