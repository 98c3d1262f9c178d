"""One example per registered module name: constructor arguments and an input, so every registry entry is built,
run and (when it holds fusable parts) fuse-checked without anyone writing a test for it.

A module registered without an entry here fails ``test_every_registered_module_has_an_example``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Example:
    args: tuple[Any, ...]  # positional constructor arguments (input channels first, when the entry takes them)
    inputs: tuple[tuple[int, ...], ...]  # input shapes; several for multi-input modules (Concat, Detect)
    kwargs: dict[str, Any] = field(default_factory=dict)
    requires: str | None = None  # an optional package the module needs; the example is skipped without it

    @property
    def multi_input(self) -> bool:
        return len(self.inputs) > 1


EXAMPLES: dict[str, Example] = {
    "Conv": Example((8, 16), ((2, 8, 11, 11),), {"kernel_size": 3, "stride": 2}),
    "RepVGGBlock": Example((8, 8), ((2, 8, 11, 11),), {"groups": 2}),
    "QARepVGGBlock": Example((8, 8), ((2, 8, 11, 11),)),
    "ACBlock": Example((8, 16, 3, 2), ((2, 8, 11, 10),), {"groups": 2}),
    "DBBlock": Example((8, 8, 3, 2), ((2, 8, 11, 10),)),
    "MobileOneBlock": Example((8, 8, 3, 1), ((2, 8, 11, 10),), {"groups": 8, "branches": 3}),
    "MobileOneUnit": Example((8, 16, 3, 2), ((2, 8, 11, 10),), {"branches": 2}),
    "RepBlock": Example((8, 16, 3), ((2, 8, 9, 13),)),
    "RepCSP": Example((8, 16, 2), ((2, 8, 9, 13),), {"block": "QARepVGGBlock"}),  # RepBlock covers RepVGGBlock
    "SPPF": Example((16, 8, 5), ((2, 16, 12, 12),)),
    "Concat": Example(([8, 4],), ((2, 8, 6, 6), (2, 4, 6, 6))),
    "Detect": Example(([8, 16, 16], 3), ((2, 8, 16, 16), (2, 16, 8, 8), (2, 16, 4, 4)), {"reg_max": 8}),
    "Select": Example(([8, 16],), ((2, 8, 6, 6), (2, 16, 3, 3)), {"index": 1}),
    "TimmBackbone": Example((3, "mobileone_s0", [3, 4]), ((1, 3, 64, 32),), requires="timm"),
    "BepC3": Example((8, 16, 4), ((2, 8, 9, 13),), {"expansion": 2 / 3}),  # YOLOv6-M: RepVGG blocks, ReLU
    "CSPSPPF": Example((16, 8, 5), ((2, 16, 12, 12),)),
    "BiFusion": Example(([8, 16, 4], 12), ((2, 8, 4, 6), (2, 16, 8, 12), (2, 4, 16, 24))),
    "C2f": Example((8, 16, True), ((2, 8, 9, 13),), {"n": 2}),
    "C3k2": Example((8, 16, True, 0.5), ((2, 8, 9, 13),), {"n": 2}),  # C3k blocks; C2f covers bottlenecks
    "C2PSA": Example((128, 128), ((2, 128, 5, 7),), {"n": 1}),  # two attention heads
    "YOLOv8Detect": Example(([8, 16, 16], 3), ((2, 8, 16, 16), (2, 16, 8, 8), (2, 16, 4, 4)), {"depthwise": True}),
    "nn.Upsample": Example((), ((2, 8, 5, 5),), {"scale_factor": 2, "mode": "nearest"}),
    "nn.MaxPool2d": Example((3,), ((2, 8, 6, 6),), {"stride": 1, "padding": 1}),
    "nn.Identity": Example((), ((2, 8, 5, 5),)),
    "nn.Conv2d": Example((8, 16, 3), ((2, 8, 7, 7),), {"padding": 1}),
}
