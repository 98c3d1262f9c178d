"""``yolorep tune``: hyperparameter search with Optuna, trials in parallel processes sharing one study.

Each trial trains a model with hyperparameters drawn by Optuna's TPE sampler from the search ranges declared in
``Hyperparameters`` (``search=``, beside each valid range), on the user's time budget (``--time``: every trial gets
the same hours, so a search costs ``trials * time / processes``), and scores ``best.pt`` by its mAP50-95
(pycocotools). ``--processes N`` runs N trials at once, each process with its share of the CPU threads (and with
``--device 0,1`` a GPU each in turn); they share the study through Optuna's RDB storage: a SQLite file in the
search folder by default, or ``--storage`` a database URL, which processes on other machines can share (run the
same command, with the same ``--storage`` and ``--study``, on each). The best trial's hyperparameters are written
as ``best_hyp.yaml``, which ``yolorep train --hyp`` takes; ``trials.csv`` lists every trial.
"""

from __future__ import annotations

import csv
import logging
import multiprocessing
import os
import time
import warnings
from pathlib import Path
from typing import Any

import yaml

from yolorep.atomic import atomic_path, write_text_atomic
from yolorep.engine.run_dir import increment_run_dir
from yolorep.errors import ArgumentError, YolorepError
from yolorep.options import Hyperparameters, TrainOptions
from yolorep.options.tune import NOT_TUNE_OPTIONS, TuneOptions, search_space

__all__ = ["tune"]

LOGGER = logging.getLogger(__name__)
POLL_SECONDS = 2.0


def _optuna() -> Any:
    try:
        import optuna
    except ImportError:
        raise ArgumentError("yolorep tune needs Optuna: pip install 'yolorep[tune]'") from None
    return optuna


def _storage(optuna: Any, url: str) -> Any:
    """The study's storage: SQLite waits for a lock instead of failing at once (several processes write to it), and
    heartbeats mark the trials of a process that died as failed."""
    engine = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    with warnings.catch_warnings():  # heartbeats are marked experimental since Optuna 2.9
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(url, engine_kwargs=engine, heartbeat_interval=60, grace_period=180)


def tune(*args: Any, **kwargs: Any) -> dict[str, Any]:
    """Search hyperparameters (see the module docstring); returns the best trial's ``best_value`` (mAP50-95),
    ``best_params``, ``best_trial`` (its number), ``best_hyp`` (the YAML's path), ``trials`` (completed) and
    ``save_dir``.

    Keywords are ``TuneOptions`` (``trials``, ``processes``, ``storage``, ``study``, ``space``, ``project``,
    ``name``, ``sampler_seed``) and every trial's training options (``data``, ``model``, ``time`` (required),
    ``imgsz``, ``epochs``, ``device``, ...; a hyperparameter given, ``lr0=0.002``, is fixed and not searched).
    """
    tune_keys = {f.name for f, _ in TuneOptions.specs()}
    options = TuneOptions.build(args, {k: v for k, v in kwargs.items() if k in tune_keys})
    given = {k: v for k, v in kwargs.items() if k not in tune_keys and v is not None}
    refused = [key for key in NOT_TUNE_OPTIONS if key in given]
    if refused:
        raise ArgumentError(f"tune: --{refused[0].replace('_', '-')} is not a tune option; trials go to the search's "
                            "own folder (--project, --name); --study and --storage continue a search")  # fmt: skip
    base = TrainOptions.create(given)  # every trial's training options, checked before anything starts
    if base.time is None:
        raise ArgumentError("tune: --time HOURS is required: each trial trains on this budget")
    fixed = {key: getattr(base.hyp, key) for key in base.hyp_set}
    space = {name: search for name, search in search_space(options.space).items() if name not in fixed}
    if not space:
        raise ArgumentError("tune: nothing to search: every hyperparameter of --space is fixed by a flag or --hyp")
    optuna = _optuna()
    save_dir = increment_run_dir(options.project, options.name)
    storage = options.storage or f"sqlite:///{(save_dir / 'study.db').resolve()}"
    study_name = options.study or save_dir.name
    optuna.create_study(storage=_storage(optuna, storage), study_name=study_name, direction="maximize",
                        load_if_exists=True)  # fmt: skip
    job = _job(options, given, base, space, save_dir, storage, study_name)
    LOGGER.info("tune: %d trials of %.3g h in %d process(es), study %s in %s, searching %s", options.trials, base.time,
                options.processes, study_name, save_dir, ", ".join(space))  # fmt: skip
    _run_processes(job, options.processes)
    return _report(optuna, job, base.hyp, fixed)


