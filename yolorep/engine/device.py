"""Device selection from the strings users pass to ``--device``, and what training on a device needs set up."""

from __future__ import annotations

import contextlib
import ctypes
import os
from collections.abc import Iterator

import torch

from yolorep.errors import ArgumentError, YolorepError

__all__ = [
    "amp_dtype",
    "available_memory",
    "cudnn_autotune",
    "keep_freed_memory",
    "loader_workers",
    "select_device",
]

MAX_AUTO_WORKERS = 8


def select_device(spec: str | int | None = None) -> torch.device:
    """``None``/``""`` -> first CUDA GPU if there is one else CPU; ``"cpu"``; ``"cuda"``, ``"0"``, ``"cuda:1"``.

    Under torchrun (``WORLD_SIZE`` > 1) every process must own its GPU, or NCCL stops at the first collective
    ("Duplicate GPU detected"): the default and ``cuda`` mean ``cuda:LOCAL_RANK``, and a list such as ``"0,1"``
    gives process ``LOCAL_RANK`` its ``LOCAL_RANK``-th entry, so it needs one distinct GPU per process on the
    machine (``LOCAL_WORLD_SIZE``).

    Raises:
        ArgumentError: ``spec`` is not a device.
        YolorepError: the device is not on this machine, or torchrun's processes would share a GPU.
    """
    text = "" if spec is None else str(spec).strip().lower()
    if text in ("", "auto") and not torch.cuda.is_available():
        return torch.device("cpu")
    if text == "cpu":
        return torch.device("cpu")
    if text == "mps":
        if not torch.backends.mps.is_available():
            raise YolorepError(f"--device {spec}: Apple MPS is not available on this machine; use --device cpu")
        return torch.device("mps")
    text = "" if text == "auto" else text.removeprefix("cuda:").removeprefix("cuda")
    parts = [part.strip() for part in text.split(",")] if text else []
    if not all(part.isdigit() for part in parts):
        raise ArgumentError(
            f"--device {spec}: not a device; use cpu, cuda, a GPU index such as 0, or a list such as 0,1"
        )
    if not torch.cuda.is_available():
        raise YolorepError(f"--device {spec}: CUDA is not available on this machine; use --device cpu")
    count = torch.cuda.device_count()
    ids = [int(part) for part in parts]
    if any(i >= count for i in ids):
        raise YolorepError(f"--device {spec}: invalid GPU index; this machine has {count} GPU(s), 0-based")
    return torch.device(f"cuda:{_process_gpu(spec, ids, count)}")


def _process_gpu(spec: str | int | None, ids: list[int], count: int) -> int:
    """This process's GPU among ``ids`` (empty: any of the ``count`` visible), one per torchrun process."""
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return ids[0] if ids else 0
    local_processes = int(os.environ.get("LOCAL_WORLD_SIZE", str(local_rank + 1)))
    if not ids:  # the default or "cuda": process i on GPU i
        if local_processes > count:
            raise YolorepError(
                f"--device {spec or 'auto'}: torchrun started {local_processes} processes on this machine, which "
                f"has {count} GPU(s); use --nproc_per_node {count} or fewer (one GPU per process)"
            )
        return local_rank
    if len(set(ids)) < len(ids) or len(ids) < local_processes:
        raise YolorepError(
            f"--device {spec}: torchrun started {local_processes} processes on this machine and each needs its own "
            f"GPU; list {local_processes} distinct GPUs (e.g. --device {','.join(map(str, range(local_processes)))}) "
            "or use --device cuda"
        )
    return ids[local_rank]


def amp_dtype(device: torch.device) -> torch.dtype | None:
    """Mixed precision for training: fp16 (with loss scaling) on CUDA; bf16 on CPUs with native bf16 units
    (AVX512-BF16 / AMX), where it trains about 1.7x faster than fp32; otherwise none."""
    if device.type == "cuda":
        return torch.float16
    if device.type == "cpu" and _cpu_has_native_bf16():
        return torch.bfloat16
    return None


def _cpu_has_native_bf16() -> bool:
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported()) and torch.cpu._is_avx512_bf16_supported()
    except (AttributeError, RuntimeError):  # private probes: absent in some builds
        return False


@contextlib.contextmanager
def cudnn_autotune(enabled: bool = True) -> Iterator[None]:
    """``torch.backends.cudnn.benchmark`` on inside the block when ``enabled``, restored after.

    cuDNN then times its convolution algorithms for every new input shape once and keeps the fastest, which pays
    when shapes repeat (training at a fixed image size, a benchmark) and costs a tuning run for every new shape
    (rectangular batches). No effect on the CPU.
    """
    previous = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = previous or enabled
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = previous


