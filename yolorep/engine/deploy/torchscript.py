"""The TorchScript format: the fused model traced (``.torchscript``, metadata as ``config.txt`` among its extra
files), and ``TorchScriptBackend``, which runs it with ``torch.jit``. The trace records the head's shape arithmetic,
so the file also runs at other batch and image sizes, on any device."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import torch
from torch import Tensor

from yolorep.engine.deploy.base import Backend
from yolorep.engine.deploy.format import DeployFormat, ExportJob
from yolorep.engine.metadata import ModelMetadata, strings_from_json
from yolorep.errors import YolorepError

__all__ = ["TORCHSCRIPT", "TorchScriptBackend", "device_constants", "export_torchscript"]


class TorchScriptBackend(Backend):
    """A ``.torchscript`` file written by ``yolorep export --format torchscript`` (metadata in ``config.txt``)."""

    format = "torchscript"

    def __init__(self, path: Path, device: torch.device) -> None:
        extra = {"config.txt": ""}
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", category=FutureWarning)  # torch.jit deprecation notice
                self.module = torch.jit.load(str(path), map_location=device, _extra_files=extra)
        except (RuntimeError, ValueError) as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise YolorepError(f"{path}: not a readable TorchScript file ({first}); export it with yolorep") from None
        info = ModelMetadata.from_strings(strings_from_json(extra["config.txt"], str(path), "config.txt"), str(path))
        if info.precision == "fp16" and device.type != "cuda":
            raise YolorepError(
                f"{path}: holds fp16 weights, which run on CUDA; use --device 0 or export without --half"
            )
        self.dtype = torch.float16 if info.precision == "fp16" else torch.float32
        super().__init__(str(path), info, device)

    def _forward(self, images: Tensor) -> Tensor:
        with torch.inference_mode():
            return self.module(images.to(self.device, self.dtype))


def device_constants(module: torch.jit.ScriptModule) -> list[str]:
    """The devices a TorchScript graph has frozen in as constants (a trace records ``torch.arange(...,
    device=...)``'s device); ``torch.jit.load(map_location=...)`` moves weights but not these."""
    graph = module.inlined_graph  # a new graph per access: held while its values are read
    constants = [n.output() for n in graph.nodes() if n.kind() == "prim::Constant"]
    return [str(c.toIValue()) for c in constants if c.type().kind() == "DeviceObjType"]


def export_torchscript(job: ExportJob) -> None:
    """Trace ``job.model`` at ``job.example``, refuse a graph tied to the tracing device, save with the metadata."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=FutureWarning)  # torch.jit deprecation notice
        warnings.simplefilter("ignore", category=torch.jit.TracerWarning)
        traced = torch.jit.trace(job.model, job.example, check_trace=False)
        frozen = device_constants(traced)
        if frozen:  # the file would run only on the device it was traced on
            raise YolorepError(
                f"export: the traced model holds device constants ({', '.join(frozen)}), so "
                f"{job.path.name} would run only on {job.example.device}; please report it"
            )
        traced.save(str(job.path), _extra_files={"config.txt": json.dumps(job.info.to_strings())})


TORCHSCRIPT = DeployFormat(
    name="torchscript",
    suffix=".torchscript",
    export=export_torchscript,
    backend=TorchScriptBackend,
    extra="",
    half=True,
    dynamic=True,
)
