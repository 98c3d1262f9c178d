"""Reading checkpoints pickled by other projects without importing or running any of their code.

ultralytics and YOLOv6 save whole module trees (``torch.save({"model": model, ...})``). ``torch.load`` with
``weights_only=False`` would import their packages and run whatever the pickle names; with ``weights_only=True``
it refuses the file. This reader sits between the two:

* ``find_class`` never imports anything. Tensor and storage rebuilds, ``torch.Size``, and plain containers
  (``OrderedDict``, ``set``, ...) map to functions written here; a few stdlib value types that checkpoints carry in
  their metadata (``pathlib`` paths, ``datetime``, numpy scalars, namespaces) map to inert readers written here.
* Every other global becomes a :class:`PickledObject` type named after it. Creating an instance (protocol 2's
  ``NEWOBJ``, ``copyreg._reconstructor`` of older protocols) records the class path and, on ``BUILD``, the state
  dict, and runs no code of that class. *Calling* such a global (``REDUCE``, the only way a pickle runs code:
  ``os.system``, ``eval``, ``getattr``, ``torch.load``, ...) raises :class:`UnsafePickle` naming it.

Formats: torch's zip archives (``data.pkl`` + ``data/<key>`` storages, ``torch>=1.6``) and the legacy stream
(``_use_new_zipfile_serialization=False``), with fp16, bf16, fp32 or integer storages.
"""

from __future__ import annotations

import datetime
import io
import pickle
import struct
import zipfile
from collections import Counter, OrderedDict
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any, BinaryIO

import torch

from yolorep.foreign.records import PickledObject, UnsafePickle, record_type

__all__ = ["PickledObject", "UnsafePickle", "read_pickled"]

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001


class _Storage:
    """A storage read from the file: a flat tensor of its dtype."""

    def __init__(self, flat: torch.Tensor) -> None:
        self.flat = flat


class _StorageType:
    """What a pickle's ``torch.FloatStorage`` (etc.) global stands for: the dtype of a storage's elements."""

    def __init__(self, dtype: torch.dtype) -> None:
        self.dtype = dtype


class _TensorClass:
    """``torch.Tensor`` / ``torch.nn.Parameter`` named as a tensor type by ``_rebuild_from_type_v2``."""


def _check_ints(values: Any, what: str) -> tuple[int, ...]:
    if not isinstance(values, (tuple, list)) or not all(type(v) is int for v in values):
        raise UnsafePickle(f"tensor {what} must be a tuple of integers, got {values!r}")
    return tuple(values)


def _rebuild_tensor(storage: Any, offset: Any, size: Any, stride: Any, *_ignored: Any) -> torch.Tensor:
    """``torch._utils._rebuild_tensor(_v2)``: a strided view of a storage read from the file (hooks and metadata
    are dropped: a checkpoint's tensors need neither)."""
    if not isinstance(storage, _Storage) or type(offset) is not int:
        raise UnsafePickle("a tensor rebuild received something other than a storage of this file")
    size, stride = _check_ints(size, "size"), _check_ints(stride, "stride")
    try:
        return storage.flat.as_strided(size, stride, offset)
    except RuntimeError as err:  # a view outside its storage: a damaged file
        raise pickle.UnpicklingError(f"a tensor does not fit its storage ({err})") from None


def _rebuild_parameter(data: Any, requires_grad: Any = False, *_ignored: Any) -> torch.Tensor:
    if not isinstance(data, torch.Tensor):
        raise UnsafePickle("a parameter rebuild received something other than a tensor")
    return data


def _rebuild_from_type(function: Any, new_type: Any, args: Any, state: Any = None) -> torch.Tensor:
    """``torch._tensor._rebuild_from_type_v2`` for plain tensors and parameters only."""
    if function not in (_rebuild_tensor, _rebuild_parameter) or new_type is not _TensorClass:
        raise UnsafePickle("a tensor subclass rebuild that is not a plain tensor or parameter")
    return function(*args)


