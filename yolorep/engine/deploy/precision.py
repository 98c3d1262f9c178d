"""The deploy precision rule: which arithmetic an exported model runs in on the CPU it runs on, and why.

fp32 is exact. A faster precision is a measured, stated trade:

- **bf16** where the CPU computes it natively (AMX, AVX-512 BF16), for formats whose runtime computes in bf16 from
  the fp32 file (OpenVINO: the file stays fp32, the precision is chosen when it is compiled);
- **int8** only when measured: it needs calibration images (``--data``), and ``pick_fastest`` takes it only where
  its latency beats the alternatives measured beside it and its mAP50-95 is within ``MAX_MAP_DROP`` of fp32.

Without data the rule picks from the CPU flags alone (``static_choice``) and says that the accuracy cost was not
checked. ``--precision`` overrides it (``explicit_choice``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from yolorep.engine.deploy.cpu import CpuFeatures

if TYPE_CHECKING:
    from yolorep.engine.deploy.format import DeployFormat

__all__ = [
    "EXACTNESS",
    "MAX_MAP_DROP",
    "MIN_SPEEDUP",
    "PrecisionChoice",
    "Trial",
    "candidates",
    "explicit_choice",
    "half_dtype",
    "pick_fastest",
    "runtime_precision",
    "static_choice",
]

LOGGER = logging.getLogger(__name__)
EXACTNESS = ("fp32", "fp16", "bf16", "int8")  # most exact first (fp16 keeps 10 mantissa bits, bf16 7)
MAX_MAP_DROP = 0.005  # mAP50-95 a faster precision may cost, on the data it is measured on
# A less exact precision must be this much faster than the more exact one it replaces: timing noise alone never
# trades accuracy for nothing.
MIN_SPEEDUP = 1.05


@dataclass(frozen=True)
class PrecisionChoice:
    """A precision and why it was chosen, as logged and stored in the file (``bf16: this CPU has AMX``)."""

    precision: str
    reason: str

    def __str__(self) -> str:
        return f"{self.precision}: {self.reason}"


def static_choice(
    fmt: DeployFormat, device: torch.device, cpu: CpuFeatures, data: str | None = None
) -> PrecisionChoice:
    """``--precision auto`` when nothing is measured (no ``data``, or one candidate): bf16 where the format's runtime
    computes it and the CPU has native bf16, else fp32. A bf16 reason says that its accuracy cost was not checked
    and how to check it; an fp32 one suggests measuring INT8 where the format's INT8 may pay on this CPU."""
    if device.type != "cpu":
        return PrecisionChoice("fp32", f"exports on {device.type} stay fp32 unless --precision or --half asks")
    hint = ""
    if fmt.int8 and data is None and (cpu.vnni or not fmt.int8_needs_vnni):
        hint = f"; INT8 may be faster on this {cpu.kind} CPU: add --data DATA.yaml to calibrate and measure it"
    if "bf16" not in fmt.reduced:
        no_bf16 = "its runtime has no bf16 kernels"
        return PrecisionChoice("fp32", f"{fmt.name} computes in fp32 on the CPU ({no_bf16}){hint}")
    if not cpu.native_bf16:
        return PrecisionChoice("fp32", f"this CPU has no native bf16 ({cpu.kind}){hint}")
    unchecked = "accuracy cost not checked: add --data DATA.yaml to measure mAP per precision"
    if fmt.int8 and data is None and cpu.vnni and not cpu.amx:
        # with VNNI and without AMX, INT8 was 1.2-1.4x bf16 (Zen 4 EPYC); with AMX it was slower than bf16
        unchecked += ", INT8 included, which may be faster on this CPU"
    return PrecisionChoice("bf16", f"this CPU has {cpu.bf16_units} ({unchecked})")


def explicit_choice(precision: str, fmt: DeployFormat, device: torch.device, cpu: CpuFeatures) -> PrecisionChoice:
    """``--precision`` given: that precision, with a warning where this CPU lacks the units to run it natively
    (the file still runs it on CPUs that have them, and in fp32 here)."""
    if device.type == "cpu" and precision in fmt.reduced:
        native, units = (cpu.native_bf16, "bf16") if precision == "bf16" else (cpu.native_fp16, "fp16")
        if not native:
            LOGGER.warning(
                "--precision %s: this CPU has no native %s (%s); the file runs in %s on CPUs that have it and in fp32 "
                "here, so the export is checked in fp32", precision, units, cpu.kind, precision,
            )  # fmt: skip
    return PrecisionChoice(precision, f"--precision {precision}")


