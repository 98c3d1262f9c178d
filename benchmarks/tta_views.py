"""mAP with and without test-time augmentation (``val --augment``) on one data set, from one set of forward passes.

    python benchmarks/tta_views.py --weights best.pt --data shapes.yaml [--batch 8] [--device cpu]

The model runs once per batch on each view of ``yolorep.engine.predict.tta.TTA_VIEWS`` (full size, 0.83 flipped, 0.67);
the outputs are recorded and replayed to score, with pycocotools on the same ground truth:

* ``plain``: the full-size view alone, i.e. ``yolorep val`` without ``--augment``;
* ``tta``: every view, as ``val --augment`` runs it;
* ``tta-clipped``: every view, less the largest-stride level of the full-size view and the smallest-stride level of
  the 0.67 view (ultralytics also drops these "tails"; yolorep's ``--augment`` does not).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from yolorep.datasets.spec import load_data_spec  # noqa: E402
from yolorep.engine.deploy import Backend, load_backend  # noqa: E402
from yolorep.engine.predict.tta import TTA_VIEWS, AugmentedBackend  # noqa: E402
from yolorep.engine.val.validator import build_eval_loader, build_validator, eval_settings  # noqa: E402
from yolorep.logs import configure_logging  # noqa: E402


class Recorded(Backend):
    """The wrapped backend, each output kept in ``outputs`` (with its input's height and width)."""

    def __init__(self, backend: Backend) -> None:
        self.backend, self.outputs = backend, []
        super().__init__(backend.source, backend.info, backend.device)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        out = self.backend(images)
        self.outputs.append((out, tuple(images.shape[2:])))
        return out


class Replayed(Backend):
    """Returns the recorded outputs in order: ``views`` picks which calls of each batch are returned, ``drop`` maps
    a view to the head level whose anchors it leaves out."""

    def __init__(self, recorded: Recorded, views: tuple[int, ...], drop: dict[int, int], strides: list[int]):
        self.recorded, self.views, self.drop, self.strides, self.call = recorded, views, drop, strides, 0
        super().__init__(recorded.source, recorded.info, recorded.device)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        batch, view = divmod(self.call, len(self.views))
        self.call += 1
        out, (h, w) = self.recorded.outputs[batch * len(TTA_VIEWS) + self.views[view]]
        if self.views[view] not in self.drop:
            return out
        counts = [(h // s) * (w // s) for s in self.strides]  # anchors per level, in head order
        level = self.drop[self.views[view]]
        start = sum(counts[:level])
        keep = torch.ones(out.shape[1], dtype=torch.bool)
        keep[start : start + counts[level]] = False
        return out[:, keep]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", required=True, help="a .pt checkpoint")
    parser.add_argument("--data", required=True)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    configure_logging(False)
    backend = load_backend(args.weights, args.device)
    strides = [int(s) for s in backend.model.stride.tolist()]
    settings = eval_settings(backend.info.eval_args)
    spec = load_data_spec(args.data)
    dataset, loader = build_eval_loader(spec, "val", backend.input_size(None), args.batch, backend.stride)
    recorded = Recorded(backend)
    figures = {}
    variants = {
        "record": lambda: AugmentedBackend(recorded),
        "plain": lambda: Replayed(recorded, (0,), {}, strides),
        "tta": lambda: AugmentedBackend(Replayed(recorded, (0, 1, 2), {}, strides)),
        "tta-clipped": lambda: AugmentedBackend(Replayed(recorded, (0, 1, 2), {0: len(strides) - 1, 2: 0}, strides)),
    }
    for name, model in variants.items():
        results = build_validator(dataset, loader, settings)(model(), show_progress=name == "record")
        figures[name] = results
    print(f"{args.weights} on {args.data} (val, {len(dataset)} images, imgsz {backend.input_size(None)}), pycocotools:")
    for name in ("plain", "tta", "tta-clipped"):
        r = figures[name]
        print(f"  {name:12s} mAP50-95 {r['map50_95']:.4f}  mAP50 {r['map50']:.4f}  AR100 {r['coco_stats'][8]:.4f}")


if __name__ == "__main__":
    main()
