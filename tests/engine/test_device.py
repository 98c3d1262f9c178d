import ctypes
import ctypes.util
import os
import platform

import pytest
import torch

from yolorep.engine.device import MAX_AUTO_WORKERS, keep_freed_memory, loader_workers, select_device, torch_threads
from yolorep.errors import ArgumentError, YolorepError


@pytest.fixture
def two_gpus(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)


def test_cpu_and_default_without_a_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert select_device(None) == select_device("") == select_device(" CPU ") == torch.device("cpu")


@pytest.mark.parametrize(("spec", "expected"), [(None, "cuda:0"), ("cuda", "cuda:0"), ("1", "cuda:1"),
                                                ("cuda:1", "cuda:1"), (0, "cuda:0"), ("0,1", "cuda:0")])  # fmt: skip
def test_gpu_specs(two_gpus, spec, expected):
    assert select_device(spec) == torch.device(expected)


def _torchrun(monkeypatch, local_rank: int, local_processes: int, nodes: int = 1) -> None:
    """The environment torchrun gives one of its processes."""
    monkeypatch.setenv("LOCAL_RANK", str(local_rank))
    monkeypatch.setenv("LOCAL_WORLD_SIZE", str(local_processes))
    monkeypatch.setenv("WORLD_SIZE", str(local_processes * nodes))


@pytest.mark.parametrize("spec", [None, "", "auto", "cuda", "CUDA"])
def test_default_and_cuda_mean_this_process_gpu_under_torchrun(two_gpus, monkeypatch, spec):
    _torchrun(monkeypatch, local_rank=1, local_processes=2)
    assert select_device(spec) == torch.device("cuda:1")
    _torchrun(monkeypatch, local_rank=0, local_processes=2)
    assert select_device(spec) == torch.device("cuda:0")


def test_device_list_gives_each_process_its_own_gpu_under_torchrun(two_gpus, monkeypatch):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    gpus = [None] * 3
    for rank in range(3):
        _torchrun(monkeypatch, local_rank=rank, local_processes=3)
        gpus[rank] = select_device("3,1,2")
    assert gpus == [torch.device("cuda:3"), torch.device("cuda:1"), torch.device("cuda:2")]


def test_one_gpu_per_node_under_multi_node_torchrun(two_gpus, monkeypatch):
    _torchrun(monkeypatch, local_rank=0, local_processes=1, nodes=4)
    assert select_device("1") == select_device("cuda:1") == torch.device("cuda:1")


@pytest.mark.parametrize("spec", ["0", "cuda:1", "0,0", "1,1"])
def test_processes_sharing_a_gpu_are_refused_under_torchrun(two_gpus, monkeypatch, spec):
    _torchrun(monkeypatch, local_rank=0, local_processes=2)
    with pytest.raises(YolorepError, match=f"--device {spec}: torchrun started 2 processes .* list 2 distinct GPUs"):
        select_device(spec)


def test_more_processes_than_gpus_are_refused_under_torchrun(two_gpus, monkeypatch):
    _torchrun(monkeypatch, local_rank=0, local_processes=4)
    with pytest.raises(YolorepError, match="torchrun started 4 processes on this machine, which has 2 GPU.*nproc_per"):
        select_device(None)
    with pytest.raises(YolorepError, match="--device 0,1: torchrun started 4 processes"):
        select_device("0,1")


def test_cpu_under_torchrun_stays_cpu(two_gpus, monkeypatch):
    _torchrun(monkeypatch, local_rank=1, local_processes=2)
    assert select_device("cpu") == torch.device("cpu")


@pytest.mark.parametrize("spec", ["foo", "gpu", "0,x", "cuda:a"])
def test_unknown_device_is_named(spec):
    with pytest.raises(ArgumentError, match=f"--device {spec}: not a device; use cpu, cuda"):
        select_device(spec)


def test_gpu_asked_where_there_is_none(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(YolorepError, match="--device 0: CUDA is not available on this machine; use --device cpu"):
        select_device("0")


def test_gpu_index_out_of_range(two_gpus):
    with pytest.raises(YolorepError, match="--device 2: invalid GPU index; this machine has 2 GPU"):
        select_device("2")


@pytest.fixture
def sixteen_cores(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(16)), raising=False)


def test_workers_asked_for_are_used(sixteen_cores):
    assert loader_workers(0, torch.device("cpu")) == 0 and loader_workers(3, torch.device("cuda:0")) == 3