def candidates(fmt: DeployFormat, device: torch.device, cpu: CpuFeatures, calibrated: bool) -> list[str]:
    """The precisions ``auto`` measures for ``fmt`` on this device: fp32; bf16 where the runtime computes it and
    the CPU has native bf16; int8 where the format quantizes and calibration images were given."""
    if device.type != "cpu":
        return ["fp32"]
    found = ["fp32"]
    if "bf16" in fmt.reduced and cpu.native_bf16:
        found.append("bf16")
    if fmt.int8 and calibrated:
        found.append("int8")
    return found


def runtime_precision(stored: str, cpu: CpuFeatures) -> PrecisionChoice:
    """What a CPU runtime computes a file in whose metadata says ``stored``: that precision, or fp32 for a reduced
    float precision this CPU has no native units for (emulated it would be slower than fp32)."""
    if stored == "bf16" and not cpu.native_bf16:
        return PrecisionChoice("fp32", f"this CPU has no native bf16 ({cpu.kind}); the bf16 file runs in fp32")
    if stored == "fp16" and not cpu.native_fp16:
        return PrecisionChoice("fp32", f"this CPU has no native fp16 ({cpu.kind}); the fp16 file runs in fp32")
    return PrecisionChoice(stored, "as exported")


def half_dtype(device: torch.device, cpu: CpuFeatures) -> torch.dtype | None:
    """The fast half precision of ``device`` for PyTorch inference (``--half``): fp16 on CUDA, bf16 on a CPU with
    native bf16 (run under autocast), none elsewhere."""
    if device.type == "cuda":
        return torch.float16
    if device.type == "cpu" and cpu.native_bf16:
        return torch.bfloat16
    return None


@dataclass(frozen=True)
class Trial:
    """One measured way of running the model.

    Attributes:
        name: what it is called in tables (``openvino-bf16``, ``bf16``).
        precision: fp32, fp16, bf16 or int8.
        ms: latency per batch the choice is made on (the fastest of interleaved calls: the least disturbed by other
            load on the machine).
        map50_95: pycocotools mAP50-95 on the data it was scored on; None when not scored.
    """

    name: str
    precision: str
    ms: float
    map50_95: float | None = None


def pick_fastest(trials: Sequence[Trial], scored_on: str | None) -> tuple[Trial, str, list[str]]:
    """The fastest trial within ``MAX_MAP_DROP`` mAP50-95 of the fp32 ones, where a less exact precision must be
    ``MIN_SPEEDUP`` times faster than the more exact trial it replaces.

    Args:
        trials: at least one fp32 trial; all scored, or none (then accuracy is not checked and says so).
        scored_on: the data the mAP was measured on, for the reason.

    Returns:
        The chosen trial, the reason it was chosen, and one line per trial passed over saying why.
    """
    ordered = sorted(trials, key=lambda t: EXACTNESS.index(t.precision))  # stable within one precision
    if ordered[0].precision != "fp32":
        raise ValueError("pick_fastest needs an fp32 trial to compare with")
    reference = ordered[0]
    scored = reference.map50_95 is not None
    notes, eligible = [], []
    for trial in ordered:
        drop = reference.map50_95 - trial.map50_95 if scored and trial.map50_95 is not None else 0.0
        if drop > MAX_MAP_DROP:
            notes.append(f"{trial.name}: costs {drop:.4f} mAP50-95 (more than {MAX_MAP_DROP})")
        else:
            eligible.append(trial)
    best = eligible[0]
    for trial in eligible[1:]:
        same_precision = trial.precision == best.precision
        if trial.ms < best.ms if same_precision else trial.ms * MIN_SPEEDUP <= best.ms:
            notes.append(f"{best.name}: {best.ms:.1f} ms, slower than {trial.name}")
            best = trial
        else:
            gain = "" if same_precision else f" by {MIN_SPEEDUP - 1:.0%}"
            notes.append(f"{trial.name}: {trial.ms:.1f} ms, not faster{gain} than {best.name} ({best.ms:.1f} ms)")
    if not scored:
        accuracy = "accuracy cost not checked (no mAP measured)"
    elif best is reference:
        accuracy = f"mAP50-95 {reference.map50_95:.4f} on {scored_on}"
    else:
        accuracy = (
            f"mAP50-95 {best.map50_95:.4f} against fp32's {reference.map50_95:.4f} on {scored_on}, within "
            f"{MAX_MAP_DROP}"
        )
    speed = f"{best.ms:.1f} ms" + ("" if best is reference else f" against fp32's {reference.ms:.1f} ms")
    return best, f"the fastest measured here ({speed}; {accuracy})", notes
