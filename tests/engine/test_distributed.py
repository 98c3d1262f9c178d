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
    from yolorep.engine import distributed
    from yolorep.engine.train_build import build_trainer
    from yolorep.options.hyp import load_hyp

    data, out = sys.argv[1], sys.argv[2]
    device = torch.device("cpu")
    assert distributed.setup(device)
    args = dict(model="yolorep-n.yaml", data=data, epochs=1, imgsz=64, batch=4, device="cpu", workers=0,
                project=out, name="ddp", seed=0, optimizer="auto", hyp=load_hyp({hyp!r}), weights=None,
                sync_bn=False, cache=False, patience=0)
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
