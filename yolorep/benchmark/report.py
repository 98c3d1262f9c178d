"""What the benchmark writes: the environment line, the tables, and the sweep's CSV and plot.

The plot is drawn on a ``matplotlib.figure.Figure`` (rendered with Agg when saved), not through pyplot, so no
global backend is switched; matplotlib is imported inside the function.
"""

from __future__ import annotations

import csv
import platform
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from yolorep.version import __version__

__all__ = [
    "SWEEP_COLUMNS",
    "environment",
    "environment_line",
    "format_formats_table",
    "format_sweep_table",
    "format_table",
    "plot_sweep",
    "weights_line",
    "write_sweep_csv",
]

SWEEP_COLUMNS = (
    "imgsz",
    "batch",
    "unfused_ms",
    "fused_ms",
    "speedup",
    "images_per_s_unfused",
    "images_per_s_fused",
    "max_abs_diff",
    "gflops",
    "fused_gflops",
)


def environment(device: torch.device) -> dict[str, Any]:
    """Date, versions and device of this run, as recorded with every result."""
    env: dict[str, Any] = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "yolorep": __version__,
        "torch": str(torch.__version__),
        "threads": torch.get_num_threads(),
    }
    if device.type == "cuda":
        env["device"] = f"{device}: {torch.cuda.get_device_name(device)}"
        env["cuda"] = torch.version.cuda
        env["cudnn"] = torch.backends.cudnn.version()
    else:
        env["device"] = f"cpu: {_cpu_name()}, {env['threads']} thread{'s' if env['threads'] != 1 else ''}"
    return env


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def environment_line(result: dict[str, Any]) -> str:
    """``2025-01-31 12:00 UTC | yolorep 0.1.0 | torch 2.5.1 | cuda:0: NVIDIA H100 | CUDA 12.4 | cuDNN 90100``."""
    date = datetime.fromisoformat(result["date"]).strftime("%Y-%m-%d %H:%M UTC")
    parts = [date, f"yolorep {result['yolorep']}", f"torch {result['torch']}", result["device"]]
    if "cuda" in result:
        parts += [f"CUDA {result['cuda']}", f"cuDNN {result['cudnn']}"]
    return " | ".join(parts)


def weights_line(result: dict[str, Any]) -> str:
    if result["bn_randomized"]:
        return (
            "weights: random (fresh YAML); BatchNorm statistics randomized and class biases zeroed for the output "
            "check, since a fresh BatchNorm is near-identity and would make the fuse check trivially exact"
        )
    return f"weights: {result['source']}"


def _title(r: dict[str, Any], shape: str) -> str:
    return f"yolorep benchmark | {r['model']} ({r['source']}), nc {r['nc']} | {shape} | path: {r['path']}"


def _timing_line(r: dict[str, Any]) -> str:
    return (
        f"timing: median of {r['iters']} calls per model, interleaved in {r['rounds']} rounds after {r['warmup']} "
        f"warm-up calls ({r['timer']})"
    )


def format_table(result: dict[str, Any]) -> str:
    """The inference table logged by ``yolorep benchmark``."""
    r = result
    lines = [
        _title(r, f"imgsz {r['imgsz']}, batch {r['batch']}"),
        environment_line(r),
        weights_line(r),
        _timing_line(r),
    ]
    if r["precision_probe_ms"]:
        probe = r["precision_probe_ms"]
        lines.append(
            f"{r['dtype']}: weights cast {probe['weights']:.2f} ms vs autocast {probe['autocast']:.2f} ms "
            f"(fused model, short probe); kept {r['precision_mode']}"
        )
    lines += [
        "",
        f"{'model':<8}{'params':>12}{'GFLOPs/img':>12}{'latency ms':>12}{'images/s':>10}",
        f"{'unfused':<8}{r['params']:>12,}{r['gflops']:>12.2f}{r['unfused_ms']:>12.2f}"
        f"{r['images_per_s_unfused']:>10.1f}",
        f"{'fused':<8}{r['fused_params']:>12,}{r['fused_gflops']:>12.2f}{r['fused_ms']:>12.2f}"
        f"{r['images_per_s_fused']:>10.1f}",
        f"speed-up (unfused ms / fused ms): {r['speedup']:.2f}x",
        f"max |unfused - fused| over all outputs (exact fp32): {r['max_abs_diff']:.3g}",
        "",
        f"{'output check vs fused fp32':<44}{'boxes px':>10}{'tol':>9}{'scores':>10}{'tol':>9}",
    ]
    for c in r["checks"]:
        lines.append(
            f"{c['name']:<44}{c['box_px']:>10.2g}{c['box_tol_px']:>9.2g}{c['score']:>10.2g}{c['score_tol']:>9.2g}"
            f"  {'ok' if c['ok'] else 'FAILED'}"
        )
    return "\n".join(lines)


