"""Where a checkpoint meets a data set, class names are compared as lists, so that a data set listing the same
classes in another order, or other classes, is never scored or trained against the wrong class.

The rule, case by case:

* ``val --data`` (and any evaluation): the same names in another order are mapped by name (the model's score
  columns are reordered to the data set's classes); other names are refused. Evaluation only reads, so a mapping
  is exact and safe; any other difference would score one class's detections against another's boxes.
* ``train --resume --data``: the names must be the same list, or the run is refused. The run's ``best.pt`` and
  ``last.pt`` already hold the old order; a resumed run continues them and cannot reorder its own history.
* ``train --weights``: the class-score rows of the head are copied by name (a reordering is mapped; classes the
  checkpoint does not know keep their initial weights); everything else by name and shape as before.

Names ``class0``, ``class1``, ... are the placeholders of a model no data set has named; they match any names.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace

import torch
from torch import Tensor

from yolorep.engine.deploy.base import Backend
from yolorep.errors import CheckpointError, quoted

__all__ = ["ReorderedClasses", "class_rows_by_name", "evaluation_order", "is_placeholder", "require_same_names"]

LOGGER = logging.getLogger(__name__)
_CLASS_ROWS = ("cls_pred.weight", "cls_pred.bias")  # head tensors with one row per class


def is_placeholder(names: Sequence[str]) -> bool:
    """The names a model has before a data set names its classes."""
    return list(names) == [f"class{i}" for i in range(len(names))]


def _difference(ours: Sequence[str], theirs: Sequence[str]) -> str:
    """The first place the two lists differ, for a message (names are untrusted: quoted)."""
    for i, (a, b) in enumerate(zip(ours, theirs)):
        if a != b:
            return f"class {i} is {quoted(a)} in the model and {quoted(b)} in the data set"
    return f"the model has {len(ours)} classes and the data set {len(theirs)}"


def evaluation_order(model_names: Sequence[str], data_names: Sequence[str], where: str, data: str) -> list[int] | None:
    """For each class of the data set, the model's class of that name; None when they are the same list.

    Raises:
        CheckpointError: the names differ other than in order (or repeat, so that no order is certain).
    """
    if len(model_names) != len(data_names):
        raise CheckpointError(
            f"{where}: the model predicts {len(model_names)} classes but {data} has {len(data_names)}; evaluate on "
            "the data set it was trained on"
        )
    if list(model_names) == list(data_names) or is_placeholder(model_names):
        return None
    unique = len(set(model_names)) == len(model_names) and len(set(data_names)) == len(data_names)
    if not unique or sorted(model_names) != sorted(data_names):
        raise CheckpointError(
            f"{where}: the model's classes are not those of {data} ({_difference(model_names, data_names)}); "
            "evaluate on the data set it was trained on, or give that data set the model's class names"
        )
    order = [list(model_names).index(name) for name in data_names]
    LOGGER.info("%s: lists the model's classes in another order; detections are mapped to its classes by name", data)
    return order


class ReorderedClasses(Backend):
    """``backend`` with its class-score columns reordered: column ``j`` holds the scores of ``order[j]``."""

    def __init__(self, backend: Backend, order: list[int], names: Sequence[str]) -> None:
        super().__init__(backend.source, replace(backend.info, names=tuple(names), dynamic=True), backend.device)
        self.format, self.inner = backend.format, backend
        self.dynamic, self.batch, self.imgsz = backend.dynamic, backend.batch, backend.imgsz
        self.columns = torch.tensor([0, 1, 2, 3, *(4 + i for i in order)])

    def input_size(self, imgsz: int | None) -> int:
        return self.inner.input_size(imgsz)

    def __call__(self, images: Tensor) -> Tensor:
        output = self.inner(images)  # [B, N, 4 + nc]
        return output.index_select(2, self.columns.to(output.device))


def require_same_names(stored: Sequence[str] | None, names: Sequence[str], where: str, data: str) -> None:
    """A resumed run's data set must list the run's classes, in the same order.

    Raises:
        CheckpointError: the names differ.
    """
    if stored is None or list(stored) == list(names):
        return
    raise CheckpointError(
        f"{where}: --data {data} does not list the run's classes in the run's order ({_difference(stored, names)}); "
        "a resumed run keeps its classes: give a data set with the same names, or start a new run with --weights"
    )


def class_rows_by_name(
    state_dict: dict[str, Tensor], target: dict[str, Tensor], stored: Sequence[str] | None, names: Sequence[str]
) -> dict[str, Tensor]:
    """``state_dict`` (a checkpoint's, to seed a model whose state dict is ``target``) with the head's class rows
    taken by name: row ``j`` of the model gets the checkpoint's row of class ``names[j]``, or keeps ``target``'s
    initial values when the checkpoint has no such class. Unnamed (placeholder) or equal lists are left as they are.
    """
    if stored is None or list(stored) == list(names) or is_placeholder(stored) or is_placeholder(names):
        return state_dict
    index = {name: i for i, name in enumerate(stored) if list(stored).count(name) == 1}
    found = [index.get(name) for name in names]
    remapped = dict(state_dict)
    for key, value in state_dict.items():
        if key.endswith(_CLASS_ROWS) and key in target and value.shape[1:] == target[key].shape[1:]:
            rows = target[key].clone()
            for j, i in enumerate(found):
                if i is not None and i < len(value):
                    rows[j] = value[i]
            remapped[key] = rows
    matched = sum(i is not None for i in found)
    LOGGER.info("class rows of the head taken by name: %d of the %d classes found in the checkpoint", matched,
                len(names))  # fmt: skip
    return remapped
