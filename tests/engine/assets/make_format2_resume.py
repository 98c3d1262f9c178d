"""How ``format2_resume.pt`` was made: with the trainer before issue 24 (commit f8fdbdc), so that a test can check
that a ``last.pt`` written by that code still resumes exactly.

    mkdir /tmp/base && git archive f8fdbdc | tar -x -C /tmp/base
    PYTHONPATH=/tmp/base python tests/engine/assets/make_format2_resume.py tests/engine/assets/format2_resume.pt

A tiny model (a few thousand parameters, so the file stays small) is trained on the tests' synthetic shapes set
for 2 epochs twice: once stopped after its first epoch (its ``last.pt`` is kept whole), once uninterrupted (its
final weights are kept). The file holds ``{"last": <last.pt after epoch 0>, "final": {"ema": ..., "model": ...},
"history": <results rows>}``.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import torch

MODEL = {
    "nc": 6,
    "backbone": [
        [-1, 1, "RepVGGBlock", [8, 3, 2]],
        [-1, 1, "RepVGGBlock", [8, 3, 2]],
        [-1, 1, "RepVGGBlock", [8, 3, 2]],
        [-1, 1, "RepVGGBlock", [8, 3, 2]],
    ],
    "head": [[[2, 3], 1, "Detect", ["nc"]]],
}
# the tests' TINY_HYP, with fp32 everywhere (bf16 autocast on some CPUs would make the result machine-dependent)
HYP = {"warmup_epochs": 0.0, "close_mosaic": 0, "mosaic": 0.0, "scale": 0.2, "translate": 0.05, "amp": False}
RUN = dict(model=MODEL, epochs=2, imgsz=64, batch=4, device="cpu", workers=0, optimizer="auto", cache=False)
# the tests' tiny_shapes_yaml fixture
DATA = (
    "path: shapes\ntrain: images/train\nval: images/val\ntrain_json: annotations/instances_train.json\n"
    "val_json: annotations/instances_val.json\nsynthetic: {n_train: 12, n_val: 6, imgsz: 96, seed: 5, max_objects: 3}\n"
)


class Stop(BaseException):
    pass


def main(out: Path) -> None:
    from yolorep.engine.train.setup import train

    def stop(trainer):
        raise Stop

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as folder:
        data = Path(folder) / "shapes.yaml"
        data.write_text(DATA)
        try:
            train(data=str(data), project=folder, name="stopped", hyp=dict(HYP), callbacks={"on_model_save": [stop]},
                  **RUN)  # fmt: skip
        except Stop:
            pass
        last = torch.load(Path(folder) / "stopped" / "weights" / "last.pt", weights_only=True)
        train(data=str(data), project=folder, name="full", hyp=dict(HYP), **RUN)
        full = torch.load(Path(folder) / "full" / "weights" / "last.pt", weights_only=True)
    final = {"ema": full["state_dict"], "model": full["train_state"]["model"]}
    torch.save({"last": last, "final": final, "history": full["train_state"]["history"]}, out)
    print(f"{out}: {out.stat().st_size} bytes")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
