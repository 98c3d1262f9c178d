import copy
import csv
import json
import logging
import math
import re

import pytest
import torch

import yolorep
from yolorep.benchmark import benchmark
from yolorep.benchmark.paths import RunOptions
from yolorep.benchmark.sweep import sweep_grid
from yolorep.benchmark.train_step import PHASES, benchmark_train, synthetic_batch
from yolorep.cli import main
from yolorep.config import resolve_model_path
from yolorep.engine.deploy import tolerance as benchmark_paths
from yolorep.engine.timing import time_interleaved
from yolorep.errors import YolorepError

CPU = torch.device("cpu")
FAST = {"imgsz": 64, "batch": 1, "iters": 4, "warmup": 1, "device": "cpu"}
JSON_KEYS = {
    "unfused_ms",
    "fused_ms",
    "speedup",
    "max_abs_diff",
    "params",
    "gflops",
    "fused_params",
    "fused_gflops",
    "images_per_s_unfused",
    "images_per_s_fused",
    "device",
    "torch",
    "imgsz",
    "batch",
    "dtype",
    "date",
    "flags",
}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tiny_cfg(tmp_path_factory):
    """yolorep-n with 3 classes, as a scale-suffixed YAML path like the ones users pass."""
    folder = tmp_path_factory.mktemp("cfg")
    text, count = re.subn(r"(?m)^nc: *\d+", "nc: 3", resolve_model_path("yolorep.yaml")[0].read_text())
    assert count == 1
    (folder / "yolorep.yaml").write_text(text)
    return str(folder / "yolorep-n.yaml")


def test_table_and_json(tiny_cfg, tmp_path, caplog):
    path = tmp_path / "bench.json"
    with caplog.at_level(logging.INFO):
        result = benchmark(model=tiny_cfg, json=str(path), **FAST)
    written = json.loads(path.read_text())
    assert JSON_KEYS <= set(written)
    assert written["model"] == "yolorep-n" and written["nc"] == 3 and written["dtype"] == "fp32"
    assert written["unfused_ms"] > 0 and written["fused_ms"] > 0 and written["speedup"] > 0
    assert math.isclose(written["speedup"], written["unfused_ms"] / written["fused_ms"])
    assert written["images_per_s_fused"] == pytest.approx(1e3 / written["fused_ms"])
    # randomized BN makes the check non-trivial: not exactly zero, but fp32-small (boxes in 64 px)
    assert 0 < written["max_abs_diff"] < 1e-3
    assert written["fused_params"] < written["params"] and 0 < written["fused_gflops"] < written["gflops"]
    assert written["bn_randomized"] and written["iters"] >= 4 and all(c["ok"] for c in written["checks"])
    assert written["flags"] == {k: False for k in ("half", "bf16", "channels_last", "compile", "cuda_graph")}
    assert result["fused_ms"] == written["fused_ms"]
    table = caplog.text
    for text in ("unfused", "fused", "speed-up", "BatchNorm statistics randomized", "torch ", "images/s"):
        assert text in table


@pytest.mark.parametrize("flags", [{"channels_last": True}, {"bf16": True}, {"bf16": True, "channels_last": True}])
def test_fast_paths_match_fused_fp32(tiny_cfg, flags):
    result = benchmark(model=tiny_cfg, **flags, **FAST)
    names = [c["name"] for c in result["checks"]]
    assert names[0] == "unfused vs fused, fp32" and len(names) == 3  # fuse check, then fused and unfused path
    assert all(c["ok"] for c in result["checks"])
    assert all(c["box_px"] > 0 for c in result["checks"][1:])  # the paths really ran differently
    if flags.get("bf16"):
        assert result["dtype"] == "bf16" and result["precision_mode"] in ("weights", "autocast")
        assert set(result["precision_probe_ms"]) == {"weights", "autocast"}
        assert result["checks"][1]["box_tol_px"] == pytest.approx(3e-2 * 64)
    else:
        assert result["checks"][1]["box_tol_px"] == pytest.approx(1e-4 * 64)
    assert result["speedup"] > 0


def test_path_out_of_tolerance_fails_loudly(tiny_cfg, monkeypatch):
    monkeypatch.setitem(benchmark_paths.TOLERANCES, "bf16", (0.0, 0.0))
    with pytest.raises(YolorepError, match="disagree with the fused fp32 model.*bf16"):
        benchmark(model=tiny_cfg, bf16=True, **FAST)


def test_cuda_fp32_has_its_own_tolerance_between_the_cpu_and_tf32():
    """cuDNN's fp32 algorithms (Winograd, FFT) round more than the CPU's direct sums; TF32 more still."""
    cuda = torch.device("cuda", 0)
    cpu_fp32, cuda_fp32, tf32 = (benchmark_paths.tolerance(p, d) for p, d in (("fp32", CPU), ("fp32", cuda),
                                                                                ("tf32", cuda)))  # fmt: skip
    assert cpu_fp32 == benchmark_paths.TOLERANCES["fp32"] and cuda_fp32 == benchmark_paths.TOLERANCES["fp32_cuda"]
    assert all(a < b < c for a, b, c in zip(cpu_fp32, cuda_fp32, tf32))
    assert benchmark_paths.tolerance("fp16", cuda) == benchmark_paths.tolerance("fp16", CPU)


def test_exact_fp32_turns_tf32_off_for_convolutions_and_matrix_products(monkeypatch):
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", True)
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", True)  # torch.set_float32_matmul_precision("high")
    with benchmark_paths.exact_fp32():
        assert not torch.backends.cudnn.allow_tf32 and not torch.backends.cuda.matmul.allow_tf32
        assert not benchmark_paths.tf32_convs_enabled()
    assert torch.backends.cudnn.allow_tf32 and torch.backends.cuda.matmul.allow_tf32


