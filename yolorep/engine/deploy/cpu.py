"""What the CPU this process runs on computes natively: the instruction-set extensions that decide which precision
deploys fastest (bf16 on AMX or AVX-512 BF16, fp16 on AVX-512 FP16 or AMX-FP16, int8 dot products with VNNI or
AMX-INT8).

``cpu_flags()`` is the one place the machine is asked (``/proc/cpuinfo`` on Linux, else PyTorch's own probes);
everything else reads ``cpu_features()``, so tests replace ``cpu_flags`` to act as any CPU.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["CpuFeatures", "cpu_features", "cpu_flags"]

# torch.cpu probe -> the /proc/cpuinfo flag it stands for, for systems without /proc/cpuinfo (macOS, Windows)
_TORCH_PROBES = {
    "_is_avx2_supported": "avx2",
    "_is_avx512_supported": "avx512f",
    "_is_avx512_bf16_supported": "avx512_bf16",
    "_is_vnni_supported": "avx512_vnni",
    "_is_amx_tile_supported": "amx_tile",
    "_is_amx_fp16_supported": "amx_fp16",
}


def cpu_flags() -> frozenset[str]:
    """The lowercase instruction-set flags of this CPU, as Linux names them (``avx2``, ``avx512_bf16``,
    ``amx_int8`` ...): the ``flags`` line of ``/proc/cpuinfo``, else what PyTorch's CPU probes report."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    found = set()
    for probe, flag in _TORCH_PROBES.items():
        try:
            if getattr(torch.cpu, probe)():
                found.add(flag)
        except (AttributeError, RuntimeError):  # private probes: absent in some builds
            continue
    if "amx_tile" in found:  # torch probes the tile unit; AMX CPUs have both its bf16 and int8 forms
        found |= {"amx_bf16", "amx_int8"}
    return frozenset(found)


@dataclass(frozen=True)
class CpuFeatures:
    """The extensions that matter for inference precision, from a set of CPU flags."""

    flags: frozenset[str]

    @property
    def amx(self) -> bool:
        return "amx_bf16" in self.flags or "amx_int8" in self.flags

    @property
    def native_bf16(self) -> bool:
        """bf16 arithmetic in hardware (AMX or AVX-512 BF16), so bf16 runs faster than fp32 instead of emulated."""
        return "amx_bf16" in self.flags or "avx512_bf16" in self.flags

    @property
    def native_fp16(self) -> bool:
        """fp16 arithmetic in hardware (AVX-512 FP16 or AMX-FP16)."""
        return "avx512_fp16" in self.flags or "amx_fp16" in self.flags

    @property
    def vnni(self) -> bool:
        """int8 dot-product instructions (AVX-512 VNNI, AVX-VNNI or AMX-INT8)."""
        return bool({"avx512_vnni", "avx_vnni", "amx_int8"} & self.flags)

    @property
    def bf16_units(self) -> str:
        """What computes bf16 here: ``AMX``, ``AVX-512 BF16``, or empty."""
        return "AMX" if "amx_bf16" in self.flags else "AVX-512 BF16" if "avx512_bf16" in self.flags else ""

    @property
    def fp16_units(self) -> str:
        return "AMX-FP16" if "amx_fp16" in self.flags else "AVX-512 FP16" if "avx512_fp16" in self.flags else ""

    @property
    def kind(self) -> str:
        """The CPU kind as the deploy rule sees it, most capable first: ``AMX``, ``AVX-512 BF16``, ``AVX-512
        VNNI``, ``AVX-VNNI``, ``AVX-512``, ``AVX2`` or ``no AVX2``."""
        for name, flag in (
            ("AMX", "amx_bf16"),
            ("AVX-512 BF16", "avx512_bf16"),
            ("AVX-512 VNNI", "avx512_vnni"),
            ("AVX-VNNI", "avx_vnni"),
            ("AVX-512", "avx512f"),
            ("AVX2", "avx2"),
        ):
            if flag in self.flags:
                return name
        return "no AVX2"

    def summary(self) -> str:
        """The flags that decide the deploy precision, e.g. ``avx2 avx512f avx512_bf16 avx512_vnni amx_bf16
        amx_int8``, for logs and benchmark records."""
        wanted = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "avx512_fp16", "amx_bf16", "amx_int8",
                  "amx_fp16")  # fmt: skip
        shown = [flag for flag in wanted if flag in self.flags]
        return " ".join(shown) or "none of AVX2, AVX-512, VNNI, AMX"


def cpu_features() -> CpuFeatures:
    """This CPU's features (``cpu_flags`` read each call: cheap, and replaceable in tests)."""
    return CpuFeatures(cpu_flags())
