"""The deploy precision rule on every CPU kind (CPU flags mocked): what ``auto`` picks without data, what it measures
with data, how a measured choice is made, what a backend runs a file in, and what ``--half`` means on each CPU."""

import pytest
import torch

from yolorep.engine.deploy import cpu as cpu_module
from yolorep.engine.deploy.cpu import CpuFeatures, cpu_features
from yolorep.engine.deploy.onnx import ONNX
from yolorep.engine.deploy.openvino import OPENVINO
from yolorep.engine.deploy.precision import (
    MAX_MAP_DROP,
    Trial,
    candidates,
    half_dtype,
    pick_fastest,
    runtime_precision,
    static_choice,
)
from yolorep.engine.deploy.torchscript import TORCHSCRIPT
from yolorep.options.inference import read_precision

# /proc/cpuinfo flags (the ones that matter) of the CPU kinds yolorep has run on or is deployed to
CPUS = {
    "amx": "avx2 avx512f avx512_vnni avx_vnni avx512_bf16 avx512_fp16 amx_bf16 amx_tile amx_int8",  # Sapphire Rapids
    "avx512_bf16": "avx2 avx512f avx512_vnni avx512_bf16",  # AMD Zen 4 (the AVX-512 EPYC)
    "avx512_vnni": "avx2 avx512f avx512_vnni",  # Cascade Lake, Ice Lake
    "avx_vnni": "avx2 avx_vnni",  # Alder Lake
    "avx2": "avx2 fma",  # AMD Zen 2/3 (the AVX2-only EPYC)
    "old": "sse4_2",
}
KINDS = {
    "amx": "AMX",
    "avx512_bf16": "AVX-512 BF16",
    "avx512_vnni": "AVX-512 VNNI",
    "avx_vnni": "AVX-VNNI",
    "avx2": "AVX2",
    "old": "no AVX2",
}
CPU = torch.device("cpu")


def features(kind: str) -> CpuFeatures:
    return CpuFeatures(frozenset(CPUS[kind].split()))


@pytest.fixture
def as_cpu(monkeypatch):
    """Make ``cpu_features()`` report one of ``CPUS``."""

    def act_as(kind: str) -> None:
        monkeypatch.setattr(cpu_module, "cpu_flags", lambda: frozenset(CPUS[kind].split()))

    return act_as


@pytest.mark.parametrize("kind", list(CPUS))
def test_cpu_features_of_each_kind(kind, as_cpu):
    as_cpu(kind)
    cpu = cpu_features()
    assert cpu.kind == KINDS[kind]
    assert cpu.native_bf16 == (kind in ("amx", "avx512_bf16"))
    assert cpu.vnni == (kind in ("amx", "avx512_bf16", "avx512_vnni", "avx_vnni"))
    assert cpu.native_fp16 == (kind == "amx")
    assert cpu.bf16_units == {"amx": "AMX", "avx512_bf16": "AVX-512 BF16"}.get(kind, "")


def test_this_machines_flags_are_read():
    flags = cpu_module.cpu_flags()
    assert isinstance(flags, frozenset) and all(flag == flag.lower() for flag in flags)
    assert cpu_features().summary()  # names the flags, or says none of them is there


@pytest.mark.parametrize(
    "kind, openvino, reason",
    [
        ("amx", "bf16", "this CPU has AMX (accuracy cost not checked: add --data"),
        ("avx512_bf16", "bf16", "this CPU has AVX-512 BF16 (accuracy cost not checked"),
        ("avx512_vnni", "fp32", "this CPU has no native bf16 (AVX-512 VNNI)"),
        ("avx_vnni", "fp32", "this CPU has no native bf16 (AVX-VNNI)"),
        ("avx2", "fp32", "this CPU has no native bf16 (AVX2)"),
        ("old", "fp32", "this CPU has no native bf16 (no AVX2)"),
    ],
)
def test_auto_without_data_follows_the_cpu_flags(kind, openvino, reason):
    cpu = features(kind)
    choice = static_choice(OPENVINO, CPU, cpu)
    assert choice.precision == openvino and choice.reason.startswith(reason)
    assert str(choice) == f"{openvino}: {choice.reason}"
    # where OpenVINO stays fp32, its INT8 is suggested on every CPU (1.5x its fp32 on the AVX2 EPYC, without VNNI)
    calibrate = "add --data DATA.yaml to calibrate and measure it"
    assert (calibrate in choice.reason) == (openvino == "fp32")
    assert calibrate not in static_choice(OPENVINO, CPU, cpu, data="shapes.yaml").reason
    # where it is bf16, INT8 is suggested only without AMX: with VNNI alone (Zen 4) it was 1.2-1.4x bf16, with AMX
    # slower than bf16
    int8_too = "INT8 included, which may be faster on this CPU"
    assert (int8_too in choice.reason) == (kind == "avx512_bf16")
    assert int8_too not in static_choice(OPENVINO, CPU, cpu, data="shapes.yaml").reason
    # ONNX Runtime and TorchScript have no bf16 kernels on x86: fp32 everywhere; ONNX Runtime's INT8 pays only with
    # VNNI (without it, computed exactly, it is no faster than fp32), so it is suggested only there
    onnx = static_choice(ONNX, CPU, cpu)
    assert onnx.precision == "fp32" and (calibrate in onnx.reason) == cpu.vnni
    assert static_choice(TORCHSCRIPT, CPU, cpu).precision == "fp32"
    # a GPU export stays fp32 unless asked
    assert static_choice(OPENVINO, torch.device("cuda"), cpu).precision == "fp32"


