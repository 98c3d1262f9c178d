"""Network building blocks, the YAML registry and builder, and structural re-parameterization."""

from yolorep.nn.fuse import bn_kernel_bias, fuse, fuse_conv_bn, identity_kernel, is_fusable
from yolorep.nn.model import DetectionModel, build_model
from yolorep.nn.modules import SPPF, Concat, Conv, Detect, FusedConv, QARepVGGBlock, RepBlock, RepCSP, RepVGGBlock
from yolorep.nn.registry import lookup, register, register_alias, registered_names

__all__ = [
    "SPPF",
    "Concat",
    "Conv",
    "Detect",
    "DetectionModel",
    "FusedConv",
    "QARepVGGBlock",
    "RepBlock",
    "RepCSP",
    "RepVGGBlock",
    "bn_kernel_bias",
    "build_model",
    "fuse",
    "fuse_conv_bn",
    "identity_kernel",
    "is_fusable",
    "lookup",
    "register",
    "register_alias",
    "registered_names",
]