@contextlib.contextmanager
def torch_threads(count: int | None) -> Iterator[None]:
    """torch's CPU thread count is ``count`` inside the block (unchanged when None), restored after.

    Around the pre- and post-processing of a runtime with threads of its own (OpenVINO, ONNX Runtime, NCNN,
    LiteRT): torch's OpenMP threads keep spinning for a while after each parallel operation and take the cores
    from that runtime's threads. With one torch thread there, yolorep-n's OpenVINO call at 640 took 7.5 instead
    of 9.2 ms per frame in predict on 2 cores, for 0.6 ms more pre- and post-processing.
    """
    previous = torch.get_num_threads()
    if count is not None and count != previous:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        if torch.get_num_threads() != previous:
            torch.set_num_threads(previous)


def loader_workers(requested: int | None, device: torch.device) -> int:
    """Data loader worker processes: ``requested`` when given, else what leaves the model's compute alone.

    On the CPU the model's intra-op threads already use ``torch.get_num_threads()`` cores; workers get only the
    cores left over (none on a 2-core machine, where two workers made an epoch 1.25x slower than loading in the
    main process). On a GPU the cores are free for loading: up to 8 per process.
    """
    if requested is not None:
        return requested
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    if device.type == "cpu":
        return max(0, min(MAX_AUTO_WORKERS, cores - torch.get_num_threads()))
    local_ranks = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    return max(1, min(MAX_AUTO_WORKERS, cores // max(local_ranks, 1)))


def available_memory() -> int | None:
    """Bytes this process can still allocate without swapping: the system's MemAvailable, or less where a
    container's memory limit (cgroup v2 or v1) or the process's address-space limit leaves less; None where none
    can be read."""
    candidates = []
    try:
        with open("/proc/meminfo") as f:
            fields = dict(line.split(":", 1) for line in f if ":" in line)
        candidates.append(int(fields["MemAvailable"].split()[0]) * 1024)
    except (OSError, KeyError, ValueError):
        pass
    for limit_file, usage_file in _CGROUP_MEMORY_FILES:
        try:
            with open(limit_file) as f:
                limit = f.read().strip()
            with open(usage_file) as f:
                usage = int(f.read().strip())
        except (OSError, ValueError):
            continue
        if limit.isdigit():  # "max" (v2) means no limit; v1 writes a huge number instead, which min() ignores
            candidates.append(max(int(limit) - usage, 0))
    candidates += _rlimit_room()
    return min(candidates) if candidates else None


def _rlimit_room() -> list[int]:
    """Bytes left under this process's address-space and data limits (``ulimit -v``, ``ulimit -d``), if any: past
    them an allocation fails (inside OpenCV or numpy) whatever memory the machine has free."""
    try:
        import resource
    except ImportError:  # Windows
        return []
    room = []
    for limit, status_key in (("RLIMIT_AS", "VmSize"), ("RLIMIT_DATA", "VmData")):
        soft = resource.getrlimit(getattr(resource, limit))[0]
        if soft == resource.RLIM_INFINITY:
            continue
        try:
            with open("/proc/self/status") as f:
                used = next(int(line.split()[1]) * 1024 for line in f if line.startswith(f"{status_key}:"))
        except (OSError, StopIteration, ValueError, IndexError):
            used = 0  # not Linux: the limit alone bounds what is left
        room.append(max(soft - used, 0))
    return room


_CGROUP_MEMORY_FILES = (
    ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
    ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"),
)
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4  # mallopt parameters (glibc malloc.h)
_FREED_MEMORY_KEPT: bool | None = None


def keep_freed_memory() -> bool:
    """Make glibc keep freed memory for reuse instead of returning it to the system; True if it applied.

    CPU training allocates and frees the same large activation buffers every step. glibc serves blocks over its
    mmap threshold (128 KB, adapting up to 32 MB) with fresh mappings, so every step page-faults them in again;
    kept on the heap they are reused. yolorep-n's forward and backward (batch 16, 320 px, 2 threads) took
    1.25 s instead of 1.54 s, an epoch 3-9% less. The process keeps its peak memory, which training reaches every step
    anyway. Not glibc (macOS, Windows, musl): nothing changes.
    """
    global _FREED_MEMORY_KEPT
    if _FREED_MEMORY_KEPT is not None:  # once per process
        return _FREED_MEMORY_KEPT
    try:
        # the C library the process already runs on; ctypes.util.find_library would start ldconfig in a subprocess
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
        libc.gnu_get_libc_version  # noqa: B018 - glibc only: other C libraries give mallopt other parameters
    except (OSError, AttributeError, TypeError):
        _FREED_MEMORY_KEPT = False
        return False
    _FREED_MEMORY_KEPT = bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))
    return _FREED_MEMORY_KEPT
