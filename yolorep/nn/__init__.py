"""Network building blocks, the YAML registry and builder, and structural re-parameterization.

Importing this package registers the built-in modules (``yolorep.nn.modules``) in the registry.
"""

from yolorep.nn.fuse import (
    bn_kernel_bias,
    conv_from_kernel,
    fuse,
    fuse_conv_bn,
    fused_copy,
    identity_kernel,
    is_fusable,
    randomize_batchnorm,
)
from yolorep.nn.model import DecodedModel, DetectionModel, build_model
from yolorep.nn.modules import SPPF, Concat, Conv, Detect, FusedConv, QARepVGGBlock, RepBlock, RepCSP, RepVGGBlock
from yolorep.nn.registry import lookup, register, register_alias, registered_names

__all__ = [
    "SPPF",
    "Concat",
    "Conv",
    "DecodedModel",
    "Detect",
    "DetectionModel",
    "FusedConv",
    "QARepVGGBlock",
    "RepBlock",
    "RepCSP",
    "RepVGGBlock",
    "bn_kernel_bias",
    "build_model",
    "conv_from_kernel",
    "fuse",
    "fuse_conv_bn",
    "fused_copy",
    "identity_kernel",
    "is_fusable",
    "lookup",
    "randomize_batchnorm",
    "register",
    "register_alias",
    "registered_names",
]
