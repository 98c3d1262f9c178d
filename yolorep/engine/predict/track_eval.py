"""``yolorep track-eval``: score a tracking run against MOTChallenge ground truth (HOTA, IDF1, MOTA, ID switches)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from yolorep.assets import datasets_root
from yolorep.atomic import write_text_atomic
from yolorep.datasets.shapes_track import SHAPES_TRACK, generate_shapes_track
from yolorep.engine.run_dir import increment_run_dir
from yolorep.errors import YolorepError
from yolorep.track.metrics import find_sequences, score_tracks

__all__ = ["track_eval"]

LOGGER = logging.getLogger(__name__)
_SHOWN = ("HOTA", "DetA", "AssA", "IDF1", "MOTA", "IDSW", "FP", "FN")


def _gt_root(gt: str | Path) -> Path:
    if str(gt) == SHAPES_TRACK and not Path(gt).exists():
        return generate_shapes_track(datasets_root() / SHAPES_TRACK)
    root = Path(gt).expanduser()
    if not root.is_dir():
        raise YolorepError(
            f"--gt {gt}: no such folder; pass a MOTChallenge folder (<sequence>/gt/gt.txt) or shapes-track"
        )
    return root


def _pred_dir(pred: str | Path) -> Path:
    folder = Path(pred).expanduser()
    if (folder / "labels").is_dir():  # a track run folder
        folder = folder / "labels"
    if not folder.is_dir() or not any(folder.glob("*.txt")):
        raise YolorepError(
            f"--pred {pred}: no track files (<sequence>.txt) there; pass the run folder of 'yolorep track --save-txt' "
            "or a folder of MOTChallenge result files"
        )
    return folder


def track_eval(
    gt: str | Path, pred: str | Path, project: str | Path = "runs/track-eval", name: str = "exp"
) -> dict[str, Any]:
    """Score the track files in ``pred`` against the ground truth under ``gt`` and write ``metrics.json``.

    Args:
        gt: a MOTChallenge folder (``<sequence>/gt/gt.txt`` and ``seqinfo.ini``), one sequence's folder, or
            ``shapes-track`` (the bundled synthetic set, generated when absent).
        pred: a ``yolorep track --save-txt`` run folder, or a folder of ``<sequence>.txt`` MOTChallenge rows.

    Returns:
        ``{"sequences": {name: summary}, "combined": summary, "save_dir": ...}`` (see ``score_tracks``).

    Raises:
        YolorepError: a folder is missing, no sequence has both ground truth and tracks, or TrackEval refuses a file.
    """
    root, folder = _gt_root(gt), _pred_dir(pred)
    sequences = find_sequences(root)
    if not sequences:
        raise YolorepError(f"--gt {gt}: no sequence with gt/gt.txt found; pass a MOTChallenge folder")
    scored = {s: n for s, n in sequences.items() if (folder / f"{s}.txt").is_file()}
    if not scored:
        raise YolorepError(
            f"--pred {pred}: no track file matches a sequence of {root} ({', '.join(list(sequences)[:5])} ...); "
            "name each file after its sequence"
        )
    missing = sorted(set(sequences) - set(scored))
    if missing:
        LOGGER.warning("track-eval: no track file for %d sequence(s), not scored: %s", len(missing), ", ".join(missing))
    results = score_tracks(root.parent if (root / "gt" / "gt.txt").is_file() else root, folder, scored)
    _log_table(results)
    run_dir = increment_run_dir(project, name)
    combined = results.pop("COMBINED")
    report = {"gt": str(root), "pred": str(folder), "sequences": results, "combined": combined}
    write_text_atomic(run_dir / "metrics.json", json.dumps(report, indent=1))
    LOGGER.info("track-eval: results saved to %s", run_dir / "metrics.json")
    return {**report, "save_dir": str(run_dir)}


def _log_table(results: dict[str, dict[str, float]]) -> None:
    width = max(len(s) for s in results)
    LOGGER.info("%s  %s", "sequence".ljust(width), "  ".join(f"{k:>6}" for k in _SHOWN))
    for sequence, summary in results.items():
        cells = [f"{100 * summary[k]:6.1f}" if isinstance(summary[k], float) else f"{summary[k]:6d}" for k in _SHOWN]
        LOGGER.info("%s  %s", sequence.ljust(width), "  ".join(cells))
