"""The foreign-checkpoint reader: module trees come back as inert records with their tensors, in every format
torch writes, and nothing a pickle asks to call ever runs."""

from __future__ import annotations

import builtins
import io
import os
import pickle
import subprocess
from collections import OrderedDict

import pytest
import torch
from fakes import save, ultralytics_checkpoint, ultralytics_yolov8n, yolov6_checkpoint, yolov6n
from torch import nn

from yolorep.errors import CheckpointError
from yolorep.foreign import PickledObject, UnsafePickle, read_pickled
from yolorep.foreign.unpickler import _SafeUnpickler


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
@pytest.mark.parametrize("dtype", [torch.float16, torch.float32])
def test_module_trees_come_back_as_records_with_their_tensors(tmp_path, legacy, dtype):
    model = yolov6n(nc=3)
    reference = {k: v.to(dtype) if v.is_floating_point() else v for k, v in model.state_dict().items()}
    path = save({"model": model.to(dtype), "epoch": 7, "extra": {1, 2}}, tmp_path / "w.pt", legacy=legacy)
    content = read_pickled(path)
    record = content["model"]
    assert isinstance(record, PickledObject) and record.class_path == "yolov6.models.yolo.Model"
    assert list(record.children) == ["backbone", "neck", "detect"]
    assert record.children["detect"].get("nc") == 3  # plain attributes are kept
    state = record.state_dict()
    assert list(state) == list(reference)  # the order and names nn.Module.state_dict() gives
    assert all(state[k].dtype == v.dtype and torch.equal(state[k], v) for k, v in reference.items())
    assert content["epoch"] == 7 and content["extra"] == {1, 2}
    assert "yolov6" not in __import__("sys").modules  # nothing of the foreign package was imported


def test_metadata_of_real_releases_is_read(tmp_path):
    """ultralytics releases carry paths, dates and numpy scalars beside the model."""
    import datetime

    import numpy as np

    checkpoint = ultralytics_checkpoint(ultralytics_yolov8n(nc=2))
    checkpoint.update(when=datetime.datetime(2024, 1, 2), fitness=np.float64(0.25), count=np.int64(3))
    content = read_pickled(save(checkpoint, tmp_path / "u.pt"))
    assert content["train_args"]["save_dir"] == "runs/x"
    assert content["when"] == datetime.datetime(2024, 1, 2) and content["fitness"] == 0.25 and content["count"] == 3


class _Payload:
    """Pickles as a call of ``function(*args)``: what an attacker writes into a checkpoint."""

    def __init__(self, function, *args):
        self.function, self.args = function, args

    def __reduce__(self):
        return self.function, self.args


def _payloads(marker):
    touch = f"touch {marker}"
    return {
        "os.system": _Payload(os.system, touch),
        "subprocess": _Payload(subprocess.call, ["touch", str(marker)]),
        "eval": _Payload(builtins.eval, f"open({str(marker)!r}, 'w')"),
        "exec": _Payload(builtins.exec, f"open({str(marker)!r}, 'w')"),
        "open": _Payload(open, str(marker), "w"),
        "getattr": _Payload(getattr, str, "format"),  # the first link of a getattr(...)(...) chain
        "torch.load": _Payload(torch.load, str(marker)),
        "torch.save": _Payload(torch.save, {}, str(marker)),
    }


@pytest.mark.parametrize("name", list(_payloads("x")))
@pytest.mark.parametrize("where", ["top", "train_args", "module_attribute"])
def test_code_in_a_checkpoint_never_runs(tmp_path, name, where):
    marker = tmp_path / "ran"
    payload = _payloads(marker)[name]
    model = ultralytics_yolov8n(nc=2)
    checkpoint = ultralytics_checkpoint(model)
    if where == "top":
        checkpoint["x"] = payload
    elif where == "train_args":
        checkpoint["train_args"]["callbacks"] = [{"on_start": payload}]
    else:
        model.model[3].conv.hook = payload  # deep inside the module tree
    path = save(checkpoint, tmp_path / "evil.pt")
    with pytest.raises(UnsafePickle, match="refusing"):
        read_pickled(path)
    assert not marker.exists()
    with pytest.raises(CheckpointError, match="refused: .*nothing of it was run") as error:
        from yolorep.engine.checkpoint import read_checkpoint

        read_checkpoint(path)
    assert "\n" not in str(error.value) and not marker.exists()


def test_a_hand_written_pickle_cannot_reach_builtins(tmp_path):
    """Raw opcodes: GLOBAL builtins.exec + REDUCE, and copyreg._reconstructor of a function, are refused."""
    marker = tmp_path / "ran"
    code = f"open({str(marker)!r}, 'w')".encode()
    raw = b"\x80\x02cbuiltins\nexec\nq\x00X" + len(code).to_bytes(4, "little") + code + b"\x85R."
    with pytest.raises(UnsafePickle, match="builtins.exec"):
        _SafeUnpickler(io.BytesIO(raw), None).load()
    # copyreg._reconstructor of a function only records it; calling the record is refused
    reconstruct = b"\x80\x02ccopyreg\n_reconstructor\ncposix\nsystem\ncbuiltins\nobject\nN\x87R."
    record = _SafeUnpickler(io.BytesIO(reconstruct), None).load()
    assert isinstance(record, PickledObject) and record.class_path == "posix.system"
    call = b"\x80\x02cposix\nsystem\nX\x05\x00\x00\x00touch\x85R."
    with pytest.raises(UnsafePickle, match="posix.system"):
        _SafeUnpickler(io.BytesIO(call), None).load()
    assert not marker.exists()


def test_objects_are_recorded_without_running_their_code(tmp_path):
    """NEWOBJ + BUILD of any class gives a record: neither __new__, __init__ nor __setstate__ of it runs."""
    content = _SafeUnpickler(io.BytesIO(pickle.dumps(OrderedDict(a=nn.ReLU()), protocol=2)), None).load()
    assert isinstance(content["a"], PickledObject) and content["a"].class_path == "torch.nn.modules.activation.ReLU"


@pytest.mark.parametrize("cut", [0.3, 0.7, 0.98])
def test_truncated_files_fail_in_one_line(tmp_path, cut):
    path = save(yolov6_checkpoint(yolov6n()), tmp_path / "w.pt")
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * cut)])
    from yolorep.engine.checkpoint import read_checkpoint

    with pytest.raises(CheckpointError) as error:
        read_checkpoint(path)
    assert "\n" not in str(error.value)
