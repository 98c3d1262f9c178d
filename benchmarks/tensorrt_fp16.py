"""TensorRT fp16 of a fused yolorep model beside PyTorch fp16 (weights cast, channels-last, CUDA graph), timed in
interleaved rounds with CUDA events, outputs compared with the fused model in exact fp32. Needs a GPU and the
``tensorrt`` Python package (8.5 or newer); run by ``benchmarks/gpu_part_b.py``:

    python3 benchmarks/tensorrt_fp16.py yolorep-n.pt yolorep-n.onnx --json trt.json

The ONNX file is the fixed-shape fp32 export of the same checkpoint (``yolorep export --format onnx``); TensorRT
builds it with fp16 kernels allowed.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import torch

import yolorep
from yolorep.benchmark.paths import Runner, RunOptions
from yolorep.engine.deploy.tolerance import exact_fp32, output_diff
from yolorep.engine.timing import time_interleaved
from yolorep.nn import DecodedModel


def build_engine(onnx_path: Path):
    """The deserialized fp16 engine of ``onnx_path`` and its execution context."""
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_path.read_bytes()):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise SystemExit(f"{onnx_path}: TensorRT cannot parse it: {errors}")
    config = builder.create_builder_config()
    config.set_flag(trt.BuilderFlag.FP16)
    plan = builder.build_serialized_network(network, config)
    engine = trt.Runtime(logger).deserialize_cuda_engine(plan)
    return engine, engine.create_execution_context()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("weights", type=Path)
    parser.add_argument("onnx", type=Path)
    parser.add_argument("--iters", type=int, default=200)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    device = torch.device("cuda", 0)
    engine, context = build_engine(args.onnx)
    shape = tuple(engine.get_tensor_shape("images"))
    images = torch.rand(shape, generator=torch.Generator().manual_seed(0)).to(device)
    output = torch.empty(tuple(engine.get_tensor_shape("output0")), device=device)
    context.set_tensor_address("images", images.data_ptr())
    context.set_tensor_address("output0", output.data_ptr())

    def tensorrt_call() -> torch.Tensor:
        context.execute_async_v3(torch.cuda.current_stream(device).cuda_stream)
        return output

    fused = DecodedModel(yolorep.load(args.weights).fuse()).to(device).eval()
    with exact_fp32(), torch.no_grad():
        reference = fused(images)
    options = RunOptions(device, torch.float16, cast_weights=True, channels_last=True, cuda_graph=True)
    runner = Runner(fused, options, images)
    prepared = runner.prepare(images)
    box_px, score = output_diff(tensorrt_call().clone(), reference)
    torch_box_px, torch_score = output_diff(runner(prepared).clone(), reference)
    torch_times, trt_times = time_interleaved([lambda: runner(prepared), tensorrt_call], args.iters, 10, device)
    figures = {
        "batch": shape[0],
        "imgsz": shape[2],
        "torch_fp16_graph_ms": statistics.median(torch_times),
        "tensorrt_fp16_ms": statistics.median(trt_times),
        "torch_fp16_images_per_s": shape[0] * 1e3 / statistics.median(torch_times),
        "tensorrt_fp16_images_per_s": shape[0] * 1e3 / statistics.median(trt_times),
        "tensorrt_box_diff_px": box_px,
        "tensorrt_score_diff": score,
        "torch_fp16_box_diff_px": torch_box_px,
        "torch_fp16_score_diff": torch_score,
    }
    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