def _job(
    options: TuneOptions, given: dict, base: TrainOptions, space: dict, save_dir: Path, storage: str, study: str
) -> dict[str, Any]:
    """What every process needs, in plain values (they are started with spawn)."""
    processes = options.processes
    devices = (base.device or "").split(",") if base.device and "," in base.device else [base.device]
    return {
        "storage": storage,
        "study": study,
        "train": {k: v for k, v in given.items() if k != "device"},
        "devices": devices,
        "space": {name: (s.low, s.high, s.log) for name, s in space.items()},
        "int_keys": [f.name for f, _ in Hyperparameters.specs() if isinstance(f.default, int)],
        "save_dir": str(save_dir),
        "shares": [options.trials // processes + (k < options.trials % processes) for k in range(processes)],
        "seed": options.sampler_seed,
        "threads": max(1, (os.cpu_count() or 1) // processes),
    }


def _run_processes(job: dict[str, Any], processes: int) -> None:
    """Run the trials: in this process when there is one, else in ``processes`` spawned ones, reporting each trial
    as it finishes."""
    if processes == 1:
        _work(job, 0, log_file=None)
        return
    context = multiprocessing.get_context("spawn")  # no forked copy of this process's threads and CUDA state
    workers = [context.Process(target=_work, args=(job, k, _log_file(job, k)), daemon=False) for k in range(processes)]
    for worker in workers:
        worker.start()
    seen: set[int] = set()
    try:
        while any(worker.is_alive() for worker in workers):
            time.sleep(POLL_SECONDS)
            _log_finished(job, seen)
    except BaseException:
        for worker in workers:
            worker.terminate()
        raise
    for worker in workers:
        worker.join()
    _log_finished(job, seen)
    failed = [k for k, worker in enumerate(workers) if worker.exitcode != 0]
    if failed:
        logs = ", ".join(str(_log_file(job, k)) for k in failed)
        raise YolorepError(f"tune: process(es) {failed} stopped with an error; see {logs}")


def _log_file(job: dict[str, Any], index: int) -> Path:
    return Path(job["save_dir"]) / f"process{index}.log"


def _log_finished(job: dict[str, Any], seen: set[int]) -> None:
    optuna = _optuna()
    study = optuna.load_study(study_name=job["study"], storage=_storage(optuna, job["storage"]))
    for trial in study.get_trials(deepcopy=False):
        if trial.number in seen or not trial.state.is_finished():
            continue
        seen.add(trial.number)
        shown = ", ".join(f"{k}={v:.4g}" for k, v in trial.params.items())
        result = f"mAP50-95 {trial.value:.4f}" if trial.value is not None else trial.state.name.lower()
        LOGGER.info("trial %d (process %s): %s: %s", trial.number, trial.user_attrs.get("process", "?"), result, shown)


def _work(job: dict[str, Any], index: int, log_file: Path | None) -> None:
    """One process: its share of the trials, drawn from the shared study."""
    import torch

    from yolorep.engine.train.setup import train

    if log_file is not None:  # a spawned process: its training logs go to its own file
        handler = logging.FileHandler(log_file)
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        root = logging.getLogger("yolorep")
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        torch.set_num_threads(job["threads"])
    optuna = _optuna()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.TPESampler(seed=job["seed"] + index)  # processes must not draw the same values
    study = optuna.load_study(study_name=job["study"], storage=_storage(optuna, job["storage"]), sampler=sampler)
    device = job["devices"][index % len(job["devices"])]

    def objective(trial: Any) -> float:
        params = {}
        for name, (low, high, log) in job["space"].items():
            if name in job["int_keys"]:
                params[name] = trial.suggest_int(name, int(low), int(high), log=log)
            else:
                params[name] = trial.suggest_float(name, low, high, log=log)
        trial.set_user_attr("process", index)
        results = train(**job["train"], **params, device=device, project=str(Path(job["save_dir"]) / "trials"),
                        name=f"trial{trial.number}")  # fmt: skip
        trial.set_user_attr("save_dir", results["save_dir"])
        return float(results["map50_95"])

    study.optimize(objective, n_trials=job["shares"][index], catch=(YolorepError,))


def _report(optuna: Any, job: dict[str, Any], base: Hyperparameters, fixed: dict[str, Any]) -> dict[str, Any]:
    """trials.csv, best_hyp.yaml and the summary of the search."""
    study = optuna.load_study(study_name=job["study"], storage=_storage(optuna, job["storage"]))
    save_dir = Path(job["save_dir"])
    trials = study.get_trials(deepcopy=False)
    _write_trials(save_dir / "trials.csv", trials, list(job["space"]))
    done = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not done:
        raise YolorepError(f"tune: no trial completed; see the logs in {save_dir}")
    best = study.best_trial
    chosen = {**fixed, **best.params}
    base.replace(**chosen)  # in range: the search ranges lie inside the valid ones
    header = (f"# yolorep tune: best of {len(done)} trials (trial {best.number}, mAP50-95 {best.value:.4f}, study "
              f"{job['study']}); train with: yolorep train --hyp best_hyp.yaml\n")  # fmt: skip
    best_hyp = write_text_atomic(save_dir / "best_hyp.yaml", header + yaml.safe_dump(chosen, sort_keys=False))
    LOGGER.info("tune: best trial %d, mAP50-95 %.4f: %s; written to %s", best.number, best.value,
                ", ".join(f"{k}={v:.4g}" for k, v in best.params.items()), best_hyp)  # fmt: skip
    return {"best_value": best.value, "best_params": dict(best.params), "best_trial": best.number,
            "best_hyp": str(best_hyp), "trials": len(done), "save_dir": str(save_dir)}  # fmt: skip


def _write_trials(path: Path, trials: list, names: list[str]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["trial", "state", "mAP50-95", "seconds", "process", "save_dir", *names])
        for t in trials:
            seconds = (t.datetime_complete - t.datetime_start).total_seconds() if t.datetime_complete else ""
            writer.writerow([t.number, t.state.name, "" if t.value is None else t.value, seconds,
                             t.user_attrs.get("process", ""), t.user_attrs.get("save_dir", ""),
                             *(t.params.get(name, "") for name in names)])  # fmt: skip
