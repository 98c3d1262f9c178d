"""Command-line flags of ``yolorep track`` (beyond predict's) and ``yolorep track-eval``; ``cli.py`` wires them."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["add_track_eval", "add_tracker_flags"]

# Tracking keeps boxes down to this score: ByteTrack's second association uses those between track_low_thresh (0.1)
# and track_high_thresh, which predict's 0.25 would discard.
TRACK_CONF = 0.1
# What predict's flags mean when tracking.
_TRACK_HELP = {
    "conf": "keep detections scoring above this; the tracker's thresholds decide which of them make tracks",
    "save_txt": "write MOTChallenge rows (frame,id,left,top,width,height,score,-1,-1,-1) to labels/<sequence>.txt",
    "save_json": "write tracks.json: one record per frame with each object's id, class, box and score",
}


def add_tracker_flags(p: argparse.ArgumentParser) -> None:
    """``--tracker``, and the track meaning of ``--conf``, ``--save-txt`` and ``--save-json``, on a parser with
    predict's flags."""
    p.add_argument(
        "--tracker", default="bytetrack.yaml",
        help="tracker YAML: bytetrack.yaml, botsort.yaml (built in) or your own copy of one",
    )  # fmt: skip
    for action in p._actions:
        action.help = _TRACK_HELP.get(action.dest, action.help)
    p.set_defaults(conf=TRACK_CONF)


def add_track_eval(sub: Any) -> None:
    p = sub.add_parser("track-eval", help="score tracks against MOTChallenge ground truth: HOTA, IDF1, MOTA, IDSW")
    p.add_argument("--gt", required=True,
                   help="MOTChallenge folder (<sequence>/gt/gt.txt, seqinfo.ini), or shapes-track")  # fmt: skip
    p.add_argument("--pred", required=True,
                   help="run folder of yolorep track --save-txt, or a folder of <sequence>.txt files")  # fmt: skip
    p.add_argument("--project", default="runs/track-eval", help="parent folder of the run")
    p.add_argument("--name", default="exp", help="run name; exp, exp2, ... are never overwritten")
