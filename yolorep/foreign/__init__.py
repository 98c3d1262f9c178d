"""Checkpoints of other projects (YOLOv6 v3.0, ultralytics YOLOv8 and YOLO11): read without running any of their
code (:mod:`~yolorep.foreign.unpickler`), renamed into yolorep's YAML models (:mod:`~yolorep.foreign.mapping`,
one module per family) and returned as yolorep checkpoint dicts (:mod:`~yolorep.foreign.importer`)."""

from yolorep.foreign.importer import EVAL_PROTOCOLS, import_checkpoint
from yolorep.foreign.unpickler import PickledObject, UnsafePickle, read_pickled

__all__ = ["EVAL_PROTOCOLS", "PickledObject", "UnsafePickle", "import_checkpoint", "read_pickled"]
