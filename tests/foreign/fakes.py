"""Checkpoints in the layouts YOLOv6 and ultralytics save, made without either package.

Classes named like theirs (``ultralytics.nn.modules.conv.Conv``, ``yolov6.layers.common.RepVGGBlock``, ...) are
plain ``nn.Module`` subclasses living in stub modules put into ``sys.modules`` only while a file is written, so
the pickle names the foreign classes exactly as a real release does, and reading it back cannot import them.
The trees follow the originals' attribute names and shapes (what the importer reads); their forward passes are
not needed, and these classes have none.
"""

from __future__ import annotations

import sys
import types
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn

_CLASSES: dict[str, type] = {}


def fake(path: str) -> type:
    """An ``nn.Module`` subclass whose pickled name is ``path``."""
    if path not in _CLASSES:
        module, _, name = path.rpartition(".")
        _CLASSES[path] = type(name, (nn.Module,), {"__module__": module, "__qualname__": name})
    return _CLASSES[path]


def node(path: str, *children: tuple[str, nn.Module | None], **attributes) -> nn.Module:
    module = fake(path)()
    for name, child in children:
        module.add_module(name, child)
    for name, value in attributes.items():
        setattr(module, name, value)
    return module


@contextmanager
def foreign_modules():
    """Stub modules holding the fake classes, present only inside the block."""
    added = []
    for path, cls in _CLASSES.items():
        parts = path.rpartition(".")[0].split(".")
        for depth in range(1, len(parts) + 1):
            name = ".".join(parts[:depth])
            if name not in sys.modules:
                sys.modules[name] = types.ModuleType(name)
                added.append(name)
        setattr(sys.modules[".".join(parts)], cls.__name__, cls)
    try:
        yield
    finally:
        for name in added:
            del sys.modules[name]


def save(checkpoint: dict, path: Path, legacy: bool = False) -> Path:
    with foreign_modules():
        torch.save(checkpoint, path, _use_new_zipfile_serialization=not legacy)
    return path


# ultralytics ------------------------------------------------------------------------------------------------------
U = "ultralytics.nn.modules."


