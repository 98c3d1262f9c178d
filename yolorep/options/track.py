"""The options of ``yolorep track`` (predict's, with the tracker) and ``yolorep track-eval``."""

from __future__ import annotations

from dataclasses import dataclass

from yolorep.options.fields import Options, fraction, option
from yolorep.options.inference import PredictOptions

__all__ = ["TrackEvalOptions", "TrackOptions"]


@dataclass(frozen=True)
class TrackOptions(PredictOptions):
    """``yolorep track``: predict's options, with boxes kept down to a lower score (ByteTrack's second association
    uses those between its low and high thresholds) and the tracker's YAML."""

    command = "track"

    conf: float = option(
        0.1,
        "keep detections scoring above this; the tracker's thresholds decide which of them make tracks",
        check=fraction,
    )
    save_txt: bool = option(
        False, "write MOTChallenge rows (frame,id,left,top,width,height,score,-1,-1,-1) to labels/<sequence>.txt"
    )
    save_json: bool = option(False, "write tracks.json: one record per frame with each object's id, class, box, score")
    project: str = option("runs/track", "parent folder of the run")
    tracker: str = option("bytetrack.yaml", "tracker YAML: bytetrack.yaml, botsort.yaml (built in) or your own copy")


@dataclass(frozen=True)
class TrackEvalOptions(Options):
    """``yolorep track-eval``: score tracks against MOTChallenge ground truth with HOTA, IDF1, MOTA and ID switches."""

    command = "track-eval"

    gt: str = option(help="MOTChallenge folder (<sequence>/gt/gt.txt, seqinfo.ini), or shapes-track")
    pred: str = option(help="run folder of yolorep track --save-txt, or a folder of <sequence>.txt files")
    project: str = option("runs/track-eval", "parent folder of the run")
    name: str = option("exp", "run name; exp, exp2, ... are never overwritten")
