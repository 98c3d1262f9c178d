"""Writing prediction results: annotated images and videos, YOLO label files, crops and ``predictions.json``; showing
them in a window."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from yolorep.atomic import write_text_atomic
from yolorep.confined import confined
from yolorep.engine.predict.display import show_image
from yolorep.engine.predict.results import Results
from yolorep.errors import YolorepError
from yolorep.options import PredictOptions

__all__ = ["VIDEO_CODECS", "Outputs", "PredictionWriter", "open_video_writer", "written"]

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


@dataclass(frozen=True)
class Outputs:
    """What a predict run writes (into its run folder) or shows, besides returning its results.

    Attributes:
        media: annotated images and videos, named as their sources.
        txt: ``labels/<stem>.txt``, YOLO label lines; ``conf`` ends each with its score.
        crop: ``crops/<class>/<stem>.jpg``, each detection cut from its image.
        json: ``predictions.json``, a COCO results file (``Results.to_coco``): ``image_id`` is the position of the
            image or frame in the run (0, 1, ...), as ``val`` numbers the images of a data set without ids.
        show: a window per image or frame, where a display exists.
        line_width: box line width of the drawings (default: scaled to the image).
    """

    media: bool = True
    txt: bool = False
    conf: bool = True
    crop: bool = False
    json: bool = False
    show: bool = False
    line_width: int | None = None

    @classmethod
    def of(cls, options: PredictOptions, media_by_default: bool) -> Outputs:
        """The outputs ``options`` ask for; annotated media when ``save`` says so (``media_by_default`` when it
        is not given)."""
        o = options
        media = o.saves_media(media_by_default)
        return cls(media, o.save_txt, o.save_conf, o.save_crop, o.save_json, o.show, o.line_width)

    @property
    def writes_files(self) -> bool:
        return self.media or self.txt or self.crop or self.json


class PredictionWriter:
    """Writes what ``outputs`` asks for into ``run_dir`` (None when it writes no file), result by result, and sets
    each result's ``save_dir``.

    Use it as a context manager: the open video writer is released and predictions.json written however the run
    ends (error, Ctrl-C), so a partial video still plays.
    """

    def __init__(self, run_dir: Path | None, outputs: Outputs) -> None:
        if outputs.writes_files and run_dir is None:
            raise ValueError("PredictionWriter: these outputs write files; pass a run folder")
        self.run_dir, self.outputs = run_dir, outputs
        self.predictions: list[dict[str, Any]] = []
        self.saved: list[Path] = []  # annotated images and videos written
        self.count = 0  # results added
        self._video: tuple[str, Any] | None = None  # (source path, cv2.VideoWriter) of the video being written
        self._stems: dict[str, str] = {}  # source path -> the stem of its output files, unique in the run
        self._taken: set[str] = set()  # those stems, case-folded (a.jpg and A.jpg are one file on some systems)

    def __enter__(self) -> PredictionWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def add(self, result: Results) -> None:
        out, image_id = self.outputs, self.count
        self.count += 1
        if self.run_dir is not None:
            result.save_dir = str(self.run_dir)
        annotated = self.render(result) if out.media or out.show else None
        if out.show:
            show_image(result.path, annotated)
        if out.media:
            self._write_media(result, annotated)
        stem = (self._stem(result.path) if self.run_dir is not None else "") + (
            "" if result.frame is None else f"_{result.frame}"
        )
        if out.txt:
            result.save_txt(confined(self.run_dir / "labels", f"{stem}.txt"), save_conf=out.conf)
        if out.crop:
            result.save_crop(self.run_dir / "crops", file_name=f"{stem}.jpg")
        if out.json:
            self.predictions.extend(result.to_coco(image_id))

    def render(self, result: Results) -> np.ndarray:
        """The annotated image or frame, [H, W, 3] uint8 BGR (tracking adds trails)."""
        return result.plot(line_width=self.outputs.line_width)

    def write_media(self, result: Results) -> None:
        """Write the annotated image, or the annotated frame into its video."""
        self._write_media(result, self.render(result))

    def _write_media(self, result: Results, annotated: np.ndarray) -> None:
        if result.video is None:
            self._write_image(result, annotated)
        else:
            self._video_writer(result).write(annotated)

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

    def _write_image(self, result: Results, annotated: np.ndarray) -> None:
        import cv2

        from yolorep.plots import write_image

        suffix = Path(result.path).suffix
        if not suffix or not cv2.haveImageWriter(f"x{suffix}"):  # in-memory input, or a format OpenCV cannot write
            suffix += ".jpg"
        self.saved.append(write_image(confined(self.run_dir, self._stem(result.path) + suffix), annotated))

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
        if self.outputs.json:
            write_text_atomic(self.run_dir / "predictions.json", json.dumps(self.predictions, indent=1))


def written(results: Iterator[Results], writer: PredictionWriter) -> Iterator[Results]:
    """``results``, each written by ``writer`` before it is yielded; the writer is closed however iteration ends
    (exhausted, an error, or the consumer closing the generator early)."""
    with writer:
        for result in results:
            writer.add(result)
            yield result
