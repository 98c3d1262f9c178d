#!/usr/bin/env bash
# One prepared GPU session (about 5 minutes on an H100/H200): fused vs unfused at 640 in fp32 and fp16, batch 1
# and 32, the fast paths, and AMP training steps. Run from the repository root with the package on PYTHONPATH:
#   PYTHONPATH=. bash benchmarks/gpu_check.sh [OUT_DIR]
# Environment: PYTHON (the interpreter, default python3), MODELS (default "yolorep-n yolorep-s"), BENCH_ARGS
# (added to every benchmark, e.g. "--iters 100"). A benchmark that fails (an output check out of tolerance, say)
# is reported and the others still run; the exit status is then 1.
set -uo pipefail
out=${1:-runs/gpu_check}
python=${PYTHON:-python3}
read -r -a models <<< "${MODELS:-yolorep-n yolorep-s}"
read -r -a extra <<< "${BENCH_ARGS:-}"
mkdir -p "$out"
failed=()
bench() {  # NAME ARGS...: one benchmark, its figures in $out/NAME.json
  local name=$1
  shift
  "$python" -m yolorep benchmark --device cuda --imgsz 640 ${extra[@]+"${extra[@]}"} "$@" --json "$out/$name.json" \
    || failed+=("$name")
}
for model in "${models[@]}"; do
  bench "${model}_b1_fp32" --model "$model.yaml" --batch 1
  bench "${model}_b32_fp32" --model "$model.yaml" --batch 32
  bench "${model}_b1_fp16" --model "$model.yaml" --batch 1 --half --channels-last
  bench "${model}_b32_fp16" --model "$model.yaml" --batch 32 --half --channels-last
  bench "${model}_b1_fp16_graph" --model "$model.yaml" --batch 1 --half --channels-last --cuda-graph
  bench "${model}_b32_fp16_graph" --model "$model.yaml" --batch 32 --half --channels-last --cuda-graph
  bench "${model}_train_b64_amp" --model "$model.yaml" --batch 64 --train
done
"$python" - "$out" <<'PY'
import json, pathlib, sys
for path in sorted(pathlib.Path(sys.argv[1]).glob("*.json")):
    d = json.loads(path.read_text())
    if "train_images_per_s" in d:
        print(f"{path.stem:32s} train {d['train_images_per_s']:9.1f} img/s  step {d['train_step_ms']:.1f} ms")
    else:
        print(f"{path.stem:32s} unfused {d['unfused_ms']:8.3f} ms  fused {d['fused_ms']:8.3f} ms  "
              f"speed-up {d['speedup']:.2f}x  fused {d['images_per_s_fused']:9.1f} img/s  max diff {d['max_abs_diff']:.1e}")
PY
if ((${#failed[@]})); then
  echo "gpu_check: failed: ${failed[*]} (see the errors above)" >&2
  exit 1
fi
