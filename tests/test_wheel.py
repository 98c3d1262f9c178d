"""The built wheel works anywhere: installed (not editable) in a fresh virtual environment and run from an empty
folder, it finds its model and data YAMLs, generates the shapes set, trains, predicts and validates with the
checkpoint's own image size and data set."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]


def _run(command: list, cwd: Path, env: dict, timeout: int = 600) -> str:
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{command}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout + done.stderr


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, Path, dict]:
    """(venv bin folder, an empty working folder, environment) with the wheel installed."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"  # a copy, so that building writes nothing into the repository
    anywhere = shutil.ignore_patterns(".git", "*.egg-info", "__pycache__", ".*_cache")

    def ignored(folder: str, names: list[str]) -> set[str]:  # runs/, datasets/, build/ of the root, not the package's
        top = {"runs", "datasets", "build"} if Path(folder) == ROOT else set()
        return anywhere(folder, names) | (top & set(names))

    shutil.copytree(ROOT, source, symlinks=True, ignore=ignored)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "YOLOREP_DATASETS")}
    build = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(work)]
    _run([*build, str(source)], work, env)
    wheel = next(work.glob("yolorep-*.whl"))
    venv = work / "venv"
    # the venv sees the torch and other dependencies of the environment running the tests (a virtual environment
    # too), through a path file, which adds no editable install's import hook; yolorep comes only from the wheel
    _run([sys.executable, "-m", "venv", str(venv)], work, env)
    site_packages = next((venv / "lib").glob("python*/site-packages"))
    outer = dict.fromkeys(sysconfig.get_paths()[key] for key in ("purelib", "platlib"))
    (site_packages / "outer_environment.pth").write_text("".join(f"{path}\n" for path in outer))
    _run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps", str(wheel)], work, env)
    empty = work / "empty"
    empty.mkdir()
    return venv / "bin", empty, dict(env, OMP_NUM_THREADS="1")


def test_installed_package_is_the_wheel(installed):
    bin_dir, empty, env = installed
    out = _run([str(bin_dir / "python"), "-c", "import yolorep; print(yolorep.__file__)"], empty, env)
    assert str(bin_dir.parent) in out and "site-packages" in out


def test_info_train_predict_val_from_an_empty_folder(installed):
    bin_dir, empty, env = installed
    yolorep = str(bin_dir / "yolorep")
    assert "fused" in _run([yolorep, "info", "yolorep-n.yaml", "--imgsz", "64"], empty, env)
    train = [yolorep, "train", "--data", "shapes.yaml", "--epochs", "1", "--imgsz", "64", "--batch", "64",
             "--workers", "0", "--device", "cpu", "--plots", "false", "mosaic=0"]  # fmt: skip
    out = _run(train, empty, env)
    assert "generating the synthetic shapes set" in out and (empty / "datasets" / "shapes" / "annotations").is_dir()
    best = empty / "runs" / "train" / "exp" / "weights" / "best.pt"
    assert best.is_file() and (empty / "runs" / "train" / "exp" / "metrics.json").is_file()
    image = empty / "datasets" / "shapes" / "images" / "val" / "000000.jpg"
    out = _run([yolorep, "predict", "--weights", str(best), "--source", str(image), "--device", "cpu"], empty, env)
    assert "at shape (1, 3, 64, 64)" in out  # the checkpoint's training size, not 640
    val = [yolorep, "val", "--weights", str(best), "--workers", "0", "--device", "cpu", "--plots", "false"]
    out = _run(val, empty, env)
    assert "the data set" in out and "pycocotools COCOeval" in out and (empty / "runs" / "val" / "exp").is_dir()
    track = [yolorep, "track", "--weights", str(best), "--source", str(image), "--tracker", "botsort.yaml"]
    out = _run([*track, "--device", "cpu", "--save-txt"], empty, env)  # the tracker YAMLs ship in the wheel
    assert "botsort" in out and (empty / "runs" / "track" / "exp" / "labels" / "val.txt").is_file()


def test_the_wheel_carries_its_licence(installed):
    bin_dir, empty, env = installed
    script = (
        "from importlib.metadata import files, metadata\n"
        "print(metadata('yolorep')['License-Expression'])\n"
        "print(next(f for f in files('yolorep') if f.name == 'LICENSE').read_text().split()[:3])\n"
    )
    out = _run([str(bin_dir / "python"), "-c", script], empty, env)
    assert out.splitlines()[:2] == ["Apache-2.0", "['Apache', 'License', 'Version']"]
