#!/usr/bin/env bash
# Issue 31 part B in one shot on a GPU machine (no step starts after --budget, 480 s): training with AMP, interrupt and
# resume, val --half, predict on a video, exports loaded back on the GPU, torchrun on NCCL, gpu_check.sh and
# TensorRT if installed; a compact summary at the end. See benchmarks/gpu_part_b.py for the steps and options.
#   PYTHON=python3 bash benchmarks/gpu_part_b.sh [OUT] [--budget SECONDS] [--dry-run]
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
PYTHONPATH=".${PYTHONPATH:+:$PYTHONPATH}" exec "$python" benchmarks/gpu_part_b.py --python "$python" "$@"
