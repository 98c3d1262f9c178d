"""Scoring with TrackEval on files with known answers: perfect tracks, an identity swap, misses and false boxes."""

from __future__ import annotations

import logging

import pytest

from yolorep.cli import main
from yolorep.engine.predict.track_eval import track_eval
from yolorep.track.metrics import find_sequences, score_tracks

pytest.importorskip("trackeval")


def _sequence(root, name: str, rows: list[str], frames: int = 10) -> None:
    (root / name / "gt").mkdir(parents=True)
    (root / name / "gt" / "gt.txt").write_text("".join(f"{r}\n" for r in rows))
    (root / name / "seqinfo.ini").write_text(f"[Sequence]\nname={name}\nseqLength={frames}\n")


def _two_walkers(frames: int = 10) -> list[tuple[int, int, float, float]]:
    """(frame, id, left, top): two objects 60 px apart walking right."""
    return [(f, i, 10 + 5 * f + 60 * (i - 1), 20.0) for f in range(1, frames + 1) for i in (1, 2)]


@pytest.fixture
def gt_root(tmp_path):
    root = tmp_path / "gt"
    rows = [f"{f},{i},{x},{y},30,30,1,1,1.0" for f, i, x, y in _two_walkers()]
    rows.append("3,9,200,200,30,30,1,8,0.2")  # a distractor: a box on it is neither right nor wrong
    _sequence(root, "seq", rows)
    return root


def _write_pred(folder, rows) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "seq.txt").write_text("".join(f"{f},{i},{x},{y},30,30,0.9,-1,-1,-1\n" for f, i, x, y in rows))


def test_perfect_tracks_score_one(gt_root, tmp_path):
    _write_pred(tmp_path / "pred", [*_two_walkers(), (3, 7, 200, 200)])  # the distractor's box is removed
    result = score_tracks(gt_root, tmp_path / "pred", find_sequences(gt_root))["COMBINED"]
    assert result["HOTA"] == pytest.approx(1) and result["IDF1"] == pytest.approx(1)
    assert result["MOTA"] == pytest.approx(1) and result["IDSW"] == 0 and result["FP"] == 0


def test_a_swap_costs_two_switches_and_idf1(gt_root, tmp_path):
    swapped = [(f, (3 - i) if f > 5 else i, x, y) for f, i, x, y in _two_walkers()]  # ids exchanged after frame 5
    _write_pred(tmp_path / "pred", swapped)
    result = score_tracks(gt_root, tmp_path / "pred", find_sequences(gt_root))["seq"]
    assert result["IDSW"] == 2 and result["MOTA"] == pytest.approx(1 - 2 / 20)
    assert result["IDF1"] == pytest.approx(0.5) and result["HOTA"] < 0.8  # each identity half right


def test_misses_and_false_boxes(gt_root, tmp_path):
    rows = [r for r in _two_walkers() if r[1] == 1] + [(1, 5, 300, 300)]  # object 2 never found, one false box
    _write_pred(tmp_path / "pred", rows)
    result = score_tracks(gt_root, tmp_path / "pred", find_sequences(gt_root))["COMBINED"]
    assert result["FN"] == 10 and result["FP"] == 1 and result["MOTA"] == pytest.approx(1 - 11 / 20)


def test_cli_writes_metrics_and_refuses_bad_input_in_one_line(gt_root, tmp_path, caplog):
    _write_pred(tmp_path / "run" / "labels", _two_walkers())
    result = track_eval(gt_root, tmp_path / "run", project=tmp_path / "runs")
    assert result["combined"]["IDF1"] == pytest.approx(1) and (tmp_path / "runs" / "exp" / "metrics.json").is_file()
    (tmp_path / "bad" / "labels").mkdir(parents=True)
    (tmp_path / "bad" / "labels" / "seq.txt").write_text(
        "1,1,10,20,30,30,0.9,-1,-1,-1\n40,1,10,20,30,30,0.9,-1,-1,-1\n"
    )
    (tmp_path / "other" / "labels").mkdir(parents=True)
    (tmp_path / "other" / "labels" / "unknown.txt").write_text("1,1,10,20,30,30,0.9,-1,-1,-1\n")
    for pred, message in (
        (tmp_path / "bad", "invalid timesteps"),  # frame 40 of a 10-frame sequence
        (tmp_path / "other", "no track file matches a sequence"),
        (tmp_path / "missing", "no track files"),
    ):
        caplog.clear()
        code = main(["track-eval", "--gt", str(gt_root), "--pred", str(pred), "--project", str(tmp_path / "runs")])
        errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
        assert code == 2 and len(errors) == 1 and message in errors[0], errors
