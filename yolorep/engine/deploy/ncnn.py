"""The NCNN format (Tencent's inference framework for phones and ARM boards): the fused model traced and converted by
pnnx into ``<stem>_ncnn_model/`` holding ``model.ncnn.param`` (the graph), ``model.ncnn.bin`` (the weights, fp32 or,
with ``--half``, fp16) and ``metadata.json``; and ``NCNNBackend``, which runs it with the ``ncnn`` Python package.

NCNN has no batch axis: the graph takes one [3, H, W] image, so the file is converted at batch 1 and the backend
runs a batch image by image. A fused RepVGG network is a plain stack of 3x3 convolutions, the layer NCNN's ARM
kernels (Winograd, packed fp16) are written for.
"""

from __future__ import annotations

import json
import logging
import subprocess
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from yolorep.atomic import atomic_dir
from yolorep.engine.deploy.base import Backend
from yolorep.engine.deploy.format import DeployFormat, ExportJob
from yolorep.engine.deploy.optional import require
from yolorep.engine.metadata import ModelMetadata, strings_from_json
from yolorep.errors import YolorepError

__all__ = ["NCNN", "NCNNBackend", "export_ncnn", "find_ncnn_param"]

LOGGER = logging.getLogger(__name__)
EXTRA = "ncnn"
PARAM, WEIGHTS, METADATA = "model.ncnn.param", "model.ncnn.bin", "metadata.json"
PNNX_TIMEOUT_S = 1800  # pnnx converts a large model in about a minute; far beyond that it has hung


def find_ncnn_param(path: Path) -> Path:
    """The ``model.ncnn.param`` of an NCNN model folder (or ``path`` itself when it is a ``.param`` file)."""
    param = path if path.is_file() else path / PARAM
    if not param.is_file() or not param.with_suffix(".bin").is_file():
        raise YolorepError(
            f"{path}: an NCNN model folder holds {PARAM} and {WEIGHTS}; pass the folder written by "
            "`yolorep export --format ncnn` or its .param file"
        )
    return param


class NCNNBackend(Backend):
    """Runs a yolorep NCNN model on the CPU, one image at a time; outputs are moved to ``device``.

    An fp32 model runs with NCNN's fp16 storage and arithmetic off, so that it computes what PyTorch does on every
    CPU (on ARM they would otherwise be on by default); an fp16 model keeps NCNN's defaults, which use fp16 where
    the CPU has it (ARMv8.2 and newer) and fp32 on x86.
    """

    format = "ncnn"
    own_threads = True

    def __init__(self, path: Path, device: torch.device) -> None:
        self.ncnn = require("ncnn", f"--weights {path}", EXTRA)
        param = find_ncnn_param(path)
        info_file = param.parent / METADATA
        text = info_file.read_text(errors="replace") if info_file.is_file() else ""
        info = ModelMetadata.from_strings(strings_from_json(text, str(path), METADATA), str(path))
        self.net = self.ncnn.Net()
        self.net.opt.use_vulkan_compute = False
        self.net.opt.num_threads = torch.get_num_threads()
        if info.precision == "fp32":
            self.net.opt.use_fp16_storage = self.net.opt.use_fp16_packed = self.net.opt.use_fp16_arithmetic = False
        if self.net.load_param(str(param)) != 0 or self.net.load_model(str(param.with_suffix(".bin"))) != 0:
            raise YolorepError(f"{param}: NCNN cannot load this model; export it again with yolorep")
        self.input_name, self.output_name = self.net.input_names()[0], self.net.output_names()[0]
        if device.type != "cpu":
            LOGGER.info("%s: NCNN runs on the CPU here; outputs are moved to %s", path, device)
        super().__init__(str(path), info, device)

    def _forward(self, images: Tensor) -> Tensor:
        outputs = []
        for image in images.detach().to("cpu", torch.float32).numpy():  # [3, H, W] each
            with self.net.create_extractor() as extractor:
                extractor.input(self.input_name, self.ncnn.Mat(np.ascontiguousarray(image)))
                status, output = extractor.extract(self.output_name)
                if status != 0:
                    raise YolorepError(f"{self.source}: NCNN failed to run the model (status {status})")
                outputs.append(np.array(output))  # [N, 4 + nc], copied out of NCNN's buffer
        return torch.from_numpy(np.stack(outputs))


