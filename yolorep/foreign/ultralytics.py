"""ultralytics checkpoints: ``{"model": ultralytics.nn.tasks.DetectionModel, "ema": ..., "train_args": ...}``.

The model holds the YAML mapping it was built from, its class names and layers in YAML order, so rows map to rows.
Which details vary between ultralytics releases is read from the module tree rather than assumed: the activation
of SPPF's first conv, C3k2's blocks, the head's branch widths and whether its class branches are depthwise.
"""

from __future__ import annotations

from typing import Any

import torch

from yolorep.errors import CheckpointError
from yolorep.foreign.mapping import Rules, row_with_args
from yolorep.foreign.records import PickledObject

__all__ = ["RULES", "configure", "family_yaml", "image_size", "is_ultralytics", "names", "rule_key", "scales"]

_SPLIT_MERGE = [(r"cv1\.", "split."), (r"cv2\.", "merge."), (r"m\.", "blocks.")]
# keyed by class name: ultralytics moved its modules between releases (ultralytics.nn.modules.Conv, then .conv.Conv)
RULES: Rules = {
    "C2f": _SPLIT_MERGE,
    "C3k2": _SPLIT_MERGE,
    "C2PSA": _SPLIT_MERGE,
    "Bottleneck": [(r"cv1\.", "conv1."), (r"cv2\.", "conv2.")],
    "C3k": [(r"cv1\.", "main."), (r"cv2\.", "bypass."), (r"cv3\.", "merge."), (r"m\.", "blocks.")],
    "SPPF": [(r"cv1\.", "reduce."), (r"cv2\.", "expand.")],
    "Detect": [(r"dfl\.", None), (r"cv2\.", "box_branches."), (r"cv3\.", "cls_branches.")],
    "DetectionModel": [(r"model\.(\d+)\.", r"layers.\1.")],
}
_FAMILIES = {"yolo11.yaml": ("C3k2", "C2PSA"), "yolov8.yaml": ("C2f",)}  # YAML -> blocks that identify it
_ROWS = {"yolo11.yaml": 24, "yolov8.yaml": 23}


def is_ultralytics(model: Any) -> bool:
    return model.class_path.startswith("ultralytics.")


def rule_key(record: Any) -> str:
    return record.name if is_ultralytics(record) else record.class_path


def _layers(model: Any) -> list[Any]:
    sequential = model.children.get("model")
    return list(sequential.children.values()) if sequential is not None else []


def family_yaml(model: Any) -> str:
    """Which shipped YAML the model's layers are (YOLOv8 or YOLO11 detection, P3-P5)."""
    if model.name != "DetectionModel":
        raise CheckpointError(f"an ultralytics {model.name}; yolorep imports detection models (DetectionModel)")
    layers = _layers(model)
    kinds = {layer.name for layer in layers}
    for yaml_name, blocks in _FAMILIES.items():
        if all(block in kinds for block in blocks) and len(layers) == _ROWS[yaml_name]:
            head = layers[-1]
            if head.name != "Detect" or "one2one_cv2" in head.children:
                raise CheckpointError(f"an ultralytics model with a {head.name} head; yolorep imports Detect heads")
            return yaml_name
    raise CheckpointError(
        f"an ultralytics model of {len(layers)} layers ({', '.join(sorted(kinds))}); yolorep imports the YOLOv8 and "
        "YOLO11 detection architectures (P3-P5)"
    )


def configure(model: Any, cfg: dict[str, Any]) -> None:
    """Write into ``cfg`` (the shipped YAML's mapping) what this file's layers say: class count, head widths, SPPF's
    first activation and C3k2's block type, row by row."""
    layers = _layers(model)
    for index, layer in enumerate(layers):
        if layer.name == "SPPF":
            reduce_act = layer.children["cv1"].children.get("act")
            row_with_args(cfg, index, reduce_act=reduce_act is not None and reduce_act.name != "Identity")
        elif layer.name == "C3k2":
            blocks = list(layer.children["m"].children.values())
            row_with_args(cfg, index, c3k=bool(blocks) and blocks[0].name == "C3k")
    head = layers[-1].state_dict()
    bins = head["cv2.0.2.weight"].shape[0] // 4
    cls_first = layers[-1].children["cv3"].children["0"].children["0"]
    depthwise = cls_first.name == "Sequential"
    cls_width = head["cv3.0.0.1.conv.weight" if depthwise else "cv3.0.0.conv.weight"].shape[0]
    projection = head.get("dfl.conv.weight")
    if projection is not None and not torch.equal(projection.float().flatten(), torch.arange(bins).float()):
        raise CheckpointError("an ultralytics head whose DFL projection is not 0, 1, ..., reg_max; cannot decode it")
    cfg["nc"] = int(head["cv3.0.2.weight"].shape[0])
    row_with_args(
        cfg, len(layers) - 1, nc="nc", reg_max=int(bins), box_channels=int(head["cv2.0.0.conv.weight"].shape[0]),
        cls_channels=int(cls_width), depthwise=depthwise,
    )  # fmt: skip


def scales(model: Any, available: list[str]) -> list[str]:
    """The scale the file names (ultralytics 8.1 on), else every scale of the YAML, to be matched by shape."""
    stated = (model.get("yaml") or {}).get("scale")
    return [stated] if stated in available else available


def names(model: Any, nc: int) -> list[str]:
    stored = model.get("names")
    if isinstance(stored, dict):
        stored = [stored[k] for k in sorted(stored)]
    if isinstance(stored, (list, tuple)) and len(stored) == nc and all(isinstance(n, str) for n in stored):
        return list(stored)
    return [f"class{i}" for i in range(nc)]


def image_size(checkpoint: dict[str, Any], model: Any) -> int:
    """The training image size the file records (ultralytics' train_args or model.args), else 640."""
    for source in (checkpoint.get("train_args"), model.get("args")):
        source = source.state if isinstance(source, PickledObject) else source  # a pickled namespace
        value = source.get("imgsz") if isinstance(source, dict) else None
        if isinstance(value, int) and value > 0:
            return value
    return 640