@pytest.mark.slow
def test_compile_matches_fused_fp32(tiny_cfg):
    result = benchmark(model=tiny_cfg, compile=True, **FAST)
    assert "compile" in result["path"] and all(c["ok"] for c in result["checks"])


def test_sweep_writes_csv_and_plot(tiny_cfg, tmp_path):
    result = benchmark(model=tiny_cfg, sweep=True, out=str(tmp_path / "sweep"), **{**FAST, "iters": 2})
    assert sweep_grid(1, 64, CPU, 32) == ([1, 2, 4], [32, 64])
    with open(tmp_path / "sweep" / "sweep.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(int(r["imgsz"]), int(r["batch"])) for r in rows] == [(s, b) for s in (32, 64) for b in (1, 2, 4)]
    assert all(float(r["fused_ms"]) > 0 and float(r["speedup"]) > 0 for r in rows)
    png = (tmp_path / "sweep" / "sweep.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(result["rows"]) == 6


def test_sweep_grid_defaults():
    assert sweep_grid(1, 640, torch.device("cuda"), 32) == ([1, 8, 32], [320, 640])
    assert sweep_grid(2, 640, CPU, 32) == ([2, 4, 8], [320, 640])
    assert sweep_grid(1, 32, CPU, 32) == ([1, 2, 4], [32])


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--half"], "--half: fp16 needs a CUDA device.*use --bf16"),
        (["--cuda-graph"], "--cuda-graph: CUDA graphs need a CUDA device"),
        (["--bf16", "--half"], "choose one"),
        (["--imgsz", "100"], "--imgsz 100: must be a positive multiple of the model stride 32; use 96 or 128"),
        (["--train", "--sweep"], "--sweep and --train"),
        (["--batch", "0"], "--batch 0: must be an integer of at least 1"),
    ],
)
def test_bad_flags_give_clear_errors(tiny_cfg, caplog, argv, message):
    with caplog.at_level(logging.ERROR):
        assert main(["benchmark", "--model", tiny_cfg, "--device", "cpu", *argv]) == 2
    # the CLI turns YolorepError into one line and exit status 2, before any model is built or timed
    assert any(re.search(message, r.getMessage()) for r in caplog.records), caplog.text


def test_weights_from_checkpoint(tmp_path):
    model = yolorep.build_model("yolorep-n.yaml", nc=3)
    unfused = yolorep.save(model, tmp_path / "last.pt")
    result = benchmark(weights=str(unfused), **FAST)
    assert result["source"] == str(unfused) and not result["bn_randomized"] and result["nc"] == 3
    fused = yolorep.save(model.fuse(), tmp_path / "fused.pt")
    with pytest.raises(YolorepError, match="holds a fused model.*last.pt"):
        benchmark(weights=str(fused), **FAST)


def test_interleaving_alternates_blocks():
    calls = []
    times = time_interleaved([lambda: calls.append("a"), lambda: calls.append("b")], iters=4, rounds=2, device=CPU)
    assert calls == ["a", "a", "b", "b", "b", "b", "a", "a"]
    assert [len(t) for t in times] == [4, 4] and all(t >= 0 for t in times[0] + times[1])


def test_timers_keep_their_old_import_path():
    from yolorep.benchmark import timing as old_path

    assert old_path.time_interleaved is time_interleaved


def test_synthetic_batch_matches_loss_format():
    images, targets = synthetic_batch(batch=3, imgsz=64, nc=5, boxes_per_image=4)
    assert images.shape == (3, 3, 64, 64) and targets.shape == (12, 6)
    assert targets[:, 0].tolist() == [i for i in range(3) for _ in range(4)]
    assert ((targets[:, 1] >= 0) & (targets[:, 1] < 5)).all()
    x1, y1, x2, y2 = targets[:, 2:].unbind(1)
    assert ((x1 >= 0) & (y1 >= 0) & (x2 <= 64) & (y2 <= 64) & (x2 - x1 >= 3) & (y2 - y1 >= 3)).all()


def _stand_in_loss(model):
    """Same call contract as DetectionLoss: (train-mode maps, targets [M, 6]) -> (scaled total, items [3])."""

    def loss(preds, targets):
        assert model.training and targets.shape[1] == 6
        total = sum(p.float().pow(2).mean() for p in preds) * preds[0].shape[0]
        return total, torch.stack([total.detach()] * 3)

    return loss


def test_train_step_timing(tiny_cfg):
    model = yolorep.build_model(tiny_cfg)
    before = copy.deepcopy(model.state_dict())
    result = benchmark_train(model, RunOptions(CPU), batch=2, imgsz=64, iters=2, warmup=1, make_loss=_stand_in_loss)
    assert result["train_images_per_s"] > 0 and result["train_step_ms"] > 0 and result["iters"] == 2
    assert all(result[f"{phase}_ms"] > 0 for phase in PHASES) and math.isfinite(result["loss"])
    assert result["amp"] is None  # fp32 on the CPU unless --bf16
    changed = [k for k, v in model.state_dict().items() if v.is_floating_point() and not torch.equal(v, before[k])]
    assert changed  # the optimizer really stepped


def test_train_benchmark_with_detection_loss(tiny_cfg, tmp_path):
    path = tmp_path / "train.json"
    result = benchmark(model=tiny_cfg, train=True, json=str(path), **{**FAST, "batch": 2, "iters": 2})
    assert result["train_images_per_s"] > 0 and math.isfinite(result["loss"])
    assert json.loads(path.read_text())["train_step_ms"] == result["train_step_ms"]
