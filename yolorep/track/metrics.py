"""Scoring tracks against MOTChallenge ground truth with TrackEval (Luiten et al., the HOTA authors' reference
implementation; ``pip install 'yolorep[track-eval]'``): HOTA (Luiten et al., IJCV 2021), IDF1 (Ristani et al.,
2016) and the CLEAR MOT metrics (MOTA, ID switches; Bernardin and Stiefelhagen, 2008).

Files are read and preprocessed by TrackEval's own MOTChallenge loader (``MotChallenge2DBox``, MOT17 rules: rows of
class 1 are scored, rows with the flag column 0 are ignored, and predictions matching a distractor row at IoU 0.5
are removed), so the numbers are those the MOTChallenge scripts give for the same files.
"""

from __future__ import annotations

import configparser
from pathlib import Path
from typing import Any

import numpy as np

from yolorep.errors import YolorepError

__all__ = ["SUMMARY_KEYS", "find_sequences", "score_tracks"]

# What a summary keeps (fractions; counts for IDSW, FP, FN ...), and where TrackEval keeps each one.
SUMMARY_KEYS = {
    "HOTA": ("HOTA", "HOTA"), "DetA": ("HOTA", "DetA"), "AssA": ("HOTA", "AssA"), "LocA": ("HOTA", "LocA"),
    "IDF1": ("Identity", "IDF1"), "IDP": ("Identity", "IDP"), "IDR": ("Identity", "IDR"),
    "MOTA": ("CLEAR", "MOTA"), "MOTP": ("CLEAR", "MOTP"), "IDSW": ("CLEAR", "IDSW"), "FP": ("CLEAR", "CLR_FP"),
    "FN": ("CLEAR", "CLR_FN"), "Frag": ("CLEAR", "Frag"), "MT": ("CLEAR", "MT"), "ML": ("CLEAR", "ML"),
}  # fmt: skip
_COUNTS = frozenset({"IDSW", "FP", "FN", "Frag", "MT", "ML"})
INSTALL_HINT = "pip install 'yolorep[track-eval]' (or pip install --no-deps trackeval, beside scipy)"


def _trackeval() -> Any:
    try:
        import trackeval
    except ImportError:
        raise YolorepError(f"track-eval: scoring needs TrackEval, which is not installed; {INSTALL_HINT}") from None
    return trackeval


def find_sequences(gt_root: Path) -> dict[str, int]:
    """MOTChallenge sequences under ``gt_root`` (folders holding ``gt/gt.txt``; ``gt_root`` itself may be one) and
    their length in frames (``seqLength`` of ``seqinfo.ini``, else the last frame of ``gt.txt``)."""
    if (gt_root / "gt" / "gt.txt").is_file():
        folders = [gt_root]
    else:
        folders = sorted(p.parent.parent for p in gt_root.glob("*/gt/gt.txt"))
    lengths = {}
    for folder in folders:
        info = configparser.ConfigParser()
        info.read(folder / "seqinfo.ini")
        length = info.getint("Sequence", "seqLength", fallback=0)
        if not length:
            lines = (folder / "gt" / "gt.txt").read_text().splitlines()
            length = max((int(float(line.split(",", 1)[0])) for line in lines if line.strip()), default=0)
        lengths[folder.name] = length
    return lengths


def _summary(results: dict[str, dict[str, Any]]) -> dict[str, float]:
    figures = {}
    for key, (metric, field) in SUMMARY_KEYS.items():
        value = float(np.mean(results[metric][field]))  # HOTA's fields are arrays over IoU thresholds
        figures[key] = round(value) if key in _COUNTS else value
    return figures


def score_tracks(gt_root: str | Path, pred_dir: str | Path, sequences: dict[str, int]) -> dict[str, dict[str, float]]:
    """Score MOTChallenge track files ``pred_dir/<sequence>.txt`` against ``gt_root/<sequence>/gt/gt.txt``.

    Args:
        gt_root: the folder holding the sequences (or, with one sequence, its parent).
        pred_dir: the folder of track files (``yolorep track --save-txt`` writes them to ``<run>/labels``).
        sequences: sequence name -> length in frames (``find_sequences``), each with a file in ``pred_dir``.

    Returns:
        ``{sequence: summary, ..., "COMBINED": summary}``; a summary holds ``SUMMARY_KEYS``: HOTA, DetA, AssA, LocA,
        IDF1, IDP, IDR, MOTA, MOTP as fractions (HOTA's averaged over its 19 IoU thresholds), IDSW, FP, FN, Frag,
        MT, ML as counts.

    Raises:
        YolorepError: TrackEval is missing, or refuses a file (its message, naming the sequence).
    """
    trackeval = _trackeval()
    pred_dir = Path(pred_dir).resolve()
    config = {
        "GT_FOLDER": str(Path(gt_root).resolve()), "TRACKERS_FOLDER": str(pred_dir.parent),
        "TRACKERS_TO_EVAL": [pred_dir.name], "TRACKER_SUB_FOLDER": "", "SKIP_SPLIT_FOL": True,
        "SEQ_INFO": dict(sequences), "BENCHMARK": "MOT17", "PRINT_CONFIG": False,
    }  # fmt: skip
    metrics = [
        trackeval.metrics.HOTA(),
        trackeval.metrics.CLEAR({"THRESHOLD": 0.5, "PRINT_CONFIG": False}),
        trackeval.metrics.Identity({"THRESHOLD": 0.5, "PRINT_CONFIG": False}),
    ]
    try:
        dataset = trackeval.datasets.MotChallenge2DBox(config)
        per_sequence = {}
        for sequence in sequences:
            raw = dataset.get_raw_seq_data(pred_dir.name, sequence)
            data = dataset.get_preprocessed_seq_data(raw, "pedestrian")  # MOTChallenge's one scored class
            per_sequence[sequence] = {m.get_name(): m.eval_sequence(data) for m in metrics}
    except trackeval.utils.TrackEvalException as err:
        raise YolorepError(f"{pred_dir}: TrackEval cannot score these files: {err}") from None
    combined = {
        m.get_name(): m.combine_sequences({s: r[m.get_name()] for s, r in per_sequence.items()}) for m in metrics
    }
    return {**{s: _summary(r) for s, r in per_sequence.items()}, "COMBINED": _summary(combined)}
