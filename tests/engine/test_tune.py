"""``yolorep tune``: Optuna trials in parallel processes sharing a SQLite study, each on the user's time budget,
over the search ranges declared beside the hyperparameters' valid ranges; the best written as a --hyp YAML."""

from __future__ import annotations

import csv
import math

import pytest
import yaml
from helpers import TINY_HYP

from yolorep.cli import main
from yolorep.engine.train.tune import tune
from yolorep.errors import ArgumentError
from yolorep.options import Hyperparameters, TrainOptions
from yolorep.options.tune import search_space

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize(("name", "search"), list(search_space().items()))
def test_every_search_range_lies_inside_the_valid_range(name, search):
    for value in (search.low, search.high):
        Hyperparameters(**{name: type(getattr(Hyperparameters(), name))(value)})  # raises when out of range
    assert search.low < search.high and (not search.log or search.low > 0)


def test_two_trials_in_two_processes_share_a_sqlite_study(tiny_shapes_yaml, tmp_path):
    optuna = pytest.importorskip("optuna")
    fixed = {k: v for k, v in TINY_HYP.items() if k != "mosaic"}
    results = tune(data=str(tiny_shapes_yaml), model="yolorep-n.yaml", imgsz=64, batch=4, device="cpu", workers=0,
                   time=6 / 3600, epochs=3, trials=2, processes=2, space="lr0,mosaic,flipud", project=str(tmp_path),
                   loggers="none", **fixed)  # fmt: skip
    study = optuna.load_study(study_name="exp", storage=f"sqlite:///{tmp_path / 'exp' / 'study.db'}")
    trials = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(trials) == results["trials"] == 2
    assert {t.user_attrs["process"] for t in trials} == {0, 1}  # one trial in each process
    for trial in trials:
        assert set(trial.params) == {"lr0", "mosaic", "flipud"} and 1e-5 <= trial.params["lr0"] <= 0.1
        last = f"{trial.user_attrs['save_dir']}/weights/last.pt"
        assert (tmp_path / "exp" / "trials").as_posix() in last and math.isfinite(trial.value)
    assert trials[0].params != trials[1].params  # the processes draw their own values
    best = max(trials, key=lambda t: t.value)
    assert results["best_value"] == best.value and results["best_params"] == best.params
    # best_hyp.yaml: the searched values and the fixed ones, which --hyp takes as they are
    written = yaml.safe_load((tmp_path / "exp" / "best_hyp.yaml").read_text())
    assert written == {**fixed, **best.params}
    options = TrainOptions.create({"hyp": str(tmp_path / "exp" / "best_hyp.yaml")})
    assert options.hyp.lr0 == best.params["lr0"] and set(options.hyp_set) == set(written)
    with open(tmp_path / "exp" / "trials.csv") as f:
        rows = list(csv.DictReader(f))
    assert [row["state"] for row in rows] == ["COMPLETE", "COMPLETE"] and "flipud" in rows[0]
    assert (tmp_path / "exp" / "process0.log").read_text().count("results saved to") == 1


def test_tune_checks_its_options_before_starting(tiny_shapes_yaml, tmp_path):
    with pytest.raises(ArgumentError, match="--time HOURS is required"):
        tune(data=str(tiny_shapes_yaml), project=str(tmp_path))
    with pytest.raises(ArgumentError, match="--space lr0,nbs: 'nbs' has no search range; searchable: lr0, lrf"):
        tune(data=str(tiny_shapes_yaml), time=0.1, space="lr0,nbs", project=str(tmp_path))
    with pytest.raises(ArgumentError, match="nothing to search"):
        tune(data=str(tiny_shapes_yaml), time=0.1, space="lr0", lr0=0.01, project=str(tmp_path))
    with pytest.raises(ArgumentError, match="--resume is not a tune option; .* --study and --storage continue"):
        tune(data=str(tiny_shapes_yaml), time=0.1, resume=True, project=str(tmp_path))
    with pytest.raises(SystemExit):  # not offered on the command line either
        main(["tune", "--data", str(tiny_shapes_yaml), "--time", "0.1", "--resume", "--project", str(tmp_path)])
    assert not list(tmp_path.iterdir())
