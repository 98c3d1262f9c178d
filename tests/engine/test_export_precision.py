"""``export --precision`` end to end on a tiny model (CPU flags mocked where the rule decides): the precision chosen,
recorded with its reason, checked with its tolerance, measured with data; INT8 that quantizes every convolution;
``--half`` on each kind of CPU; ``benchmark --formats auto``."""

import json
import logging
import re
import subprocess
import sys

import pytest
import torch

import yolorep
from yolorep.cli import main
from yolorep.engine.deploy import cpu as cpu_module
from yolorep.engine.deploy import export, load_backend, trial
from yolorep.engine.deploy.quantize import float_convs
from yolorep.engine.deploy.tolerance import TOLERANCES
from yolorep.engine.predict.predictor import Detector
from yolorep.errors import ArgumentError, YolorepError
from yolorep.nn import randomize_batchnorm

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

pytestmark = pytest.mark.usefixtures("one_thread")

IMGSZ = 64
AMX = "avx2 avx512f avx512_vnni avx512_bf16 avx512_fp16 amx_bf16 amx_tile amx_int8"
AVX2 = "avx2 fma"


@pytest.fixture
def as_cpu(monkeypatch):
    def act_as(flags: str) -> None:
        monkeypatch.setattr(cpu_module, "cpu_flags", lambda: frozenset(flags.split()))

    return act_as


@pytest.fixture(scope="module")
def model():
    net = randomize_batchnorm(yolorep.build_model("yolorep-n.yaml", nc=3), seed=2).eval()
    net.names = ["circle", "square", "triangle"]
    return net


@pytest.fixture
def weights(model, tmp_path):
    return yolorep.save(model, tmp_path / "w.pt")


def _openvino_runs_bf16() -> bool:
    import openvino

    return "BF16" in openvino.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


def _logged_tolerance(text: str) -> float:
    return float(re.search(r"px in boxes \(tolerance ([0-9.e-]+)\)", text).group(1))


@pytest.mark.parametrize("flags, expected", [(AMX, "bf16"), (AVX2, "fp32")])
def test_openvino_auto_follows_the_cpu_and_records_why(flags, expected, weights, as_cpu, caplog):
    pytest.importorskip("openvino")
    as_cpu(flags)
    caplog.set_level(logging.INFO)
    path = export(weights, format="openvino", imgsz=IMGSZ)
    backend = load_backend(path, "cpu")
    assert backend.info.precision == expected
    why = "this CPU has AMX" if expected == "bf16" else "this CPU has no native bf16 (AVX2)"
    assert why in backend.info.precision_reason and f"precision {expected}: {why}" in caplog.text
    # a bf16 file runs bf16 where OpenVINO computes it (this machine, acting as AMX), else fp32
    assert backend.precision == ("bf16" if expected == "bf16" and _openvino_runs_bf16() else "fp32")
    # the export was checked with the tolerance of what the backend computes in
    assert _logged_tolerance(caplog.text) == pytest.approx(TOLERANCES[backend.precision][0] * IMGSZ)


def test_a_bf16_file_runs_in_fp32_on_a_cpu_without_bf16(weights, as_cpu, caplog):
    pytest.importorskip("openvino")
    path = export(weights, format="openvino", imgsz=IMGSZ, precision="bf16")
    as_cpu(AVX2)
    caplog.set_level(logging.INFO)
    backend = load_backend(path, "cpu")
    assert backend.info.precision == "bf16" and backend.precision == "fp32"
    assert "this CPU has no native bf16 (AVX2); the bf16 file runs in fp32" in caplog.text


