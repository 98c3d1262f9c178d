"""Model YAML parsing: every error names the file, line, row and module and says what to do."""

import pytest

from yolorep.config import load_model_spec, resolve_model_path
from yolorep.errors import ConfigError


def _write(tmp_path, backbone: str, head: str = "  - [[-1, 0], 1, Detect, [nc]]\n", top: str = "nc: 2\n") -> str:
    path = tmp_path / "bad.yaml"
    path.write_text(f"{top}backbone:\n{backbone}head:\n{head}")
    return str(path)


def test_rows_become_layer_specs_with_absolute_inputs(tmp_path):
    spec = load_model_spec(_write(tmp_path, "  - [-1, 1, Conv, [16, 3, 2]]\n  - [-1, 2, Conv, {out_channels: 8}]\n"))
    assert spec.name == "bad" and spec.nc == 2 and spec.scale is None
    first, second, head = spec.layers
    assert (first.inputs, first.args, first.kwargs) == (-1, (16, 3, 2), {})
    assert (second.inputs, second.repeats, second.kwargs) == (0, 2, {"out_channels": 8})
    assert head.inputs == (1, 0) and head.args == (2,)  # 'nc' substituted by the class count
    assert head.where.endswith("bad.yaml:6: head[0] Detect")


def test_scale_comes_from_the_argument_or_the_file_name():
    assert load_model_spec("yolorep-s.yaml").scale == "s"
    assert load_model_spec("yolorep.yaml").scale == "n"  # the first scale of the file
    spec = load_model_spec("yolorep.yaml", scale="m")
    assert (spec.scale, spec.width, spec.max_channels) == ("m", 0.75, 768)
    assert "scale" not in spec.cfg and "yaml_file" not in spec.cfg  # the YAML mapping is stored as written
    again = load_model_spec(spec.cfg, scale=spec.scale, name=spec.name)
    assert (again.name, again.scale, again.width) == (spec.name, spec.scale, spec.width)
    assert [(r.inputs, r.repeats, r.module, r.args, r.kwargs) for r in again.layers] == [
        (r.inputs, r.repeats, r.module, r.args, r.kwargs) for r in spec.layers
    ]
    path, scale = resolve_model_path("yolorep-l.yaml")
    assert path.name == "yolorep.yaml" and scale == "l"


def test_bad_from_index(tmp_path):
    path = _write(tmp_path, "  - [-1, 1, Conv, [16, 3, 2]]\n  - [[-1, 5], 1, Concat, [1]]\n")
    with pytest.raises(
        ConfigError, match=r"backbone\[1\] Concat: 'from' index 5 points to layer 5, but only layers 0\.\.0"
    ):
        load_model_spec(path)


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("  - [-1, 1, Conv]\n  - 7\n", r"bad\.yaml:4: backbone\[1\]: a row is \[from, repeats, module, args\]"),
        ("  - [-1, 0, Conv, [16]]\n", r"backbone\[0\] Conv: repeats must be a positive integer; got 0"),
        ("  - [x, 1, Conv, [16]]\n", "'from' must be an integer or a list of integers; got 'x'"),
        ("  - [[], 1, Conv, [16]]\n", "'from' is an empty list"),
        ("  - [-1, 1, 12, [16]]\n", "the module name must be a string; got 12"),
        ("  - [-1, 1, Conv, 16]\n", "args must be a list or a mapping of parameter names; got 16"),
    ],
)
def test_malformed_rows(tmp_path, row, message):
    with pytest.raises(ConfigError, match=message):
        load_model_spec(_write(tmp_path, row))


@pytest.mark.parametrize(
    ("top", "message"),
    [
        ("nc: 0\n", "'nc' must be a positive integer"),
        ("nc: two\n", "'nc' must be a positive integer"),
        ("nc: 2\nscales: [1, 2]\n", "'scales' must map a scale name"),
        ("nc: 2\nscales:\n  n: [0.3, 0.2]\n", r"scales\.n must be \[depth, width, max_channels\]"),
    ],
)
def test_malformed_top_level(tmp_path, top, message):
    with pytest.raises(ConfigError, match=message):
        load_model_spec(_write(tmp_path, "  - [-1, 1, Conv, [16]]\n", top=top))


def test_missing_file_bad_scale_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="model YAML not found; give a path .* yolorep-n.yaml, yolorep-s.yaml"):
        load_model_spec(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match=r"unknown scale 'x' \(yolorep.yaml defines n, s, m, l\); use one of: "
                       "yolorep-n.yaml, yolorep-s.yaml, yolorep-m.yaml, yolorep-l.yaml"):  # fmt: skip
        load_model_spec("yolorep-x.yaml")
    with pytest.raises(ConfigError, match="yolorepn.yaml: model YAML not found; did you mean yolorep-n.yaml?"):
        load_model_spec("yolorepn.yaml")
    with pytest.raises(ConfigError, match="yolov8q.yaml: model YAML not found; did you mean yolov8-"):
        load_model_spec("yolov8q.yaml")  # ultralytics' spelling, but no scale q

    (tmp_path / "broken.yaml").write_text("nc: [1\n")
    with pytest.raises(ConfigError, match="broken.yaml: not valid YAML"):
        load_model_spec(tmp_path / "broken.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="expected a mapping with nc, backbone and head; got list"):
        load_model_spec(tmp_path / "list.yaml")
    (tmp_path / "plain.yaml").write_text(
        "nc: 2\nbackbone:\n  - [-1, 1, Conv, [16]]\nhead:\n  - [[0], 1, Detect, [nc]]\n"
    )
    with pytest.raises(ConfigError, match="scale 's' requested but the file has no 'scales' section"):
        load_model_spec(tmp_path / "plain.yaml", scale="s")


@pytest.mark.parametrize(
    "typed, family, scale",
    [("yolov8n.yaml", "yolov8.yaml", "n"), ("yolo11s.yaml", "yolo11.yaml", "s"), ("yolov6n.yaml", "yolov6.yaml", "n")],
)
def test_ultralytics_model_names(typed, family, scale):
    """What an ultralytics user types selects the same family and scale as yolorep's dashed name."""
    assert resolve_model_path(typed) == resolve_model_path(family.replace(".yaml", f"-{scale}.yaml"))
    path, found = resolve_model_path(typed)
    assert (path.name, found) == (family, scale)
