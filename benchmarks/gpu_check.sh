#!/usr/bin/env bash
# One prepared GPU session (about 5 minutes on an H100/H200): fused vs unfused at 640 in fp32 and fp16, batch 1
# and 32, the fast paths, and AMP training steps. Run from the repository root with the package on PYTHONPATH:
#   PYTHONPATH=. bash benchmarks/gpu_check.sh [OUT_DIR]
set -euo pipefail
out=${1:-runs/gpu_check}
mkdir -p "$out"
bench() { python3 -m yolorep benchmark --device cuda --imgsz 640 "$@"; }
for model in yolorep-n yolorep-s; do
  bench --model "$model.yaml" --batch 1 --json "$out/${model}_b1_fp32.json"
  bench --model "$model.yaml" --batch 32 --json "$out/${model}_b32_fp32.json"
  bench --model "$model.yaml" --batch 1 --half --channels-last --json "$out/${model}_b1_fp16.json"
  bench --model "$model.yaml" --batch 32 --half --channels-last --json "$out/${model}_b32_fp16.json"
  bench --model "$model.yaml" --batch 1 --half --channels-last --cuda-graph --json "$out/${model}_b1_fp16_graph.json"
  bench --model "$model.yaml" --batch 32 --half --channels-last --cuda-graph --json "$out/${model}_b32_fp16_graph.json"
  bench --model "$model.yaml" --batch 64 --train --json "$out/${model}_train_b64_amp.json"
done
python3 - "$out" <<'PY'
import json, pathlib, sys
for path in sorted(pathlib.Path(sys.argv[1]).glob("*.json")):
    d = json.loads(path.read_text())
    if "train_images_per_s" in d:
        print(f"{path.stem:32s} train {d['train_images_per_s']:9.1f} img/s  step {d['train_step_ms']:.1f} ms")
    else:
        print(f"{path.stem:32s} unfused {d['unfused_ms']:8.3f} ms  fused {d['fused_ms']:8.3f} ms  "
              f"speed-up {d['speedup']:.2f}x  fused {d['images_per_s_fused']:9.1f} img/s  max diff {d['max_abs_diff']:.1e}")
PY