def _reconstructor(cls: Any, base: Any, state: Any = None) -> PickledObject:
    """``copyreg._reconstructor`` (protocols 0 and 1): an instance of a recorded class, built without code."""
    if not (isinstance(cls, type) and issubclass(cls, PickledObject)):
        raise UnsafePickle(f"copyreg._reconstructor of {cls!r}, which is not a recorded class")
    return cls.__new__(cls)


def _namespace(cls: type[PickledObject]) -> Any:
    """``SimpleNamespace``-like classes pickle as ``cls()`` then ``BUILD``: record them, call nothing."""

    def record(*args: Any) -> PickledObject:
        if args:
            raise UnsafePickle(f"refusing to call {cls.class_path} with arguments")
        return cls.__new__(cls)

    return record


def _path(*parts: Any) -> str:
    if not all(isinstance(p, str) for p in parts):
        raise UnsafePickle("a pickled path made of something other than strings")
    return str(PurePosixPath(*parts)) if parts else "."


def _encode(text: Any, encoding: Any = "utf-8") -> bytes:
    """``_codecs.encode``: how protocol 2 writes ``bytes`` (a latin-1 string), for plain strings only."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1", "utf-8", "utf8"):
        raise UnsafePickle("_codecs.encode of something other than a string")
    return text.encode(encoding)


def _device(kind: Any, index: Any = None) -> str:
    """A pickled ``torch.device`` is kept as its name; every tensor here is read to the CPU anyway."""
    if not isinstance(kind, str) or not (index is None or type(index) is int):
        raise UnsafePickle("a pickled torch.device that is not a device name")
    return kind if index is None else f"{kind}:{index}"


class _NumpyDtype(PickledObject):
    """``numpy.dtype('f8', False, True)`` followed by ``BUILD``: the dtype code is all a scalar needs."""

    class_path = "numpy.dtype"

    def __init__(self, *args: Any) -> None:  # called by REDUCE with plain values only, sets nothing else
        if not args or not isinstance(args[0], str):
            raise UnsafePickle("numpy.dtype with an argument that is not a type code")


_NUMPY_FORMATS = {"f8": "d", "f4": "f", "f2": "e", "i8": "q", "i4": "i", "i2": "h", "i1": "b", "u8": "Q", "u4": "I",
                  "u2": "H", "u1": "B", "b1": "?"}  # fmt: skip


def _numpy_scalar(dtype: Any, data: Any = None) -> float | int | bool:
    """``numpy.core.multiarray.scalar``: a number from its dtype code and bytes, as a Python number."""
    code = dtype.args[0] if isinstance(dtype, _NumpyDtype) else None
    fmt = _NUMPY_FORMATS.get(code)
    if fmt is None or not isinstance(data, bytes) or len(data) != struct.calcsize(fmt):
        raise UnsafePickle(f"a numpy scalar of type {code!r} this reader does not decode")
    return struct.unpack("<" + fmt, data)[0]


def _allowed_globals() -> dict[tuple[str, str], Any]:
    """Globals a checkpoint may name that map to something other than an inert record."""
    table: dict[tuple[str, str], Any] = {
        ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
        ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
        ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
        ("torch._tensor", "_rebuild_from_type_v2"): _rebuild_from_type,
        ("torch", "Tensor"): _TensorClass,
        ("torch.nn.parameter", "Parameter"): _TensorClass,
        ("torch", "Size"): torch.Size,
        ("torch", "device"): _device,
        ("_codecs", "encode"): _encode,
        ("collections", "OrderedDict"): OrderedDict,
        ("collections", "Counter"): Counter,
        ("builtins", "set"): set,
        ("builtins", "frozenset"): frozenset,
        ("builtins", "slice"): slice,
        ("builtins", "complex"): complex,
        ("copyreg", "_reconstructor"): _reconstructor,
        ("builtins", "object"): object,  # only ever the base argument of copyreg._reconstructor
        ("pathlib", "PosixPath"): _path,
        ("pathlib", "PurePosixPath"): _path,
        ("pathlib", "WindowsPath"): lambda *parts: str(PureWindowsPath(*map(_path, parts))),
        ("pathlib", "PureWindowsPath"): lambda *parts: str(PureWindowsPath(*map(_path, parts))),
        ("datetime", "datetime"): datetime.datetime,
        ("datetime", "date"): datetime.date,
        ("datetime", "timedelta"): datetime.timedelta,
        ("datetime", "timezone"): datetime.timezone,
        ("numpy", "dtype"): _NumpyDtype,
        ("numpy.core.multiarray", "scalar"): _numpy_scalar,
        ("numpy._core.multiarray", "scalar"): _numpy_scalar,
    }
    for name in ("types.SimpleNamespace", "argparse.Namespace", "ultralytics.utils.IterableSimpleNamespace",
                 "ultralytics.yolo.utils.IterableSimpleNamespace", "addict.addict.Dict"):  # fmt: skip
        module, _, qualname = name.rpartition(".")
        table[(module, qualname)] = _namespace(record_type(name))
    for dtype, storage in torch.storage._dtype_to_storage_type_map().items():
        table[("torch", storage)] = _StorageType(dtype)
    table[("torch", "UntypedStorage")] = _StorageType(torch.uint8)
    for name in dir(torch):  # dtypes named as values (torch.float16): not callable
        if isinstance(getattr(torch, name, None), torch.dtype):
            table[("torch", name)] = getattr(torch, name)
    return table


_ALLOWED = _allowed_globals()


class _SafeUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` that imports nothing (see the module docstring); storages come from ``load_storage``."""

    def __init__(self, file: BinaryIO, load_storage: Any) -> None:
        super().__init__(file)
        self._load_storage = load_storage

    def find_class(self, module: str, name: str) -> Any:
        module = "builtins" if module == "__builtin__" else module  # protocol 2 writes Python 2's name
        allowed = _ALLOWED.get((module, name))
        if allowed is not None:
            return allowed
        if module.startswith("torch") and not name[:1].isupper():
            # torch functions (torch.load, the model-zoo loaders, ...): no checkpoint needs to call one
            raise UnsafePickle(f"refusing {module}.{name}: a torch function outside the tensor rebuilds")
        return record_type(f"{module}.{name}")

    def persistent_load(self, pid: Any) -> _Storage | type[PickledObject]:
        if isinstance(pid, tuple) and len(pid) == 4 and pid[0] == "module":
            # legacy files name each module class with its source code beside it: keep the (recorded) class only
            if isinstance(pid[1], type) and issubclass(pid[1], PickledObject):
                return pid[1]
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise UnsafePickle(f"unknown persistent id {str(pid)[:80]}")
        storage_type, key, _location, numel = pid[1:5]
        if not isinstance(storage_type, _StorageType) or not isinstance(key, str) or type(numel) is not int:
            raise UnsafePickle("a storage reference with a storage type or key this reader does not know")
        view = pid[5] if len(pid) > 5 else None
        return self._load_storage(storage_type.dtype, key, numel, view)


