"""Built-in modules; importing this package registers them under their YAML names."""

from yolorep.nn.modules.conv import Conv, FusedConv, make_activation
from yolorep.nn.modules.head import Detect
from yolorep.nn.modules.neck import SPPF, Concat
from yolorep.nn.modules.repvgg import QARepVGGBlock, RepBlock, RepCSP, RepVGGBlock

__all__ = [
    "SPPF",
    "Concat",
    "Conv",
    "Detect",
    "FusedConv",
    "QARepVGGBlock",
    "RepBlock",
    "RepCSP",
    "RepVGGBlock",
    "make_activation",
]
