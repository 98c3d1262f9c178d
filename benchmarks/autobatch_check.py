"""Does AutoBatch's batch fit where it says it does? On a CUDA machine, from the repository root:

    python3 benchmarks/autobatch_check.py --model yolorep-s.yaml --imgsz 640 [--device 0] [--steps 5]

It runs ``auto_batch`` as ``yolorep train --batch -1`` does (a copy of the model, fp16 autocast, the probe sizes),
then trains ``--steps`` real steps (forward, loss, backward, an AdamW step, with an EMA copy of the weights held) at
the batch it chose, and prints the predicted share of the memory beside the peak measured, and the peak of one
step at twice that batch when it fits (it should not, or only just: AutoBatch aims at 60%).
"""

from __future__ import annotations

import argparse
import copy

import torch

import yolorep
from yolorep.engine.train.autobatch import FRACTION, CudaMemory, auto_batch
from yolorep.loss import DetectionLoss
from yolorep.options.hyp import load_hyp


def _peak_of_steps(model, loss_fn, batch: int, imgsz: int, options: dict, steps: int) -> int | None:
    """Peak bytes of ``steps`` training steps with an AdamW optimizer and an EMA copy, or None when out of memory."""
    device = options["device"]
    ema = copy.deepcopy(model).eval()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    torch.cuda.reset_peak_memory_stats(device)
    try:
        for _ in range(steps):
            images = torch.rand(batch, 3, imgsz, imgsz, device=device)
            xy = torch.rand(batch * options["max_objects"], 2, device=device) * imgsz * 0.8
            owner = torch.arange(batch, device=device).repeat_interleave(options["max_objects"]).float()
            targets = torch.cat([owner[:, None], torch.zeros_like(owner)[:, None], xy, xy + imgsz * 0.1], 1)
            with torch.autocast("cuda", dtype=torch.float16):
                loss, _ = loss_fn(model(images), model.stride, targets)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device)
    except torch.OutOfMemoryError:
        return None
    finally:
        del ema, optimizer
        torch.cuda.empty_cache()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="yolorep-s.yaml")
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--device", default="0")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--max-objects", type=int, default=20)
    args = parser.parse_args()
    device = torch.device(f"cuda:{args.device}" if args.device.isdigit() else args.device)
    model = yolorep.build_model(args.model, nc=80).to(device).train()
    loss_fn = DetectionLoss.from_hyp(model.nc, model.reg_max, load_hyp())
    options = {"device": device, "amp_dtype": torch.float16, "max_objects": args.max_objects, "n_images": 10**6}
    batch = auto_batch(model, loss_fn, args.imgsz, options)
    available, total = CudaMemory(device).available()
    print(f"{torch.cuda.get_device_name(device)}: {total / 2**30:.1f} GiB, {available / 2**30:.1f} GiB available")
    print(f"AutoBatch: batch {batch} for {FRACTION:.0%} of the available memory")
    for size in (batch, 2 * batch):
        peak = _peak_of_steps(model, loss_fn, size, args.imgsz, options, args.steps)
        shown = "out of memory" if peak is None else f"peak {peak / 2**30:.2f} GiB = {peak / available:.0%} available"
        print(f"batch {size}: {args.steps} AdamW steps with an EMA copy: {shown}")


if __name__ == "__main__":
    main()
