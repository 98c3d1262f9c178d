"""The compact summary of ``benchmarks/gpu_part_b.py``: every step's outcome, then issue 31's throughput targets
and the CUDA fp32 output differences read from the ``gpu_check`` JSON files."""

from __future__ import annotations

import json
from pathlib import Path

# issue 31's targets for yolorep-n at 640 (anchors: ultralytics YOLOv8n on an H200, 694 img/s for an AMP step at 64)
YOLOV8N_TRAIN_IMAGES_PER_S = 694.0
TARGETS = (
    # (label, how the figure is read, comparison, target)
    ("fused / unfused, batch 32 fp16", "speedup_b32", ">=", 1.7),
    ("fused batch 32 fp16, img/s", "images_b32", ">=", 9300.0),
    ("fused batch 1 CUDA graph, ms", "graph_b1_ms", "<=", 0.5),
    ("AMP training step batch 64, img/s", "train_b64", ">=", 1.2 * YOLOV8N_TRAIN_IMAGES_PER_S),
)


def _load(folder: Path, name: str) -> dict:
    path = folder / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def target_figures(folder: Path, model: str = "yolorep-n") -> dict[str, float | None]:
    """The figures the targets are about, from ``gpu_check``'s JSON files (None where a file is missing).

    Batch 32 fp16 takes the faster of the plain and the CUDA-graph runs (both channels-last), as the anchors used
    the best path YOLOv8n had."""
    b32 = [d for d in (_load(folder, f"{model}_b32_fp16"), _load(folder, f"{model}_b32_fp16_graph")) if d]
    best = max(b32, key=lambda d: d["images_per_s_fused"]) if b32 else {}
    graph = _load(folder, f"{model}_b1_fp16_graph")
    train = _load(folder, f"{model}_train_b64_amp")
    return {
        "speedup_b32": best.get("speedup"),
        "images_b32": best.get("images_per_s_fused"),
        "graph_b1_ms": graph.get("fused_ms"),
        "train_b64": train.get("train_images_per_s"),
    }


def fp32_checks(folder: Path) -> list[str]:
    """Per fp32 gpu_check run, the largest differences of its output checks beside their tolerances; the exact
    fp32 (TF32 off) one is what the CUDA fp32 tolerance in ``yolorep/benchmark/paths.py`` is to be measured by."""
    lines = []
    for path in sorted(folder.glob("*_fp32.json")):
        for check in json.loads(path.read_text()).get("checks", []):
            boxes = f"boxes {check['box_px']:.2g} px (tolerance {check['box_tol_px']:.2g})"
            scores = f"scores {check['score']:.2g} (tolerance {check['score_tol']:.2g})"
            lines.append(f"  {path.stem:22s} {check['name']:30s} {boxes}, {scores}")
    return lines


def summarize(out: Path, steps: list[dict], seconds: float) -> int:
    """Print and write (summary.txt, summary.json) the run's summary; 0 when no step failed, else 1."""
    lines = [f"gpu_part_b summary: {out} ({seconds:.0f} s)", f"{'step':38s} {'status':8s} {'seconds':>7s}  note"]
    lines += [f"{s['step']:38s} {s['status']:8s} {s['seconds']:7.1f}  {s['note']}" for s in steps]
    figures = target_figures(out / "gpu_check")
    lines.append("targets, yolorep-n at 640 (gpu_check):")
    verdicts = {}
    for label, key, comparison, target in TARGETS:
        value = figures[key]
        met = None if value is None else value >= target if comparison == ">=" else value <= target
        verdicts[key] = met
        shown = "missing" if value is None else f"{value:.4g}"
        verdict = "not measured" if met is None else "met" if met else "NOT met"
        lines.append(f"  {label:38s} {shown:>9s}  target {comparison} {target:g}: {verdict}")
    checks = fp32_checks(out / "gpu_check")
    if checks:
        lines += ["fp32 on CUDA, TF32 off, against the fused model:", *checks]
    text = "\n".join(lines)
    print("\n" + text, flush=True)
    (out / "summary.txt").write_text(text + "\n")
    summary = {"seconds": seconds, "steps": steps, "targets": figures, "met": verdicts}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return 1 if any(s["status"] == "FAIL" for s in steps) else 0