def _flat(data: bytes | bytearray, dtype: torch.dtype, numel: int, where: str) -> torch.Tensor:
    size = numel * torch.empty((), dtype=dtype).element_size()
    if len(data) < size:
        raise pickle.UnpicklingError(f"storage {where} holds {len(data)} bytes, {size} expected (a truncated file)")
    return torch.frombuffer(bytearray(data[:size]), dtype=dtype) if size else torch.empty(0, dtype=dtype)


def _read_zip(path: Path) -> Any:
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        pickles = [n for n in names if n.endswith("data.pkl") and n.count("/") == 1]
        if len(pickles) != 1:
            raise pickle.UnpicklingError("a zip file without the data.pkl of a torch checkpoint")
        root = pickles[0].rpartition("/")[0]
        order = f"{root}/byteorder"
        if order in names and archive.read(order).strip() != b"little":
            raise pickle.UnpicklingError("a big-endian checkpoint; re-save it on a little-endian machine")
        storages: dict[str, _Storage] = {}

        def load_storage(dtype: torch.dtype, key: str, numel: int, view: Any) -> _Storage:
            if key not in storages:
                entry = f"{root}/data/{key}"
                if entry not in names:
                    raise pickle.UnpicklingError(f"storage {key} is missing from the archive")
                storages[key] = _Storage(_flat(archive.read(entry), dtype, numel, key))
            return storages[key]

        return _SafeUnpickler(io.BytesIO(archive.read(pickles[0])), load_storage).load()


