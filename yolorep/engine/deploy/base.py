"""``Backend``: one calling convention for every way yolorep runs a detector (PyTorch, TorchScript, ONNX Runtime,
OpenVINO), so that validation, prediction and the benchmark never ask which one they hold."""

from __future__ import annotations

import torch
from torch import Tensor

from yolorep.checks import check_imgsz
from yolorep.engine.metadata import ModelMetadata
from yolorep.errors import ArgumentError

__all__ = ["Backend"]


class Backend:
    """A detector ready for inference: ``backend(images) -> [B, N, 4 + nc]`` float32 on ``device``.

    ``images`` are [B, 3, H, W] float RGB in 0..1, on any device; the output holds boxes (x1, y1, x2, y2) in input
    pixels, then class scores (sigmoid), for every anchor; no NMS.

    A fixed-shape export (``dynamic`` false) runs only at ``[batch, 3, imgsz, imgsz]``: any other batch size is
    split into and padded to batches of ``batch``, so callers may use any batch size; the image size must match.

    Attributes:
        format: ``pytorch``, ``torchscript``, ``onnx`` or ``openvino``.
        source: the file (or ``"model"`` for an in-memory model).
        names, stride, imgsz, batch, dynamic, fused: from ``info`` (see ``ModelMetadata``).
        precision: what it computes in: ``info.precision``, or fp32 where this CPU has no units for a bf16 or fp16
            file, or bf16 for a PyTorch model run with ``half`` on a CPU with native bf16.
        info: the model's metadata.
        device: where outputs are returned.
    """

    format = ""
    own_threads = False  # runs on a thread pool of its own, not torch's (set in each such runtime's backend)

    def __init__(self, source: str, info: ModelMetadata, device: torch.device) -> None:
        self.source, self.info, self.device = source, info, device
        self.names = list(info.names)
        self.stride = info.stride
        self.imgsz = info.imgsz
        self.batch = info.batch
        self.dynamic = info.dynamic
        self.fused = info.fused
        self.precision = info.precision

    def __repr__(self) -> str:
        shape = "dynamic" if self.dynamic else f"[{self.batch}, 3, {self.imgsz}, {self.imgsz}]"
        return f"{type(self).__name__}({self.source}, {self.precision}, input {shape}, {len(self.names)} classes)"

    def describe(self) -> str:
        """E.g. ``onnx int8 (best_int8.onnx)``, for logs and tables."""
        return f"{self.format} {self.precision} ({self.source})"

    def input_size(self, imgsz: int | None) -> int:
        """The square input size to letterbox to: ``imgsz`` (default: the model's own), checked against the
        stride and, for a fixed-shape export, against its exported size.

        Raises:
            ArgumentError: ``imgsz`` is not a stride multiple, or differs from a fixed-shape export's size.
        """
        size = imgsz if imgsz is not None else self.imgsz or 640
        if not self.dynamic and size != self.imgsz:
            raise ArgumentError(
                f"--imgsz {size}: {self.source} was exported for a fixed {self.imgsz}x{self.imgsz} input; use "
                f"--imgsz {self.imgsz}, or export again with --imgsz {size} or --dynamic"
            )
        return check_imgsz(size, self.stride)

    def __call__(self, images: Tensor) -> Tensor:
        """[B, 3, H, W] float in 0..1 -> [B, N, 4 + nc] float32 on ``self.device``."""
        if self.dynamic:
            return self._forward(images).to(self.device, torch.float32)
        if tuple(images.shape[2:]) != (self.imgsz, self.imgsz):
            raise ArgumentError(
                f"{self.source}: exported for a fixed {self.imgsz}x{self.imgsz} input, got {images.shape[2]}x"
                f"{images.shape[3]}; letterbox to {self.imgsz}x{self.imgsz} (square, rect=False) or export with "
                "--dynamic"
            )
        if images.shape[0] == self.batch:  # the usual call: one batch as exported, nothing to split or join
            return self._forward(images).to(self.device, torch.float32)
        outputs = []
        for chunk in images.split(self.batch):
            n = chunk.shape[0]
            if n < self.batch:  # the last chunk: pad with blank images, drop their outputs
                chunk = torch.cat((chunk, chunk.new_zeros(self.batch - n, *chunk.shape[1:])))
            outputs.append(self._forward(chunk)[:n].to(self.device, torch.float32))
        return torch.cat(outputs)

    def _forward(self, images: Tensor) -> Tensor:
        """Run the model on one batch it accepts as is; the output may be on any device, in any float dtype."""
        raise NotImplementedError