def test_explicit_fp32_is_exact_on_any_cpu(weights, model, as_cpu, caplog):
    pytest.importorskip("openvino")
    as_cpu(AMX)
    caplog.set_level(logging.INFO)
    backend = load_backend(export(weights, format="openvino", imgsz=IMGSZ, precision="f32"), "cpu")
    assert (backend.precision, backend.info.precision, backend.info.precision_reason) == ("fp32",) * 2 + (
        "--precision fp32",
    )
    assert _logged_tolerance(caplog.text) == pytest.approx(TOLERANCES["fp32"][0] * IMGSZ)
    x = torch.rand(1, 3, IMGSZ, IMGSZ)
    with torch.no_grad():
        expected = model.decode(model(x))
    assert (backend(x) - expected).abs().max() < 1e-3


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"int8": True, "precision": "bf16"}, r"--int8 and --precision bf16: choose one"),
        (
            {"format": "onnx", "precision": "bf16"},
            r"--precision bf16: not available with --format onnx; use --format "
            r"openvino",
        ),  # fmt: skip
        ({"format": "torchscript", "precision": "int8"}, r"--precision int8: not available with --format torchscript"),
        ({"format": "onnx", "precision": "int8"}, r"--precision int8: calibration needs images; add --data"),
        ({"format": "onnx", "precision": "fp16"}, r"--precision fp16: fp16 export needs a CUDA device, got cpu"),
    ],
)
def test_precision_flags_fail_cleanly(weights, kwargs, match):
    with pytest.raises(ArgumentError if "CUDA" not in match else YolorepError, match=match):
        export(weights, **{"format": "openvino", "imgsz": IMGSZ, **kwargs})
    assert not any(p.name != "w.pt" for p in weights.parent.iterdir())  # refused before anything was written


