"""YOLOv6 v3.0 checkpoints (meituan/YOLOv6): ``{"model": yolov6.models.yolo.Model, "ema": ..., ...}``.

The file states no configuration: the backbone, neck and head classes, the blocks and the tensors' shapes say
which of ``yolov6.yaml`` (N, S), ``yolov6-m.yaml`` and ``yolov6-l.yaml`` it is. The head may be the plain
efficient decoupled head or one of its training variants; inference reads only its anchor-free predictions, so
the anchor-aided (``*_ab``) and distillation (``reg_preds_dist``) predictors are left out.
"""

from __future__ import annotations

import re
from typing import Any

import torch

from yolorep.errors import CheckpointError
from yolorep.foreign.mapping import Rules

__all__ = ["RULES", "candidates", "check_trainable", "head_settings", "is_yolov6", "names"]

_COMMON = "yolov6.layers.common."
_HEADS = ("yolov6.models.effidehead.Detect", "yolov6.models.heads.effidehead_fuseab.Detect",
          "yolov6.models.heads.effidehead_distill_ns.Detect")  # fmt: skip
_DISTILL_HEAD = _HEADS[2]
_CONV_BLOCK = [(r"block\.", "")]  # ConvBNReLU / ConvBNSiLU wrap conv, bn, act in .block
_SPPF = [(r"sppf\.cv1\.", "reduce."), (r"sppf\.cv2\.", "expand.")]
# backbone and neck attributes -> rows of the YAML files (the same in all four)
_LAYERS = {
    "backbone.stem": 0, "backbone.ERBlock_2.0": 1, "backbone.ERBlock_2.1": 2, "backbone.ERBlock_3.0": 3,
    "backbone.ERBlock_3.1": 4, "backbone.ERBlock_4.0": 5, "backbone.ERBlock_4.1": 6, "backbone.ERBlock_5.0": 7,
    "backbone.ERBlock_5.1": 8, "backbone.ERBlock_5.2": 9, "neck.reduce_layer0": 10, "neck.Bifusion0": 11,
    "neck.Rep_p4": 12, "neck.reduce_layer1": 13, "neck.Bifusion1": 14, "neck.Rep_p3": 15, "neck.downsample2": 16,
    "neck.Rep_n3": 18, "neck.downsample1": 19, "neck.Rep_n4": 21,
}  # fmt: skip
_HEAD_ROW = 22
_HEAD_RULES = [
    (r"(proj_conv|proj|cls_preds_ab|reg_preds_ab|reg_preds_dist)\b", None),  # constants and training-only branches
    (r"stems\.(\d+)\.", r"levels.\1.stem."),
    (r"cls_convs\.(\d+)\.", r"levels.\1.cls_conv."),
    (r"reg_convs\.(\d+)\.", r"levels.\1.reg_conv."),
    (r"cls_preds\.(\d+)\.", r"levels.\1.cls_pred."),
    (r"reg_preds\.(\d+)\.", r"levels.\1.reg_pred."),
]
_REP_STAGE = [(r"conv1\.", "blocks.0."), (r"block\.(\d+)\.", lambda m: f"blocks.{int(m[1]) + 1}.")]

RULES: Rules = {
    _COMMON + "ConvBNReLU": _CONV_BLOCK,
    _COMMON + "ConvBNSiLU": _CONV_BLOCK,
    _COMMON + "RepVGGBlock": [
        (r"se\.", None),
        (r"rbr_reparam\.", "reparameterized."),  # a deploy-mode block: reported as unexpected
        (r"rbr_dense\.", "dense."),
        (r"rbr_1x1\.", "pointwise."),
        (r"rbr_identity\.", "identity."),
        (r"nonlinearity\.", "act."),
    ],
    _COMMON + "RepBlock": _REP_STAGE,
    _COMMON + "BepC3": [(r"cv1\.", "main."), (r"cv2\.", "bypass."), (r"cv3\.", "merge."), (r"m\.", "")],
    _COMMON + "SimSPPF": _SPPF,
    _COMMON + "SPPF": _SPPF,
    **{
        _COMMON + name: [
            (r"cspsppf\.cv1\.", "main.0."),
            (r"cspsppf\.cv3\.", "main.1."),
            (r"cspsppf\.cv4\.", "main.2."),
            (r"cspsppf\.cv2\.", "bypass."),
            (r"cspsppf\.cv5\.", "pooled.0."),
            (r"cspsppf\.cv6\.", "pooled.1."),
            (r"cspsppf\.cv7\.", "merge."),
        ]  # fmt: skip
        for name in ("SimCSPSPPF", "CSPSPPF")
    },
    _COMMON + "BiFusion": [
        (r"upsample\.upsample_transpose\.", "upsample."),
        (r"cv1\.", "lateral."),
        (r"cv2\.", "finer."),
        (r"cv3\.", "merge."),
    ],
    **{head: _HEAD_RULES for head in _HEADS},
    "yolov6.models.yolo.Model": [
        *((re.escape(attribute) + r"\.", f"layers.{row}.") for attribute, row in _LAYERS.items()),
        (r"detect\.", f"layers.{_HEAD_ROW}."),
    ],
}


