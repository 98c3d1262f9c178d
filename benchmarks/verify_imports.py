"""Imported checkpoints compute what the original code computes.

For every scale of a family, build the model with the original project's code, give it random weights and random
BatchNorm statistics, save it as that project saves its releases (fp16 module tree), import the file with yolorep,
and compare on real photographs (letterboxed to --imgsz):

* the decoded boxes and scores before NMS, yolorep unfused and fused against the original in fp32;
* the detections after NMS (the original's NMS on its output, yolorep's on its own), which must be identical.

YOLOv6 (give its repository; its code needs ``addict`` and ``requests``, and ``pkg_resources.parse_version``,
shimmed here for current setuptools)::

    pip install --target /tmp/v6deps addict
    PYTHONPATH=$PWD python3 benchmarks/verify_imports.py yolov6 --code /path/to/YOLOv6 --deps /tmp/v6deps

ultralytics (a Python environment where ``import ultralytics`` works, offline)::

    PYTHONPATH=$PWD /tmp/anchors/bin/python benchmarks/verify_imports.py ultralytics
"""

from __future__ import annotations

import argparse
import copy
import sys
import tempfile
import time
import types
from pathlib import Path

import cv2
import numpy as np
import torch

from yolorep.datasets.transforms import letterbox
from yolorep.engine.checkpoint import load_checkpoint
from yolorep.nn import fused_copy, randomize_batchnorm
from yolorep.ops.nms import non_max_suppression

NMS = {"yolov6": (0.03, 0.65), "ultralytics": (0.25, 0.7)}  # conf, IoU of each project's own evaluation / predict


def load_images(folder: Path, count: int, imgsz: int) -> torch.Tensor:
    """The first ``count`` photos (sorted), letterboxed to imgsz x imgsz: [count, 3, imgsz, imgsz] RGB in 0..1."""
    batch = []
    for path in sorted(folder.glob("*.jpg"))[:count]:
        image = cv2.imread(str(path))
        r = imgsz / max(image.shape[:2])
        image = cv2.resize(image, (round(image.shape[1] * r), round(image.shape[0] * r)), interpolation=cv2.INTER_AREA)
        image, _, _ = letterbox(image, (imgsz, imgsz))
        batch.append(torch.from_numpy(np.ascontiguousarray(image[:, :, ::-1].transpose(2, 0, 1))))
    return torch.stack(batch).float() / 255


def randomize(model: torch.nn.Module, seed: int) -> None:
    """Random BatchNorm statistics, and every other parameter (the zero-initialised predictors, the BottleRep
    scales) drawn at random around its scale, so that nothing is trivially equal."""
    randomize_batchnorm(model, seed)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "bn" in name or ("proj" in name) or name.endswith("dfl.conv.weight"):
                continue
            if p.ndim == 4:
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=generator) * (1.0 / fan_in) ** 0.5)
            elif p.ndim == 1 and p.numel() == 1:  # BottleRep alpha
                p.fill_(float(torch.rand(1, generator=generator)) + 0.5)
            elif p.ndim == 1:
                p.copy_(torch.randn(p.shape, generator=generator) * 0.5)
        for name, p in model.named_parameters():  # class logits around -2: scores spread below 0.5, as trained
            if _is_class_predictor(name):
                p.mul_(0.3).add_(-2.0 if p.ndim == 1 else 0.0)


def _is_class_predictor(name: str) -> bool:
    """YOLOv6's cls_preds(_ab), ultralytics' last conv of each cv3 branch."""
    parts = name.split(".")
    return "cls_preds" in name or (len(parts) > 4 and parts[-4] == "cv3" and parts[-2] == "2")


def xywh_to_xyxy(boxes: torch.Tensor) -> torch.Tensor:
    return torch.cat((boxes[..., :2] - boxes[..., 2:] / 2, boxes[..., :2] + boxes[..., 2:] / 2), -1)


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-12))


def _canonical(detections: torch.Tensor) -> torch.Tensor:
    """Rows sorted by class, then box (equal scores may come out of NMS in either order)."""
    keys = torch.cat((detections[:, 5:6], detections[:, :4].round(decimals=1)), 1).tolist()
    order = sorted(range(len(keys)), key=keys.__getitem__)
    return detections[order]


