"""results.csv every epoch; results.png redrawn only when drawing costs a small share of the time since the last."""

from __future__ import annotations

import csv
from types import SimpleNamespace

import pytest

import yolorep.plots
from yolorep.engine.train import results as train_results
from yolorep.engine.train.results import PLOT_SHARE, ResultsFiles

DRAW_SECONDS, EPOCH_SECONDS = 2.0, 10.0


@pytest.fixture
def clock(monkeypatch):
    """A fake perf_counter; every real results.png drawing advances it by DRAW_SECONDS."""
    now = [0.0]
    real_plot = yolorep.plots.plot_results_csv
    draws = []

    def plot(csv_path, png_path):
        draws.append(len(list(csv.DictReader(open(csv_path)))))
        now[0] += DRAW_SECONDS
        return real_plot(csv_path, png_path)

    monkeypatch.setattr(train_results.time, "perf_counter", lambda: now[0])
    monkeypatch.setattr(yolorep.plots, "plot_results_csv", plot)
    return now, draws


def _epoch(trainer, now, results):
    now[0] += EPOCH_SECONDS
    epoch = len(trainer.state.history)
    trainer.state.history.append({"epoch": epoch, "train/box_loss": 1.0 / (epoch + 1), "metrics/mAP50-95": 0.1})
    results.write(trainer)


def test_csv_every_epoch_png_after_the_first_then_when_cheap_and_at_the_end(clock, tmp_path):
    now, draws = clock
    trainer = SimpleNamespace(state=SimpleNamespace(history=[]), save_dir=tmp_path)
    results = ResultsFiles()
    epochs_between = int(DRAW_SECONDS / PLOT_SHARE / EPOCH_SECONDS)  # drawing at most PLOT_SHARE of the time
    for _ in range(2 * epochs_between + 3):
        _epoch(trainer, now, results)
        assert len(list(csv.DictReader(open(tmp_path / "results.csv")))) == len(trainer.state.history)
    assert draws == [1, 1 + epochs_between, 1 + 2 * epochs_between]
    results.draw(trainer)  # end of training: the last rows are drawn
    results.draw(trainer)  # nothing new: not drawn again
    assert draws[-1] == len(trainer.state.history) and len(draws) == 4
    assert (tmp_path / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
