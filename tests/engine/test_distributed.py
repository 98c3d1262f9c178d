"""Two CPU processes with the gloo backend train a few steps with DDP and end with identical weights."""

import os
import subprocess
import sys
import textwrap

import torch
from helpers import TINY_HYP

import yolorep

SCRIPT = textwrap.dedent(
    """
    import sys, torch
    from yolorep.engine.train import distributed
    from yolorep.engine.train.build import build_trainer
    from yolorep.options.hyp import load_hyp

    data, out = sys.argv[1], sys.argv[2]
    device = torch.device("cpu")
    assert distributed.setup(device)
    args = dict(model="yolorep-n.yaml", data=data, epochs=1, imgsz=64, batch=4, device="cpu", workers=0,
                project=out, name="ddp", seed=0, optimizer="auto", hyp=load_hyp({hyp!r}), weights=None,
                sync_bn=False, cache=False, patience=0, plots=False)
    trainer = build_trainer(args, None, None, device, True)
    trainer.fit()
    torch.save(dict(trainer.raw_model.named_parameters()), f"{{out}}/rank{{distributed.rank()}}.pt")
    distributed.cleanup()
    """
)


def test_two_ranks_hold_identical_weights(tiny_shapes_yaml, tmp_path):
    script = tmp_path / "ddp_train.py"
    script.write_text(SCRIPT.format(hyp=dict(TINY_HYP)))
    env = dict(os.environ, OMP_NUM_THREADS="1")
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517",
               str(script), str(tiny_shapes_yaml), str(tmp_path)]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    rank0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    rank1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    saved = torch.load(tmp_path / "ddp" / "weights" / "last.pt", weights_only=True)["train_state"]["model"]
    # Parameters are what DDP keeps in sync (gradients are all-reduced). BatchNorm running statistics are per rank
    # without SyncBatchNorm (rank 0's are saved), as in any DDP training.
    assert rank0.keys() == rank1.keys() and set(rank0) <= set(saved)
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), key
        assert torch.equal(rank0[key], saved[key]), key
    torch.manual_seed(0)  # build_trainer seeds 0 before building: the same initial weights
    fresh = yolorep.build_model("yolorep-n.yaml", nc=6).state_dict()
    moved = [k for k, v in rank0.items() if v.is_floating_point() and not torch.equal(v, fresh[k])]
    assert len(moved) > len(rank0) // 2


def test_ranks_wait_for_rank_zero_longer_than_the_backend_default(monkeypatch):
    """Rank 0 validates while the others wait in a broadcast: NCCL's 10-minute default would abort the job."""
    from datetime import timedelta

    from yolorep.engine.train import distributed

    joined = {}
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setattr(distributed.dist, "is_initialized", lambda: False)
    monkeypatch.setattr(distributed.dist, "init_process_group", lambda **kwargs: joined.update(kwargs))
    assert distributed.setup(torch.device("cpu"))
    assert joined == {"backend": "gloo", "timeout": distributed.COLLECTIVE_TIMEOUT}
    assert distributed.COLLECTIVE_TIMEOUT >= timedelta(hours=1)


def _accumulate_two_steps(rank: int, port: int, out: str) -> None:
    """One rank: a step under gradient_sync(sync=False), then one with sync; saves the gradients after each."""
    import torch.distributed as dist

    from yolorep.engine.train import distributed

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    torch.manual_seed(0)
    model = torch.nn.parallel.DistributedDataParallel(torch.nn.Linear(3, 2))
    grads = []
    for sync in (False, True):
        x = torch.full((4, 3), float(rank + 1 + 10 * sync))  # each rank and step sees other data
        with distributed.gradient_sync(model, sync):
            loss = model(x).square().sum()
        loss.backward()
        grads.append(model.module.weight.grad.clone())
    torch.save(grads, f"{out}/rank{rank}.pt")
    dist.destroy_process_group()


def _local_gradient(rank: int, sync: bool) -> torch.Tensor:
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    model(torch.full((4, 3), float(rank + 1 + 10 * sync))).square().sum().backward()
    return model.weight.grad


def test_accumulated_steps_all_reduce_only_when_the_weights_update(tmp_path):
    """DDP's no_sync under gradient accumulation: the first step's gradients stay local to each rank, the second
    step all-reduces the sum of both steps' (the same result as syncing every step, one all-reduce fewer)."""
    torch.multiprocessing.spawn(_accumulate_two_steps, args=(29518, str(tmp_path)), nprocs=2)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    for rank, (after_first, _) in enumerate(ranks):
        torch.testing.assert_close(after_first, _local_gradient(rank, sync=False))  # not averaged across ranks
    averaged = sum(_local_gradient(r, False) + _local_gradient(r, True) for r in range(2)) / 2
    torch.testing.assert_close(ranks[0][1], averaged)
    assert torch.equal(ranks[0][1], ranks[1][1])
