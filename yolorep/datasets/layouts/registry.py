"""The data layouts yolorep reads, some of which it also writes: adding one is a new module with its ``Layout``
class (see :mod:`yolorep.datasets.layouts.base` for the contract) and one entry in the tuple below. Their order is
the order messages list them in; detection goes by :class:`~yolorep.datasets.layouts.base.Evidence`."""

from __future__ import annotations

from yolorep.datasets.layouts.base import Evidence, Layout, YamlSource
from yolorep.datasets.layouts.coco import CocoLayout
from yolorep.datasets.layouts.voc import VocLayout
from yolorep.datasets.layouts.yolo import YoloLayout
from yolorep.errors import DatasetError

__all__ = ["LAYOUTS", "WRITERS", "detect_layout"]

LAYOUTS: dict[str, type[Layout]] = {layout.name: layout for layout in (VocLayout, CocoLayout, YoloLayout)}
WRITERS: dict[str, type[Layout]] = {name: layout for name, layout in LAYOUTS.items() if layout.writes}


def detect_layout(source: YamlSource) -> type[Layout]:
    """The layout a YAML without ``layout:`` is in: the one with the strongest evidence, the first on a tie."""
    evidence = {layout: layout.detect(source) for layout in LAYOUTS.values()}
    best = max(evidence, key=evidence.__getitem__)
    if evidence[best] == Evidence.NONE:
        raise DatasetError(f"{source.yaml_path}: layout: cannot tell the layout; set layout: {', '.join(LAYOUTS)}")
    return best