def _no_storage(*_args: Any) -> _Storage:
    raise pickle.UnpicklingError("a storage reference where none belongs")


def _read_legacy(path: Path) -> Any:
    """The pre-1.6 stream: magic number, protocol, system info, the object pickle, its storage keys, then each
    storage as an int64 element count followed by its bytes.

    The element sizes are known only from the object pickle, so it is read twice: first with storages on the meta
    device (no bytes, no memory) to learn each storage's dtype and where the storages start, then with the bytes.
    """
    data = path.read_bytes()
    stream = io.BytesIO(data)
    for expected in (_LEGACY_MAGIC, _LEGACY_PROTOCOL, None):
        value = _SafeUnpickler(stream, _no_storage).load()
        if expected is not None and value != expected:
            raise pickle.UnpicklingError("not a torch checkpoint (neither a zip archive nor a legacy torch file)")
    body = stream.tell()
    dtypes: dict[str, torch.dtype] = {}

    def on_meta(dtype: torch.dtype, key: str, numel: int, view: Any) -> _Storage:
        dtypes.setdefault(key, dtype)
        return _view(_Storage(torch.empty(numel, dtype=dtype, device="meta")), view)

    _SafeUnpickler(stream, on_meta).load()
    keys = _SafeUnpickler(stream, _no_storage).load()
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise pickle.UnpicklingError("the storage key list of a legacy file is damaged")
    storages: dict[str, _Storage] = {}
    position = stream.tell()
    for key in keys:
        header = data[position : position + 8]
        if len(header) < 8:
            raise pickle.UnpicklingError(f"storage {key} is missing (a truncated file)")
        (count,) = struct.unpack("<q", header)
        dtype = dtypes.get(key, torch.uint8)
        size = count * torch.empty((), dtype=dtype).element_size()
        storages[key] = _Storage(_flat(data[position + 8 : position + 8 + size], dtype, count, key))
        position += 8 + size

    def load_storage(dtype: torch.dtype, key: str, numel: int, view: Any) -> _Storage:
        if key not in storages:
            raise pickle.UnpicklingError(f"storage {key} is missing from the file")
        return _view(storages[key], view)

    return _SafeUnpickler(io.BytesIO(data[body:]), load_storage).load()


def _view(storage: _Storage, view: Any) -> _Storage:
    """A legacy storage view ``(view_key, offset, size)`` of a root storage, or the root itself."""
    if view is None:
        return storage
    if not (isinstance(view, tuple) and len(view) == 3 and type(view[1]) is int and type(view[2]) is int):
        raise UnsafePickle("a storage view this reader does not know")
    return _Storage(storage.flat[view[1] : view[1] + view[2]])


def read_pickled(path: str | Path) -> Any:
    """Read a torch checkpoint of any origin into plain containers, tensors and :class:`PickledObject` records.

    Raises:
        UnsafePickle: the file asks to call something outside the allow-list (nothing of it was run).
        pickle.UnpicklingError: the file is not a torch checkpoint, or is truncated or damaged.
    """
    path = Path(path)
    try:
        if zipfile.is_zipfile(path):
            return _read_zip(path)
        return _read_legacy(path)
    except UnsafePickle:
        raise
    except (pickle.UnpicklingError, zipfile.BadZipFile, EOFError, ValueError, TypeError, struct.error,
            KeyError, IndexError, AttributeError, MemoryError, OverflowError) as err:  # fmt: skip
        raise pickle.UnpicklingError(f"{type(err).__name__}: {str(err)[:160]}") from None
