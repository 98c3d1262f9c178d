"""The run lock is an OS lock (issue 23, case 3): many processes taking over a dead holder's lock never hold it
together, a killed holder releases it, and only the run's own temporaries are removed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from yolorep.engine.run_dir import RunLock, remove_stale_temporaries
from yolorep.errors import YolorepError

# Waits for the go file, then holds the lock 0.2 s and records when it held it (monotonic clock, shared by all).
HOLDER = """
import sys, time
from pathlib import Path
from yolorep.engine.run_dir import RunLock
from yolorep.errors import YolorepError
run, go, out = (Path(a) for a in sys.argv[1:4])
Path(f"{out}.ready").touch()
while not go.exists():
    time.sleep(0.001)
try:
    with RunLock(run):
        start = time.monotonic()
        time.sleep(0.2)
        out.write_text(f"{start} {time.monotonic()}")
except YolorepError:
    pass
"""
PROCESSES, TRIALS = 8, 5


def _dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(done.stdout)


def _wait_for(paths: list[Path], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not all(p.exists() for p in paths):
        assert time.monotonic() < deadline, "the holder processes did not start"
        time.sleep(0.01)


def test_processes_taking_over_a_dead_holders_lock_never_hold_it_together(tmp_path):
    """The pid-file lock had two holders in 42 of 200 such trials."""
    for trial in range(TRIALS):
        run, go = tmp_path / f"run{trial}", tmp_path / f"go{trial}"
        run.mkdir()
        (run / ".lock").write_text(str(_dead_pid()))  # what a killed holder of the pid-file lock left
        outs = [tmp_path / f"held{trial}_{i}" for i in range(PROCESSES)]
        holders = [subprocess.Popen([sys.executable, "-c", HOLDER, str(run), str(go), str(out)]) for out in outs]
        try:
            _wait_for([Path(f"{out}.ready") for out in outs])
            go.touch()
        finally:
            for holder in holders:
                holder.wait(timeout=60)
        spans = sorted(tuple(float(t) for t in out.read_text().split()) for out in outs if out.exists())
        assert spans, "no process took the lock"
        overlapping = [(a, b) for a, b in zip(spans, spans[1:]) if b[0] < a[1]]
        assert not overlapping, f"trial {trial}: {len(spans)} holders, overlapping {overlapping}"


def test_a_killed_holder_releases_the_lock_and_a_live_one_refuses(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    ready = tmp_path / "ready"
    code = (f"from yolorep.engine.run_dir import RunLock\nimport time, pathlib\nwith RunLock({str(run)!r}):\n"
            f"    pathlib.Path({str(ready)!r}).touch()\n    time.sleep(120)\n")  # fmt: skip
    holder = subprocess.Popen([sys.executable, "-c", code])
    try:
        _wait_for([ready])
        with pytest.raises(YolorepError, match=f"another yolorep process \\(pid {holder.pid}\\) is training"):
            RunLock(run).__enter__()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert (run / ".lock").exists()  # SIGKILL ran no clean-up, yet the kernel released the lock
    with RunLock(run):
        assert (run / ".lock").read_text() == str(os.getpid())
    assert not (run / ".lock").exists()


def test_only_the_runs_own_temporaries_are_removed(tmp_path):
    """Case 2: a resumed run deleted a user's .draft.tmp beside its folder."""
    run = tmp_path / "run"
    (run / "weights").mkdir(parents=True)
    ours = [run / "weights" / ".last.k2j4_9xa.pt.tmp", run / ".results.abcdefgh.csv.tmp"]
    theirs = [run / ".draft.tmp", run / ".notes.abcdefgh.txt.tmp", run / "weights" / ".mine.tmp"]
    for path in ours + theirs:
        path.write_text("x")
    assert sorted(remove_stale_temporaries(run)) == sorted(ours)
    assert all(p.exists() for p in theirs)