def same_detections(ours: list[torch.Tensor], theirs: list[torch.Tensor]) -> tuple[bool, int, float]:
    """Same detections in every image (same count and classes, boxes within 1e-2 px, scores within 1e-4)."""
    total, worst = 0, 0.0
    for a, b in zip(ours, theirs):
        a, b = _canonical(a), _canonical(b)
        if a.shape != b.shape or not torch.equal(a[:, 5], b[:, 5]):
            return False, total, float("inf")
        total += len(a)
        if len(a):
            worst = max(worst, float((a[:, :4] - b[:, :4]).abs().max()), float((a[:, 4] - b[:, 4]).abs().max()))
    return worst < 1e-2, total, worst


def compare(name: str, path: Path, original, run_original, nms_original, images, family, random: bool) -> dict:
    """Import ``path`` and compare it with ``original`` (the file's model, fp32, eval)."""
    started = time.perf_counter()
    ours = load_checkpoint(path).float().eval()
    seconds = time.perf_counter() - started
    fused = fused_copy(ours)
    with torch.no_grad():
        theirs = run_original(original, images)  # [B, N, 4 + nc] xyxy, scores
        unfused_out = ours.decode(ours(images))
        fused_out = fused.decode(fused(images))
    conf, iou = NMS[family]
    if random:
        # Random weights score boxes unlike a trained model: put conf between the 100th and 101st best score per
        # image, so about 100 boxes per image reach NMS and no score sits on the threshold (which one NMS keeps at
        # >= and the other drops at >)
        best = theirs[..., 4:].amax(-1).flatten().sort(descending=True).values
        cut = min(100 * len(images), len(best) - 1)
        conf = float(best[cut - 1] + best[cut]) / 2
    row = {
        "model": name,
        "boxes_rel": relative(unfused_out[..., :4], theirs[..., :4]),
        "scores_rel": relative(unfused_out[..., 4:], theirs[..., 4:]),
        "fused_boxes_rel": relative(fused_out[..., :4], theirs[..., :4]),
        "fused_scores_rel": relative(fused_out[..., 4:], theirs[..., 4:]),
        "import_s": seconds,
    }
    dets_theirs = nms_original(original, images, conf, iou)
    dets_unfused = non_max_suppression(unfused_out, conf, iou, 300, multi_label=True)
    row["unfused_nms_identical"] = same_detections(dets_unfused, dets_theirs)[0]
    dets_ours = non_max_suppression(fused_out, conf, iou, 300, multi_label=True)
    row["nms_identical"], row["detections"], row["nms_max_diff"] = same_detections(dets_ours, dets_theirs)
    row["conf"] = conf
    return row


def yolov6_models(code: Path, deps: Path | None):
    """(name, builder) for YOLOv6 v3.0 N, S (distillation head, as released), M, L (plain head) and N with the
    anchor-aided training head, built by the YOLOv6 code."""
    for extra in (deps, code):
        if extra is not None:
            sys.path.insert(0, str(extra))
    try:
        from pkg_resources import parse_version  # noqa: F401
    except ImportError:  # setuptools >= 81 dropped pkg_resources
        from packaging.version import parse

        sys.modules["pkg_resources"] = types.SimpleNamespace(parse_version=parse)
    from yolov6.models.yolo import build_model
    from yolov6.utils.config import Config

    for scale, head in (("n", "distill_ns"), ("s", "distill_ns"), ("m", "plain"), ("l", "plain"), ("n", "fuse_ab")):
        cfg = Config.fromfile(str(code / "configs" / f"yolov6{scale}.py"))
        if not hasattr(cfg, "training_mode"):
            cfg.training_mode = "repvgg"
        if head == "distill_ns":  # the self-distilled release: DFL branch for the teacher's targets, distances used
            cfg.model.head.reg_max, cfg.model.head.use_dfl = 16, True
        build = lambda cfg=cfg, head=head: build_model(cfg, 80, "cpu", fuse_ab=head == "fuse_ab",  # noqa: E731
                                                        distill_ns=head == "distill_ns")  # fmt: skip
        yield f"YOLOv6-{scale.upper()} ({head} head)", build


def yolov6_run(model, images):
    out = model(images)[0]  # [B, N, 5 + nc] xywh, objectness (1), scores
    return torch.cat((xywh_to_xyxy(out[..., :4]), out[..., 5:]), -1)


def yolov6_nms(model, images, conf, iou):
    from yolov6.utils.nms import non_max_suppression as original_nms

    with torch.no_grad():
        return [d.float() for d in original_nms(model(images)[0], conf, iou, multi_label=True, max_det=300)]


def yolov6_save(model, path: Path) -> None:
    """As YOLOv6's strip_optimizer leaves a release: the EMA model in fp16, no optimizer."""
    release = copy.deepcopy(model).half()
    for p in release.parameters():
        p.requires_grad = False
    torch.save({"model": release, "ema": None, "updates": None, "optimizer": None, "epoch": 399}, path)