def export_ncnn(job: ExportJob) -> None:
    """Trace ``job.model`` at batch 1, convert it with the pnnx tool (fp16 weights when ``job.info.precision`` is
    fp16), and write ``job.path/`` with the graph, the weights and the metadata."""
    pnnx = require("pnnx", "--format ncnn", EXTRA)
    example = job.example[:1]
    with tempfile.TemporaryDirectory(prefix="yolorep_export_") as tmp, atomic_dir(job.path) as folder:
        work = Path(tmp)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=FutureWarning)  # torch.jit deprecation notice
            warnings.simplefilter("ignore", category=torch.jit.TracerWarning)
            torch.jit.trace(job.model, example, check_trace=False).save(str(work / "model.pt"))
        outputs = {"pnnxparam": "model.pnnx.param", "pnnxbin": "model.pnnx.bin", "pnnxpy": "model_pnnx.py",
                   "pnnxonnx": "model.pnnx.onnx", "ncnnpy": "model_ncnn.py"}  # fmt: skip
        command = [
            pnnx.EXEC_PATH,
            str(work / "model.pt"),
            f"inputshape=[{','.join(str(n) for n in example.shape)}]f32",
            f"device={'gpu' if example.is_cuda else 'cpu'}",
            f"fp16={int(job.info.precision == 'fp16')}",
            f"ncnnparam={folder / PARAM}",
            f"ncnnbin={folder / WEIGHTS}",
            *(f"{key}={work / name}" for key, name in outputs.items()),
        ]
        _run_pnnx(command, work)
        if not (folder / PARAM).is_file() or not (folder / WEIGHTS).is_file():
            raise YolorepError(f"export: pnnx wrote no NCNN model for {job.path.name}; please report it")
        (folder / METADATA).write_text(json.dumps(job.info.to_strings(), indent=1) + "\n")
    layers = _layer_counts(job.path / PARAM)
    LOGGER.info("NCNN graph: %s", ", ".join(f"{n} {layer}" for layer, n in sorted(layers.items(), key=lambda x: -x[1])))
    expected_convs = sum(isinstance(m, nn.Conv2d) for m in job.model.modules())
    if layers.get("BatchNorm", 0) or layers.get("Convolution", 0) != expected_convs:
        raise YolorepError(
            f"export: the NCNN graph has {layers.get('BatchNorm', 0)} BatchNorm and {layers.get('Convolution', 0)} "
            f"Convolution layers (expected 0 and {expected_convs}); the model was not exported fused; please report it"
        )


def _run_pnnx(command: list[str], cwd: Path) -> None:
    """Run the pnnx converter (it writes debug files into its working folder: ``cwd``, a temporary one); its
    progress lines go to the debug log, and its last lines into the error when it fails."""
    try:
        done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=PNNX_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise YolorepError(f"export: pnnx did not finish in {PNNX_TIMEOUT_S} s; please report it") from None
    LOGGER.debug("pnnx output:\n%s%s", done.stdout, done.stderr)
    if done.returncode != 0:
        tail = " | ".join((done.stdout + done.stderr).strip().splitlines()[-3:])
        raise YolorepError(
            f"export: pnnx failed converting the model (exit {done.returncode}: {tail}); please report it"
        )


def _layer_counts(param: Path) -> dict[str, int]:
    """Layer type -> count in an NCNN ``.param`` file (line 3 on: ``type name inputs outputs ...``)."""
    counts: dict[str, int] = {}
    for line in param.read_text().splitlines()[2:]:
        if line.strip():
            layer = line.split()[0]
            counts[layer] = counts.get(layer, 0) + 1
    return counts


NCNN = DeployFormat(
    name="ncnn",
    suffix="_ncnn_model",
    export=export_ncnn,
    backend=NCNNBackend,
    extra=EXTRA,
    packages=("pnnx",),
    runtime=("ncnn",),
    half=True,
    half_on_cpu=True,
    is_folder=True,
    file_suffix=".param",
)