def is_yolov6(model: Any) -> bool:
    return model.class_path.startswith("yolov6.")


def candidates(model: Any) -> list[tuple[str, str | None]]:
    """The model YAMLs (and scales) a YOLOv6 file may be, by its backbone class."""
    backbone = model.children.get("backbone")
    kind = backbone.class_path if backbone is not None else "nothing"
    if kind == "yolov6.models.efficientrep.EfficientRep":
        return [("yolov6.yaml", "n"), ("yolov6.yaml", "s")]
    if kind == "yolov6.models.efficientrep.CSPBepBackbone":
        return [("yolov6-m.yaml", None), ("yolov6-l.yaml", None)]
    raise CheckpointError(
        f"a YOLOv6 model with backbone {kind}; yolorep imports the YOLOv6 v3.0 P5 models (EfficientRep: N, S; "
        "CSPBepBackbone: M, L)"
    )


def check_trainable(model: Any) -> None:
    """Refuse a file saved after ``switch_to_deploy`` (its RepVGG blocks already folded)."""
    if any(".rbr_reparam." in key for key in model.state_dict()):
        raise CheckpointError(
            "a YOLOv6 model saved in deploy mode (RepVGG blocks already re-parameterized); import the checkpoint "
            "that training wrote (a release file, best_ckpt.pt or last_ckpt.pt)"
        )


def head_settings(model: Any) -> dict[str, int]:
    """``nc`` and yolorep's ``reg_max`` (0 for distances, else DFL bins) from the head's tensors and flags."""
    head = model.children.get("detect")
    if head is None or head.class_path not in _HEADS:
        raise CheckpointError(f"a YOLOv6 model without a known detection head ({getattr(head, 'class_path', None)})")
    state = head.state_dict()
    nc = int(state["cls_preds.0.weight"].shape[0])
    box_channels = int(state["reg_preds.0.weight"].shape[0])
    distances = head.class_path == _DISTILL_HEAD or not head.get("use_dfl", True)
    if distances:
        if box_channels != 4:
            raise CheckpointError(f"a YOLOv6 head predicting distances with {box_channels} box channels, not 4")
        return {"nc": nc, "reg_max": 0}
    bins = box_channels // 4
    projection = state.get("proj_conv.weight")
    if projection is not None and not torch.equal(projection.float().flatten(), torch.arange(bins).float()):
        raise CheckpointError("a YOLOv6 head whose DFL projection is not 0, 1, ..., reg_max; it cannot be decoded")
    return {"nc": nc, "reg_max": bins}


# The 80 COCO detection classes in the order of their category ids (YOLOv6's data/coco.yaml order).
COCO_NAMES = (
    "person bicycle car motorcycle airplane bus train truck boat traffic_light fire_hydrant stop_sign parking_meter "
    "bench bird cat dog horse sheep cow elephant bear zebra giraffe backpack umbrella handbag tie suitcase frisbee "
    "skis snowboard sports_ball kite baseball_bat baseball_glove skateboard surfboard tennis_racket bottle wine_glass "
    "cup fork knife spoon bowl banana apple sandwich orange broccoli carrot hot_dog pizza donut cake chair couch "
    "potted_plant bed dining_table toilet tv laptop mouse remote keyboard cell_phone microwave oven toaster sink "
    "refrigerator book clock vase scissors teddy_bear hair_drier toothbrush"
)


def names(nc: int) -> list[str]:
    """YOLOv6 files store no class names: COCO's for an 80-class model, else ``class0`` ..."""
    coco = [name.replace("_", " ") for name in COCO_NAMES.split()]
    return coco if nc == len(coco) else [f"class{i}" for i in range(nc)]
