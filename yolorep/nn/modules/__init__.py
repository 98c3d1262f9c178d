"""Built-in modules; importing this package registers them (and torch aliases) under their YAML names."""

from torch import nn

from yolorep.nn.modules.acb import ACBlock
from yolorep.nn.modules.conv import Conv, ConvBN, FusedConv, make_activation
from yolorep.nn.modules.dbb import DBBlock
from yolorep.nn.modules.head import Detect
from yolorep.nn.modules.mobileone import MobileOneBlock, MobileOneUnit
from yolorep.nn.modules.neck import SPPF, Concat
from yolorep.nn.modules.repvgg import QARepVGGBlock, RepBlock, RepCSP, RepVGGBlock
from yolorep.nn.modules.timm_backbone import FusedTimmBackbone, Select, TimmBackbone, without_pretrained_weights
from yolorep.nn.registry import register_alias

__all__ = [
    "SPPF",
    "ACBlock",
    "Concat",
    "Conv",
    "ConvBN",
    "DBBlock",
    "Detect",
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
    "make_activation",
    "without_pretrained_weights",
]

register_alias("nn.Upsample", nn.Upsample)
register_alias("nn.MaxPool2d", nn.MaxPool2d)
register_alias("nn.Identity", nn.Identity)
register_alias("nn.Conv2d", nn.Conv2d, out_channels="out_channels", takes_in_channels=True)