def u_conv(c1: int, c2: int, k: int = 1, s: int = 1, groups: int = 1, act: bool = True) -> nn.Module:
    conv = nn.Conv2d(c1, c2, k, s, k // 2, groups=groups, bias=False)
    bn = nn.BatchNorm2d(c2, eps=1e-3, momentum=0.03)
    return node(U + "conv.Conv", ("conv", conv), ("bn", bn), ("act", nn.SiLU() if act else nn.Identity()))


def u_bottleneck(c1: int, c2: int, shortcut: bool, e: float) -> nn.Module:
    hidden = int(c2 * e)
    return node(U + "block.Bottleneck", ("cv1", u_conv(c1, hidden, 3)), ("cv2", u_conv(hidden, c2, 3)),
                add=shortcut and c1 == c2)  # fmt: skip


def u_c2f(c1: int, c2: int, n: int, shortcut: bool) -> nn.Module:
    c = c2 // 2
    blocks = nn.ModuleList(u_bottleneck(c, c, shortcut, 1.0) for _ in range(n))
    return node(U + "block.C2f", ("cv1", u_conv(c1, 2 * c)), ("cv2", u_conv((2 + n) * c, c2)), ("m", blocks), c=c)


def u_sppf(c1: int, c2: int, reduce_act: bool) -> nn.Module:
    return node(U + "block.SPPF", ("cv1", u_conv(c1, c1 // 2, act=reduce_act)), ("cv2", u_conv(c1 // 2 * 4, c2)),
                ("m", nn.MaxPool2d(5, 1, 2)))  # fmt: skip


def u_detect(nc: int, ch: list[int], reg_max: int = 16) -> nn.Module:
    c2, c3 = max(16, ch[0] // 4, reg_max * 4), max(ch[0], min(nc, 100))
    box = nn.ModuleList(nn.Sequential(u_conv(x, c2, 3), u_conv(c2, c2, 3), nn.Conv2d(c2, 4 * reg_max, 1)) for x in ch)
    cls = nn.ModuleList(nn.Sequential(u_conv(x, c3, 3), u_conv(c3, c3, 3), nn.Conv2d(c3, nc, 1)) for x in ch)
    dfl = node(U + "block.DFL", ("conv", nn.Conv2d(reg_max, 1, 1, bias=False).requires_grad_(False)), c1=reg_max)
    dfl.conv.weight.data[:] = torch.arange(reg_max, dtype=torch.float).view(1, reg_max, 1, 1)
    return node(U + "head.Detect", ("cv2", box), ("cv3", cls), ("dfl", dfl), nc=nc, reg_max=reg_max,
                stride=torch.tensor([8.0, 16.0, 32.0]))  # fmt: skip


def ultralytics_yolov8n(nc: int = 80, reduce_act: bool = True) -> nn.Module:
    """ultralytics' yolov8n as its DetectionModel lays it out (scale n: widths 16-256, depth 1-2)."""
    up = lambda: nn.Upsample(scale_factor=2.0, mode="nearest")  # noqa: E731
    cat = lambda: node(U + "conv.Concat", d=1)  # noqa: E731
    layers = [
        u_conv(3, 16, 3, 2), u_conv(16, 32, 3, 2), u_c2f(32, 32, 1, True), u_conv(32, 64, 3, 2),
        u_c2f(64, 64, 2, True), u_conv(64, 128, 3, 2), u_c2f(128, 128, 2, True), u_conv(128, 256, 3, 2),
        u_c2f(256, 256, 1, True), u_sppf(256, 256, reduce_act), up(), cat(), u_c2f(384, 128, 1, False), up(), cat(),
        u_c2f(192, 64, 1, False), u_conv(64, 64, 3, 2), cat(), u_c2f(192, 128, 1, False), u_conv(128, 128, 3, 2),
        cat(), u_c2f(384, 256, 1, False), u_detect(nc, [64, 128, 256]),
    ]  # fmt: skip
    for index, layer in enumerate(layers):
        layer.i, layer.f, layer.type = index, -1, type(layer).__name__
    yaml = {"nc": nc, "scale": "n", "backbone": [[-1, 1, "Conv", [64, 3, 2]]], "head": []}
    return node("ultralytics.nn.tasks.DetectionModel", ("model", nn.Sequential(*layers)), yaml=yaml,
                names={i: f"thing{i}" for i in range(nc)}, stride=torch.tensor([8.0, 16.0, 32.0]))  # fmt: skip


def ultralytics_checkpoint(model: nn.Module) -> dict:
    """As ultralytics' strip_optimizer leaves a release."""
    return {"date": "2024-01-01T00:00:00", "version": "8.0.0", "epoch": -1, "best_fitness": None, "ema": None,
            "model": model.half(), "optimizer": None, "updates": None,
            "train_args": {"imgsz": 320, "data": "coco.yaml", "save_dir": Path("runs/x")}}  # fmt: skip


# YOLOv6 -----------------------------------------------------------------------------------------------------------
C = "yolov6.layers.common."


def v6_conv_module(c1: int, c2: int, k: int, s: int, act: str | None) -> nn.Module:
    acts = {"relu": nn.ReLU, "silu": nn.SiLU}
    children = [("conv", nn.Conv2d(c1, c2, k, s, k // 2, bias=False)), ("bn", nn.BatchNorm2d(c2, eps=1e-3))]
    children += [("act", acts[act]())] if act else []
    return node(C + "ConvModule", *children, activation_type=act)


def v6_conv(c1: int, c2: int, k: int = 3, s: int = 1, act: str = "relu") -> nn.Module:
    kind = "ConvBNReLU" if act == "relu" else "ConvBNSiLU"
    return node(C + kind, ("block", v6_conv_module(c1, c2, k, s, act)))


def v6_repvgg(c1: int, c2: int, s: int = 1) -> nn.Module:
    identity = nn.BatchNorm2d(c1, eps=1e-3) if c1 == c2 and s == 1 else None
    return node(C + "RepVGGBlock", ("nonlinearity", nn.ReLU()), ("se", nn.Identity()), ("rbr_identity", identity),
                ("rbr_dense", v6_conv_module(c1, c2, 3, s, None)), ("rbr_1x1", v6_conv_module(c1, c2, 1, s, None)),
                deploy=False, groups=1, in_channels=c1, out_channels=c2)  # fmt: skip


def v6_repblock(c1: int, c2: int, n: int) -> nn.Module:
    rest = nn.Sequential(*(v6_repvgg(c2, c2) for _ in range(n - 1))) if n > 1 else None
    return node(C + "RepBlock", ("conv1", v6_repvgg(c1, c2)), ("block", rest))


def v6_cspsppf(c1: int, c2: int) -> nn.Module:
    c = c2 // 2
    inner = node(C + "CSPSPPFModule", ("cv1", v6_conv(c1, c, 1)), ("cv2", v6_conv(c1, c, 1)), ("cv3", v6_conv(c, c, 3)),
                 ("cv4", v6_conv(c, c, 1)), ("m", nn.MaxPool2d(5, 1, 2)), ("cv5", v6_conv(4 * c, c, 1)),
                 ("cv6", v6_conv(c, c, 3)), ("cv7", v6_conv(2 * c, c2, 1)))  # fmt: skip
    return node(C + "SimCSPSPPF", ("cspsppf", inner))


def v6_bifusion(c_same: int, c_finer: int, out: int) -> nn.Module:
    up = node(C + "Transpose", ("upsample_transpose", nn.ConvTranspose2d(out, out, 2, 2, bias=True)))
    convs = (("cv1", v6_conv(c_same, out, 1)), ("cv2", v6_conv(c_finer, out, 1)), ("cv3", v6_conv(3 * out, out, 1)))
    return node(C + "BiFusion", *convs, ("upsample", up), ("downsample", v6_conv(out, out, 3, 2)))


def v6_head(nc: int, ch: list[int], kind: str) -> nn.Module:
    """The efficient decoupled head: ``plain`` (reg_max 0), ``fuse_ab`` (+ anchor-aided predictors, 3 anchors) or
    ``distill_ns`` (+ a DFL predictor used only to distil)."""
    silu = lambda c, k: v6_conv(c, c, k, act="silu")  # noqa: E731
    lists = {name: nn.ModuleList() for name in ("stems", "cls_convs", "reg_convs", "cls_preds", "reg_preds")}
    extra = {"fuse_ab": ("cls_preds_ab", "reg_preds_ab"), "distill_ns": ("reg_preds_dist",)}.get(kind, ())
    lists.update({name: nn.ModuleList() for name in extra})
    for c in ch:
        lists["stems"].append(silu(c, 1))
        lists["cls_convs"].append(silu(c, 3))
        lists["reg_convs"].append(silu(c, 3))
        lists["cls_preds"].append(nn.Conv2d(c, nc, 1))
        lists["reg_preds"].append(nn.Conv2d(c, 4, 1))
        if kind == "fuse_ab":
            lists["cls_preds_ab"].append(nn.Conv2d(c, nc * 3, 1))
            lists["reg_preds_ab"].append(nn.Conv2d(c, 4 * 3, 1))
        if kind == "distill_ns":
            lists["reg_preds_dist"].append(nn.Conv2d(c, 4 * 17, 1))
    reg_max = 16 if kind == "distill_ns" else 0
    proj_conv = nn.Conv2d(reg_max + 1, 1, 1, bias=False)
    proj_conv.weight.data[:] = torch.linspace(0, reg_max, reg_max + 1).view(1, -1, 1, 1)
    path = {"plain": "yolov6.models.effidehead.Detect", "fuse_ab": "yolov6.models.heads.effidehead_fuseab.Detect",
            "distill_ns": "yolov6.models.heads.effidehead_distill_ns.Detect"}[kind]  # fmt: skip
    head = node(path, ("proj_conv", proj_conv), *lists.items(), nc=nc, use_dfl=kind == "distill_ns",
                reg_max=reg_max, stride=torch.tensor([8, 16, 32]), grid=[torch.zeros(1)] * 3)  # fmt: skip
    head.proj = nn.Parameter(torch.linspace(0, reg_max, reg_max + 1), requires_grad=False)
    return head


def yolov6n(nc: int = 80, head: str = "plain") -> nn.Module:
    """YOLOv6-N v3.0 as yolov6.models.yolo.Model lays it out (widths 16-256, RepBlocks of 2-6)."""
    backbone = node(
        "yolov6.models.efficientrep.EfficientRep",
        ("stem", v6_repvgg(3, 16, 2)),
        ("ERBlock_2", nn.Sequential(v6_repvgg(16, 32, 2), v6_repblock(32, 32, 2))),
        ("ERBlock_3", nn.Sequential(v6_repvgg(32, 64, 2), v6_repblock(64, 64, 4))),
        ("ERBlock_4", nn.Sequential(v6_repvgg(64, 128, 2), v6_repblock(128, 128, 6))),
        ("ERBlock_5", nn.Sequential(v6_repvgg(128, 256, 2), v6_repblock(256, 256, 2), v6_cspsppf(256, 256))),
        fuse_P2=True,
    )
    neck = node(
        "yolov6.models.reppan.RepBiFPANNeck",
        ("reduce_layer0", v6_conv(256, 64, 1)), ("Bifusion0", v6_bifusion(128, 64, 64)),
        ("Rep_p4", v6_repblock(64, 64, 4)), ("reduce_layer1", v6_conv(64, 32, 1)),
        ("Bifusion1", v6_bifusion(64, 32, 32)), ("Rep_p3", v6_repblock(32, 32, 4)),
        ("downsample2", v6_conv(32, 32, 3, 2)), ("Rep_n3", v6_repblock(64, 64, 4)),
        ("downsample1", v6_conv(64, 64, 3, 2)), ("Rep_n4", v6_repblock(128, 128, 4)),
    )  # fmt: skip
    return node("yolov6.models.yolo.Model", ("backbone", backbone), ("neck", neck),
                ("detect", v6_head(nc, [32, 64, 128], head)), stride=torch.tensor([8.0, 16.0, 32.0]))  # fmt: skip


def yolov6_checkpoint(model: nn.Module) -> dict:
    """As YOLOv6's strip_optimizer leaves a release."""
    return {"model": model.half(), "ema": None, "updates": None, "optimizer": None, "epoch": 399}