def format_formats_table(result: dict[str, Any]) -> str:
    """The table logged by ``yolorep benchmark --formats``: one row per path, PyTorch fused fp32 first, and for
    ``--formats auto`` the recommendation."""
    r = result
    runtimes = ", ".join(f"{k} {v}" for k, v in r["runtimes"].items())
    weights = "random (BatchNorm statistics randomized, class biases zeroed)" if r["random_weights"] else r["source"]
    lines = [
        f"yolorep benchmark --formats | {r['model']}, nc {r['nc']} | input [{r['batch']}, 3, {r['imgsz']}, "
        f"{r['imgsz']}] (fixed-shape exports)",
        environment_line(r) + (f" | {runtimes}" if runtimes else ""),
        f"CPU flags: {r['cpu_flags']}",
        f"weights: {weights}",
        f"timing: median of {r['iters']} calls per format, interleaved in {r['rounds']} rounds; 'vs torch' is "
        "PyTorch fused fp32 ms / format ms in this run; a recommendation is judged on each path's fastest call",
        "agreement with PyTorch fused fp32 on the same images: largest box (px) and score difference, and the mean "
        "IoU of the boxes at its 100 most confident anchors per image",
    ]
    if r["scored"]:
        lines.append(f"mAP: pycocotools on the val split of {r['data']}, square letterbox, same batches for all")
    elif r["data"]:
        lines.append("mAP: not measured (random weights)")
    header = f"{'format':<15}{'precision':>10}{'ms':>9}{'min ms':>9}{'vs torch':>10}{'box px':>9}{'score':>9}{'IoU':>7}"
    if r["scored"]:
        header += f"{'mAP50-95':>10}{'diff':>9}"
    lines += ["", header]
    for row in r["rows"]:
        line = (
            f"{row['format']:<15}{row['precision']:>10}{row['ms']:>9.1f}{row['ms_min']:>9.1f}{row['speedup']:>9.2f}x"
            f"{row['max_box_diff_px']:>9.2g}{row['max_score_diff']:>9.2g}{row['top100_iou']:>7.3f}"
        )
        if r["scored"]:
            line += f"{row['map50_95']:>10.4f}{row['map_diff']:>+9.4f}"
        lines.append(line)
    advice = r.get("recommendation")
    if advice:
        lines += [
            "",
            f"recommended: {advice['path']} ({advice['precision']}), {advice['reason']}",
            *(f"  passed over {note}" for note in advice["passed_over"]),
            f"  deploy it: {advice['command']}",
        ]
    return "\n".join(lines)


def format_sweep_table(meta: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    """One line per grid point; every point passed the same output checks as a single run."""
    lines = [
        _title({**meta, **rows[0]}, "sweep"),
        environment_line(meta),
        weights_line(meta),
        "",
        f"{'imgsz':>6}{'batch':>6}{'unfused ms':>12}{'fused ms':>10}{'speed-up':>10}{'img/s unf':>11}"
        f"{'img/s fused':>12}{'max|diff|':>11}",
    ]
    for r in rows:
        lines.append(
            f"{r['imgsz']:>6}{r['batch']:>6}{r['unfused_ms']:>12.2f}{r['fused_ms']:>10.2f}{r['speedup']:>9.2f}x"
            f"{r['images_per_s_unfused']:>11.1f}{r['images_per_s_fused']:>12.1f}{r['max_abs_diff']:>11.2g}"
        )
    return "\n".join(lines)


def write_sweep_csv(rows: list[dict[str, Any]], path: str | Path) -> Path:
    """One row per grid point with ``SWEEP_COLUMNS``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=SWEEP_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


def plot_sweep(rows: list[dict[str, Any]], path: str | Path, title: str) -> Path:
    """Latency against batch size: one colour per image size, fused solid, unfused dashed."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.5), tight_layout=True)
    ax = fig.add_subplot()
    for i, imgsz in enumerate(sorted({r["imgsz"] for r in rows})):
        points = sorted((r["batch"], r["unfused_ms"], r["fused_ms"]) for r in rows if r["imgsz"] == imgsz)
        batches = [p[0] for p in points]
        color = f"C{i}"
        ax.plot(batches, [p[2] for p in points], "o-", color=color, label=f"fused, {imgsz} px")
        ax.plot(batches, [p[1] for p in points], "s--", color=color, label=f"unfused, {imgsz} px")
    ax.set_xscale("log", base=2)
    all_batches = sorted({r["batch"] for r in rows})
    ax.set_xticks(all_batches, [str(b) for b in all_batches])
    ax.set_yscale("log")
    ax.set_xlabel("batch size")
    ax.set_ylabel("median latency per batch (ms)")
    ax.set_title(title, fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return path