def ultralytics_models():
    sys.path.insert(0, "/work/shared/anchors")
    import ulenv  # noqa: F401  (offline, no settings writes)
    from ultralytics.nn.tasks import DetectionModel

    for family, scales in (("yolov8", "nsmlx"), ("yolo11", "nsmlx")):
        for scale in scales:
            yield f"{family}{scale}", lambda name=f"{family}{scale}.yaml": DetectionModel(name, verbose=False)


def ultralytics_run(model, images):
    out = model(images)[0].transpose(1, 2)  # [B, N, 4 + nc] xywh
    return torch.cat((xywh_to_xyxy(out[..., :4]), out[..., 4:]), -1)


def ultralytics_nms(model, images, conf, iou):
    from ultralytics.utils.nms import non_max_suppression as original_nms

    with torch.no_grad():
        return [d.float() for d in original_nms(model(images)[0], conf, iou, multi_label=True, max_det=300)]


def ultralytics_save(model, path: Path) -> None:
    """As ultralytics' strip_optimizer leaves a release: the model in fp16, its args a dict, no optimizer."""
    import ultralytics

    release = copy.deepcopy(model).half()
    release.args = {"imgsz": 640, "task": "detect"}
    for p in release.parameters():
        p.requires_grad = False
    checkpoint = {"date": "2026-01-01T00:00:00", "version": ultralytics.__version__, "epoch": -1, "model": release,
                  "ema": None, "optimizer": None, "updates": None, "best_fitness": None,
                  "train_args": {"imgsz": 640, "data": "coco.yaml", "epochs": 500}}  # fmt: skip
    torch.save(checkpoint, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("family", choices=["yolov6", "ultralytics"])
    parser.add_argument("--code", type=Path, help="YOLOv6 repository (yolov6 family)")
    parser.add_argument("--deps", type=Path, help="folder holding addict (yolov6 family)")
    parser.add_argument("--images", type=Path, default=Path(__file__).parents[2] / "shared/data/raccoon/images")
    parser.add_argument("--count", type=int, default=4, help="photos compared")
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--keep", type=Path, help="also keep the release-style files here (to time imports)")
    parser.add_argument("--models", default="", help="comma-separated names to run (yolo11m,YOLOv6-L); default all")
    parser.add_argument("--file", type=Path, help="compare this checkpoint (a real release) instead of random ones")
    args = parser.parse_args()
    torch.manual_seed(0)
    images = load_images(args.images, args.count, args.imgsz)
    if args.family == "yolov6":
        models, run, nms, save = yolov6_models(args.code, args.deps), yolov6_run, yolov6_nms, yolov6_save
    else:
        models, run, nms, save = ultralytics_models(), ultralytics_run, ultralytics_nms, ultralytics_save
    print(f"{args.count} raccoon photos letterboxed to {args.imgsz}, fp32, CPU; NMS conf/IoU {NMS[args.family]}")
    print("| model | boxes rel. diff (unfused / fused) | scores rel. diff (unfused / fused) | detections after NMS |")
    print("|---|---|---|---|")
    failed = False
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        wanted = [w for w in args.models.split(",") if w]
        if args.file:  # the original code loads it (a file you trust), yolorep imports it
            models = [(args.file.name, None)]
        for seed, (name, build) in enumerate(models):
            if wanted and not any(name.startswith(w) for w in wanted):
                continue
            path = args.file or (args.keep or Path(tmp)) / f"{name.split()[0]}{'_ab' if 'fuse_ab' in name else ''}.pt"
            if build is not None:
                model = build()
                randomize(model, seed)
                save(model.eval(), path)
            original = torch.load(path, map_location="cpu", weights_only=False)["model"].float().eval()
            row = compare(name, path, original, run, nms, images, args.family, random=build is not None)
            ok = row["nms_identical"] and max(v for k, v in row.items() if k.endswith("_rel")) < 1e-4
            failed |= not ok
            verdict = "identical" if row["nms_identical"] else "DIFFER"
            verdict += "" if row["unfused_nms_identical"] else " (unfused: DIFFER)"
            print(f"| {name} | {row['boxes_rel']:.1e} / {row['fused_boxes_rel']:.1e} | {row['scores_rel']:.1e} / "
                  f"{row['fused_scores_rel']:.1e} | {row['detections']} {verdict} (max diff {row['nms_max_diff']:.1e}, "
                  f"conf {row['conf']:.3f}) |", flush=True)  # fmt: skip
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
