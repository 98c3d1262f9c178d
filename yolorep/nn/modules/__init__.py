"""Built-in modules; importing this package registers them (and torch aliases) under their YAML names.

Besides yolorep's own blocks: those of YOLOv6 v3.0 (``yolov6``), ultralytics YOLOv8 (``yolov8``) and YOLO11
(``yolo11``), whose released weights ``yolorep import`` reads.
"""

from torch import nn

from yolorep.nn.modules.acb import ACBlock
from yolorep.nn.modules.conv import Conv, ConvBN, FusedConv, make_activation
from yolorep.nn.modules.dbb import DBBlock
from yolorep.nn.modules.head import Detect, DetectionHead
from yolorep.nn.modules.mobileone import MobileOneBlock, MobileOneUnit
from yolorep.nn.modules.neck import SPPF, Concat
from yolorep.nn.modules.repvgg import QARepVGGBlock, RepBlock, RepCSP, RepVGGBlock
from yolorep.nn.modules.timm_backbone import FusedTimmBackbone, Select, TimmBackbone, without_pretrained_weights
from yolorep.nn.modules.yolo11 import C2PSA, C3k2
from yolorep.nn.modules.yolov6 import CSPSPPF, BepC3, BiFusion
from yolorep.nn.modules.yolov8 import C2f, YOLOv8Detect
from yolorep.nn.registry import register_alias

__all__ = [
    "C2PSA",
    "CSPSPPF",
    "SPPF",
    "ACBlock",
    "BepC3",
    "BiFusion",
    "C2f",
    "C3k2",
    "Concat",
    "Conv",
    "ConvBN",
    "DBBlock",
    "Detect",
    "DetectionHead",
    "FusedConv",
    "FusedTimmBackbone",
    "MobileOneBlock",
    "MobileOneUnit",
    "QARepVGGBlock",
    "RepBlock",
    "RepCSP",
    "RepVGGBlock",
    "Select",
    "TimmBackbone",
    "YOLOv8Detect",
    "make_activation",
    "without_pretrained_weights",
]

register_alias("nn.Upsample", nn.Upsample)
register_alias("nn.MaxPool2d", nn.MaxPool2d)
register_alias("nn.Identity", nn.Identity)
register_alias("nn.Conv2d", nn.Conv2d, out_channels="out_channels", takes_in_channels=True)