@pytest.mark.parametrize(("threads", "expected"), [(16, 0), (12, 4), (2, MAX_AUTO_WORKERS)])
def test_cpu_workers_get_only_the_cores_compute_threads_leave(sixteen_cores, monkeypatch, threads, expected):
    monkeypatch.setattr(torch, "get_num_threads", lambda: threads)
    assert loader_workers(None, torch.device("cpu")) == expected


@pytest.mark.parametrize(("ranks", "expected"), [("1", MAX_AUTO_WORKERS), ("4", 4), ("32", 1)])
def test_gpu_workers_share_the_cores_between_local_ranks(sixteen_cores, monkeypatch, ranks, expected):
    monkeypatch.setenv("LOCAL_WORLD_SIZE", ranks)
    assert loader_workers(None, torch.device("cuda:0")) == expected


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                     "fsmblks", "uordblks", "fordblks", "keepcost")]  # fmt: skip


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt tuning applies to glibc only")
def test_freed_training_buffers_stay_on_the_heap_for_reuse():
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    if not hasattr(libc, "mallinfo2"):
        pytest.skip("glibc without mallinfo2 (before 2.33)")
    libc.mallinfo2.restype = _MallInfo2
    assert keep_freed_memory()
    before = libc.mallinfo2()
    buffer = torch.empty(64 << 20, dtype=torch.uint8)  # twice glibc's largest mmap threshold
    during = libc.mallinfo2()
    del buffer
    after = libc.mallinfo2()
    assert during.hblkhd == before.hblkhd  # not a fresh mapping ...
    assert during.uordblks - before.uordblks >= 64 << 20  # ... but heap
    assert after.arena == during.arena  # and kept after it is freed, for the next step


@pytest.mark.skipif(not os.path.exists("/proc/meminfo"), reason="MemAvailable is Linux's")
def test_available_memory_is_capped_by_a_container_limit(tmp_path, monkeypatch):
    from yolorep.engine import device

    system = device.available_memory()
    assert 0 < system <= os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    limit, usage, unlimited = tmp_path / "memory.max", tmp_path / "memory.current", tmp_path / "v1_limit"
    limit.write_text("1000000\n")
    usage.write_text("400000\n")
    unlimited.write_text("max\n")
    monkeypatch.setattr(device, "_CGROUP_MEMORY_FILES", [(str(unlimited), str(usage))])
    assert device.available_memory() == pytest.approx(system, rel=0.05)  # "max": no limit
    monkeypatch.setattr(device, "_CGROUP_MEMORY_FILES", [(str(limit), str(usage)), (str(tmp_path / "gone"), "")])
    assert device.available_memory() == 600000


AS_LIMIT_PROBE = """
import resource
from yolorep.engine.device import available_memory
room = available_memory()
used = next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith("VmSize:"))
print(room, resource.getrlimit(resource.RLIMIT_AS)[0] - used)
"""


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads /proc (Linux)")
def test_free_memory_counts_the_address_space_limit(tmp_path):
    """Issue 23, case 11: under ``ulimit -v`` --cache auto read MemAvailable, cached, and failed inside OpenCV."""
    import resource
    import subprocess
    import sys

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (12 << 30, resource.RLIM_INFINITY))

    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", AS_LIMIT_PROBE], preexec_fn=limit, env=env, capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    room, left = (int(v) for v in done.stdout.split())
    assert 0 <= room <= left + (64 << 20)  # the probe's own allocations after available_memory() ran


def test_auto_cache_declines_what_the_address_space_limit_cannot_hold(monkeypatch):
    from yolorep.engine import device
    from yolorep.engine.train.build import cache_images

    monkeypatch.setattr(device, "_rlimit_room", lambda: [100 << 20])  # 100 MB left under the limit

    class Dataset:
        cached = False

        def decoded_bytes(self) -> int:
            return 50 << 20  # fits the machine, not a quarter of what the limit leaves

        def cache_images(self) -> None:
            self.cached = True

    dataset = Dataset()
    assert not cache_images("auto", [dataset]) and not dataset.cached


def test_torch_threads_sets_and_restores_the_count_even_on_an_error():
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with torch_threads(1):
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
        with pytest.raises(ValueError), torch_threads(1):
            raise ValueError
        assert torch.get_num_threads() == 2
        with torch_threads(None):
            assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(previous)
