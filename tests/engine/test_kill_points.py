"""Every checkpoint write point is a kill point that resumes to the same result (issue 11, cases 1, 13, 14, 15)."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from helpers import TINY_HYP

from yolorep.cli import main
from yolorep.engine.train import checkpoints as trainer_module
from yolorep.engine.train import setup as train_setup
from yolorep.engine.train.setup import train
from yolorep.errors import YolorepError

pytestmark = pytest.mark.usefixtures("one_thread")
# figures are not what these tests check, and they took a third of a tiny run
RUN = dict(
    model="yolorep-n.yaml", epochs=2, imgsz=64, batch=4, device="cpu", workers=0, hyp=dict(TINY_HYP), plots=False
)


class Killed(BaseException):
    """Stands in for SIGKILL: nothing of yolorep's may catch it."""


def _count_writes(monkeypatch, kill_before: int | None = None) -> list[str]:
    """Record the checkpoint writes; with ``kill_before``, die just before that write (1-based) starts."""
    written: list[str] = []
    original = trainer_module.save_checkpoint

    def save(model, path, **meta):
        if len(written) + 1 == kill_before:
            raise Killed
        original(model, path, **meta)
        written.append(Path(path).name)

    monkeypatch.setattr(trainer_module, "save_checkpoint", save)
    return written


@pytest.fixture(scope="module")
def reference(tiny_shapes_yaml, tmp_path_factory) -> tuple[Path, list[str]]:
    """An uninterrupted run (what every interrupted and resumed run must end with) and its checkpoint writes."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        written = _count_writes(monkeypatch)
        run = Path(
            train(data=tiny_shapes_yaml, project=tmp_path_factory.mktemp("reference"), name="ref", **RUN)["save_dir"]
        )
    assert written[:2] == ["last.pt", "best.pt"]
    return run, written


def _same_weights(a: Path, b: Path) -> None:
    sa, sb = (torch.load(p, weights_only=True)["state_dict"] for p in (a, b))
    assert sa.keys() == sb.keys()
    for key in sa:
        torch.testing.assert_close(sa[key], sb[key], rtol=1e-5, atol=1e-6, msg=key)


def test_every_write_point_resumes_to_the_same_result(reference, tiny_shapes_yaml, tmp_path, monkeypatch):
    """Killed before each checkpoint write in turn (mid-write leaves only a temporary, atomic writes see to that),
    and once after the last write, before the final validation: each resumes to the uninterrupted run's files."""
    ref_run, writes = reference
    ref_metrics = json.loads((ref_run / "metrics.json").read_text())
    for kill_before in range(2, len(writes) + 2):  # before write 1 there is nothing to resume: a fresh start
        run = tmp_path / f"kill{kill_before}"
        with monkeypatch.context() as patch:
            _count_writes(patch, kill_before if kill_before <= len(writes) else None)
            if kill_before > len(writes):
                patch.setattr(train_setup, "_final_validation", lambda *a: (_ for _ in ()).throw(Killed()))
            with pytest.raises(Killed):
                train(data=tiny_shapes_yaml, project=tmp_path, name=run.name, **RUN)
        weights = run / "weights"
        (weights / ".last.abcd.pt.tmp").write_bytes(b"half a checkpoint")  # what SIGKILL mid-write leaves behind
        (run / ".lock").write_text(str(_dead_pid()))  # and the lock of the dead process
        assert not (run / "metrics.json").exists()
        train(resume=str(weights / "last.pt"))
        assert sorted(p.name for p in weights.iterdir()) == ["best.pt", "last.pt"], kill_before  # temporaries gone
        assert not (run / ".lock").exists()
        _same_weights(weights / "last.pt", ref_run / "weights" / "last.pt")
        _same_weights(weights / "best.pt", ref_run / "weights" / "best.pt")
        assert json.loads((run / "metrics.json").read_text())["map50_95"] == ref_metrics["map50_95"], kill_before


def _dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(done.stdout)


def test_a_second_process_on_the_same_run_is_refused(reference, tmp_path, caplog):
    """Case 15: a run being trained (its lock held by a live process) cannot be resumed a second time."""
    run = tmp_path / "ref"
    shutil.copytree(reference[0], run)
    ready = tmp_path / "ready"
    code = (f"from yolorep.engine.run_dir import RunLock\nimport time, pathlib\nwith RunLock({str(run)!r}):\n"
            f"    pathlib.Path({str(ready)!r}).touch()\n    time.sleep(120)\n")  # fmt: skip
    holder = subprocess.Popen([sys.executable, "-c", code])
    try:
        while not ready.exists():
            assert holder.poll() is None, "the lock holder died"
            time.sleep(0.01)
        with caplog.at_level(logging.ERROR, logger="yolorep"):
            assert main(["train", "--resume", str(run / "weights" / "last.pt")]) == 2
    finally:
        holder.kill()
        holder.wait()
    assert f"another yolorep process (pid {holder.pid}) is training in this run" in caplog.text


def test_resume_from_elsewhere_with_moved_data(reference, tiny_shapes_yaml, tmp_path, monkeypatch, caplog):
    """Case 13: the data path is stored resolved (so a run resumes from any folder) and --data may change."""
    run = tmp_path / "ref"
    shutil.copytree(reference[0], run)
    last = run / "weights" / "last.pt"
    stored = torch.load(last, weights_only=True)
    assert Path(stored["train_args"]["data"]).is_absolute()
    stored["epoch"] = 0  # pretend the second epoch is still to do
    torch.save(stored, last)
    moved = tmp_path / "moved"
    shutil.copytree(tiny_shapes_yaml.parent, moved)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    with caplog.at_level(logging.INFO):
        train(resume=str(last), data=str(moved / "shapes.yaml"))
    assert f"resume: data changed from {stored['train_args']['data']} to {moved / 'shapes.yaml'}" in caplog.text
    assert torch.load(last, weights_only=True)["epoch"] == 1
    with pytest.raises(YolorepError, match="--imgsz 96 \\(the run has 64\\) was given; only --data"):
        train(resume=str(last), imgsz=96)