def test_cli_precision_flag_exits_2(weights, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["export", "--weights", str(weights), "--format", "onnx", "--precision", "fp8"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "argument --precision: 'fp8': expected one of auto, fp32, bf16" in err


def test_auto_with_data_measures_each_precision(trained_tiny, tiny_shapes_yaml, tmp_path, monkeypatch, caplog):
    """ONNX Runtime fp32 and INT8 exported, scored by pycocotools and timed (timings replaced, INT8 made faster):
    INT8 is chosen exactly when its measured mAP50-95 is within 0.005 of fp32's."""
    weights = yolorep.save(yolorep.load(trained_tiny / "weights" / "best.pt"), tmp_path / "best.pt")
    measured = trial.time_backends

    def int8_faster(backends, *args, **kwargs):
        timing = measured(backends, *args, **{**kwargs, "iters": 2, "warmup": 1})
        for name, figures in timing.items():
            figures["ms_min"] = 5.0 if name == "int8" else 10.0
        return timing

    monkeypatch.setattr(trial, "time_backends", int8_faster)
    scored = []
    scores = trial.score_backends
    monkeypatch.setattr(trial, "score_backends", lambda *a: scored.append(scores(*a)) or scored[-1])
    caplog.set_level(logging.INFO)
    path = export(weights, format="onnx", imgsz=IMGSZ, data=tiny_shapes_yaml, calib=4)
    (score,) = scored
    int8_ok = score["fp32"]["map50_95"] - score["int8"]["map50_95"] <= 0.005
    info = load_backend(path, "cpu").info
    assert info.precision == ("int8" if int8_ok else "fp32")
    assert path.name == ("best_int8.onnx" if int8_ok else "best.onnx")
    assert info.precision_reason.startswith("the fastest measured here") and "on shapes.yaml" in info.precision_reason
    assert "precision trial" in caplog.text and "<- chosen" in caplog.text
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["best.pt", path.name])  # candidates removed


def test_int8_quantizes_every_convolution_of_a_fresh_model(tiny_shapes_yaml, tmp_path):
    """A freshly built model fuses to zero biases, which torch's exporter stores once and shares through Identity
    nodes; ONNX Runtime's quantizer left such convolutions in fp32 (slower than the fp32 model) until every
    convolution was given initializers of its own. Run as the command line runs it: the quantizer's root-logger
    warnings once installed a second handler, and every later line was printed twice."""
    fresh = yolorep.build_model("yolorep-n.yaml", nc=6).eval()
    weights = yolorep.save(fresh, tmp_path / "fresh.pt")
    fp32 = onnx.load(str(export(weights, format="onnx", imgsz=IMGSZ, precision="fp32")))
    produced_by = {out: node.op_type for node in fp32.graph.node for out in node.output}
    convs = [node for node in fp32.graph.node if node.op_type == "Conv"]
    assert any(produced_by.get(node.input[2]) == "Identity" for node in convs)  # the shared biases are there
    command = ["export", "--weights", str(weights), "--format", "onnx", "--imgsz", str(IMGSZ), "--precision", "int8",
               "--data", str(tiny_shapes_yaml), "--calib", "4"]  # fmt: skip
    done = subprocess.run([sys.executable, "-m", "yolorep", *command], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert (done.stdout + done.stderr).count("export done") == 1
    graph = onnx.load(str(tmp_path / "fresh_int8.onnx")).graph
    assert float_convs(graph) == []
    assert sum(node.op_type == "Conv" for node in graph.node) == len(convs)


def test_half_on_each_kind_of_cpu(weights, model, as_cpu, caplog):
    as_cpu(AVX2)
    with pytest.raises(YolorepError, match=r"--half: cpu has no fast half precision .* this one is AVX2\); drop"):
        Detector(weights, device="cpu", half=True)
    as_cpu(AMX)
    detector = Detector(weights, device="cpu", half=True, imgsz=IMGSZ)
    assert detector.model.precision == "bf16" and detector.dtype == torch.float32
    x = torch.rand(2, 3, IMGSZ, IMGSZ)
    with torch.no_grad():
        expected = model.decode(model(x))
    box_tol, score_tol = TOLERANCES["bf16"]
    difference = (detector.model(x) - expected).abs()
    assert difference[..., :4].max() <= box_tol * IMGSZ and difference[..., 4:].max() <= score_tol


def test_val_half_without_bf16_warns_and_runs_fp32(trained_tiny, tiny_shapes_yaml, tmp_path, as_cpu, caplog):
    as_cpu(AVX2)
    common = ["--data", str(tiny_shapes_yaml), "--workers", "0", "--project", str(tmp_path)]
    assert main(["val", "--weights", str(trained_tiny / "weights" / "best.pt"), "--half", *common]) == 0
    assert "--half: cpu has no fast half precision" in caplog.text
    as_cpu(AMX)
    assert main(["val", "--weights", str(trained_tiny / "weights" / "best.pt"), "--half", *common]) == 0
    assert "pytorch bf16" in caplog.text  # "evaluating pytorch bf16 (...)"


def test_benchmark_formats_auto_measures_every_path_and_recommends_one(weights, tmp_path, as_cpu, caplog):
    pytest.importorskip("openvino")
    as_cpu(AMX)
    caplog.set_level(logging.INFO)
    json_path = tmp_path / "f.json"
    out = ["--device", "cpu", "--out", str(tmp_path / "b"), "--json", str(json_path)]
    code = main(["benchmark", "--formats", "auto", "--weights", str(weights), "--imgsz", str(IMGSZ), "--iters", "2",
                 "--warmup", "1", *out])  # fmt: skip
    assert code == 0
    result = json.loads(json_path.read_text())
    paths = [row["format"] for row in result["rows"]]
    assert paths[:2] == ["torch", "torch-bf16"] and {"onnx", "openvino", "openvino-bf16"} <= set(paths)
    assert not any(p.endswith("int8") for p in paths)  # INT8 needs --data to calibrate
    advice = result["recommendation"]
    assert advice["path"] in paths and "accuracy cost not checked" in advice["reason"]
    assert advice["command"].startswith(("yolorep export --weights", "yolorep predict --weights"))
    assert "recommended:" in caplog.text and "deploy it: yolorep" in caplog.text
    assert result["cpu_flags"].startswith("avx2 avx512f")