@pytest.mark.parametrize("kind", list(CPUS))
def test_auto_with_data_measures_every_native_precision(kind):
    cpu = features(kind)
    bf16 = ["bf16"] if cpu.native_bf16 else []
    assert candidates(OPENVINO, CPU, cpu, calibrated=True) == ["fp32", *bf16, "int8"]
    assert candidates(OPENVINO, CPU, cpu, calibrated=False) == ["fp32", *bf16]
    assert candidates(ONNX, CPU, cpu, calibrated=True) == ["fp32", "int8"]  # INT8 measured on every CPU, not assumed
    assert candidates(TORCHSCRIPT, CPU, cpu, calibrated=True) == ["fp32"]


@pytest.mark.parametrize("kind", list(CPUS))
def test_a_backend_runs_reduced_precisions_only_where_the_cpu_has_them(kind):
    cpu = features(kind)
    assert runtime_precision("bf16", cpu).precision == ("bf16" if cpu.native_bf16 else "fp32")
    assert runtime_precision("fp16", cpu).precision == ("fp16" if cpu.native_fp16 else "fp32")
    assert runtime_precision("int8", cpu).precision == "int8" and runtime_precision("fp32", cpu).precision == "fp32"
    if not cpu.native_bf16:
        assert "no native bf16" in runtime_precision("bf16", cpu).reason


@pytest.mark.parametrize("kind", list(CPUS))
def test_half_is_the_fast_half_precision_of_the_device(kind):
    cpu = features(kind)
    assert half_dtype(CPU, cpu) == (torch.bfloat16 if cpu.native_bf16 else None)
    assert half_dtype(torch.device("cuda"), cpu) == torch.float16


def test_precision_names():
    assert [read_precision(v) for v in ("f32", "FP32", "bf16", "f16", "int8", "auto")] == [
        "fp32", "fp32", "bf16", "fp16", "int8", "auto"
    ]  # fmt: skip
    with pytest.raises(ValueError, match="expected one of auto, fp32, bf16, fp16, int8"):
        read_precision("fp8")


def _trials(bf16_ms=13.0, int8_ms=14.0, bf16_map=0.500, int8_map=0.499):
    fp32 = Trial("fp32", "fp32", 29.0, 0.501)
    return [fp32, Trial("bf16", "bf16", bf16_ms, bf16_map), Trial("int8", "int8", int8_ms, int8_map)]


def test_pick_fastest_takes_bf16_where_int8_is_slower():
    """The AMX Xeon at batch 1: bf16 faster than INT8, both within the mAP budget."""
    best, reason, notes = pick_fastest(_trials(), "raccoon.yaml")
    assert best.name == "bf16"
    assert "13.0 ms against fp32's 29.0 ms" in reason and "0.5000 against fp32's 0.5010 on raccoon.yaml" in reason
    assert "int8: 14.0 ms, not faster by 5% than bf16 (13.0 ms)" in notes


def test_pick_fastest_takes_int8_only_when_faster_and_accurate_enough():
    assert pick_fastest(_trials(int8_ms=9.0), "d")[0].name == "int8"
    # 5% faster is needed: timing noise alone never trades accuracy away
    assert pick_fastest(_trials(int8_ms=12.5), "d")[0].name == "bf16"
    best, _, notes = pick_fastest(_trials(int8_ms=9.0, int8_map=0.501 - MAX_MAP_DROP - 0.001), "d")
    assert best.name == "bf16" and any(n.startswith("int8: costs 0.0060 mAP50-95") for n in notes)
    # nothing within the budget but fp32: fp32, however slow
    best, reason, _ = pick_fastest(_trials(bf16_map=0.4, int8_map=0.4), "d")
    assert best.name == "fp32" and "mAP50-95 0.5010 on d" in reason


def test_pick_fastest_without_scores_says_accuracy_was_not_checked():
    trials = [Trial("torch", "fp32", 50.0), Trial("onnx", "fp32", 30.0), Trial("openvino-bf16", "bf16", 13.0)]
    best, reason, notes = pick_fastest(trials, None)
    assert best.name == "openvino-bf16" and "accuracy cost not checked" in reason
    assert notes == ["torch: 50.0 ms, slower than onnx", "onnx: 30.0 ms, slower than openvino-bf16"]
    with pytest.raises(ValueError, match="an fp32 trial"):
        pick_fastest(trials[2:], None)
