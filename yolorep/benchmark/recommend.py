"""What ``yolorep benchmark --formats auto`` recommends: the fastest path measured within 0.005 mAP50-95 of fp32
(the export's own rule, ``yolorep.engine.deploy.precision.pick_fastest``), and the command that deploys it."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from yolorep.engine.deploy.precision import Trial, pick_fastest
from yolorep.options import FormatsOptions

__all__ = ["deploy_command", "recommend"]


def recommend(
    rows: list[dict[str, Any]], paths: Mapping[str, tuple[str, str]], weights: str, o: FormatsOptions, imgsz: int
) -> dict[str, Any]:
    """The recommendation from the benchmark's ``rows``, each judged on its fastest call and, when scored, its
    mAP50-95.

    Args:
        paths: ``--formats`` name -> (export format or ``torch``, precision).
        weights: the checkpoint the command names.

    Returns:
        ``path``, ``precision``, ``ms`` (its fastest call), ``reason``, ``passed_over`` (one line per other path) and
        ``command``.
    """
    trials = [Trial(row["format"], row["precision"], row["ms_min"], row.get("map50_95")) for row in rows]
    best, reason, notes = pick_fastest(trials, Path(o.data).name if o.data else None)
    fmt, precision = paths[best.name]
    return {
        "path": best.name,
        "precision": best.precision,
        "ms": best.ms,
        "reason": reason,
        "passed_over": notes,
        "command": deploy_command(fmt, precision, weights, imgsz, o),
    }


def deploy_command(fmt: str, precision: str, weights: str, imgsz: int, o: FormatsOptions) -> str:
    """``yolorep export ... --precision bf16`` for an exported path; ``yolorep predict ... [--half]`` for PyTorch."""
    if fmt == "torch":
        return f"yolorep predict --weights {weights} --source SOURCE --imgsz {imgsz}" + (
            " --half" if precision == "bf16" else ""
        )
    parts = [f"yolorep export --weights {weights} --format {fmt} --precision {precision} --imgsz {imgsz}"]
    if o.batch != 1:
        parts.append(f"--batch {o.batch}")
    if precision == "int8":
        parts.append(f"--data {o.data} --calib {o.calib}")
    return " ".join(parts)
