"""The README's examples stay true: its model YAML builds and fuses, its quick start matches .ci/run."""

import re
from pathlib import Path

import torch
from helpers import relative_error

import yolorep
from yolorep.nn import randomize_batchnorm

ROOT = Path(__file__).parents[1]
README = (ROOT / "README.md").read_text()


def test_readme_model_yaml_builds_and_fuses(tmp_path):
    block = re.search(r"```yaml\n(nc: 80.*?)```", README, re.S).group(1)
    path = tmp_path / "readme.yaml"
    path.write_text(block)
    model = randomize_batchnorm(yolorep.build_model(path)).eval()
    assert model.stride.tolist() == [4.0, 8.0]
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        expected = model(x)
        assert relative_error(model.fuse()(x), expected) < 1e-5


def test_quick_start_test_command_is_what_ci_runs():
    quick = README[README.index("## Quick start") :]
    commands = re.search(r"```bash\n(.*?)```", quick, re.S).group(1).strip().splitlines()
    assert len(commands) == 2 and commands[0].endswith("yolorep demo")
    test_command = commands[1].split("&&")[-1].strip()
    assert test_command in (ROOT / ".ci" / "run").read_text()


def test_readme_fuse_example_runs(tmp_path, monkeypatch):
    block = re.search(r"```python\n(import torch, yolorep\n.*?)```", README, re.S).group(1)
    monkeypatch.chdir(tmp_path)  # it saves s_fused.pt in the working directory
    exec(compile(block.replace("640, 640", "128, 128"), "README.md", "exec"), {})
    assert (tmp_path / "s_fused.pt").is_file()
