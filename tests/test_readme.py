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


DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def test_torch_install_lines_pin_the_versions_pyproject_allows():
    """A copied install line must not fetch a torch that yolorep refuses (pyproject caps torch and torchvision)."""
    pyproject = (ROOT / "pyproject.toml").read_text()
    caps = dict(re.findall(r'"(torch|torchvision)>=[\d.]+,<=([\d.]+)"', pyproject))
    assert set(caps) == {"torch", "torchvision"}
    lines = [line for doc in DOCS for line in re.findall(r"pip install torch[= ][^`\n]*", doc.read_text())]
    assert any("--index-url https://download.pytorch.org/whl/cpu" in line for line in lines)
    for line in lines:
        assert f"torch=={caps['torch']} torchvision=={caps['torchvision']}" in line, line


def test_every_data_yaml_the_docs_use_ships_or_is_made_by_them():
    """`--data X.yaml` (and check-data, convert) name a built-in YAML, a placeholder (DATA.yaml, my.yaml), or what
    a convert in the same document writes."""
    from yolorep.assets import find_builtin_data

    pattern = r"(?:--data[ =]|data=\"?|check-data |convert --from \w+ --to \w+ )([\w./-]+\.ya?ml)"
    for doc in DOCS:
        text = doc.read_text()
        written = {f"{dst}/data.yaml" for dst in re.findall(r"yolorep convert --from \w+ --to \w+ \S+ (\S+)", text)}
        for name in re.findall(pattern, text):
            placeholder = Path(name).stem.isupper() or Path(name).stem.startswith("my")  # DATA.yaml, my.yaml
            ok = find_builtin_data(name) is not None or placeholder or name in written
            assert ok, f"{doc.name}: {name} ships nowhere; use a built-in YAML, DATA.yaml, or show how to write it"


def test_the_raccoon_recipe_and_the_shipped_yaml(tmp_path, monkeypatch):
    """The README's commands for the raccoon photos, run on three stand-ins, give the data set raccoon.yaml reads."""
    import subprocess

    from voc_files import obj, voc_xml, write_tree

    from yolorep.datasets.records import load_records
    from yolorep.datasets.spec import load_data_spec

    names = ("raccoon-1", "raccoon-10", "raccoon-2")
    files = {f"images/{n}.jpg": (30, 40) for n in names}
    files.update({f"annotations/{n}.xml": voc_xml(obj("raccoon", 2, 3, 20, 25)) for n in names})
    write_tree(tmp_path / "datasets" / "raccoon", files)
    recipe = re.search(r"(cd datasets/raccoon && ls images .*)", README).group(1)
    subprocess.run(["bash", "-c", recipe], cwd=tmp_path, check=True)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("YOLOREP_DATASETS", raising=False)
    spec = load_data_spec("raccoon.yaml")
    assert spec.layout.name == "voc" and spec.names == ("raccoon",) and spec.root == tmp_path / "datasets" / "raccoon"
    records = load_records(spec, "train").records
    assert [r.path.name for r in records] == ["raccoon-1.jpg", "raccoon-10.jpg", "raccoon-2.jpg"]  # sorted as text
    assert records[0].boxes_xyxy.tolist() == [[1, 2, 20, 25]]
