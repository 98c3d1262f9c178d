#!/usr/bin/env bash
# Issue 29: every deploy format that runs on a Linux CPU, side by side on three trained models (latency on 2 threads,
# agreement with PyTorch, pycocotools mAP50-95 on the same square letterboxed validation batches):
#   demo     yolorep-n, the demo's recipe (12 epochs at 256 on the bundled shapes set)
#   qa       yolorep-qa-n, the same recipe: the quantization-friendly model the INT8 target is about
#   raccoon  yolorep-n, 30 epochs at 320 on the 200 raccoon photos (sorted names: first 160 train, last 40 val)
# Models already trained under OUT are reused, so the benchmark alone can be rerun (and timed) in a quiet hour; a
# checkpoint copied to OUT/train/<model>/weights/best.pt beforehand is benchmarked instead of training one.
#
#   bash benchmarks/edge_formats.sh [OUT]                        # train what is missing, then benchmark all three
#   ITERS=5 WARMUP=1 bash benchmarks/edge_formats.sh [OUT]       # mAP only (latency from 5 calls means little)
#   MODELS="raccoon" FORMATS=torch,ncnn,ncnn-fp16,openvino bash benchmarks/edge_formats.sh [OUT]
#   DEMO_EPOCHS=6 RACCOON_EPOCHS=15 ...                          # shorter training (the recipes' epochs otherwise)
#   RACCOON=/work/shared/data/raccoon ...                        # the photos (default: ../shared/data/raccoon)
#
# Needs the extras of the formats asked for: pip install -e ".[dev,tflite]" (ncnn, tflite, openvino, onnx). Results:
# OUT/<model>_formats.json and the table in OUT/<model>_formats.log, one per model.
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${1:-runs/edge_formats}
PYTHON=${PYTHON:-python3}
MODELS=${MODELS:-demo qa raccoon}
FORMATS=${FORMATS:-torch,onnx,openvino,ncnn,ncnn-fp16,tflite,tflite-fp16,onnx-int8,openvino-int8,tflite-int8}
ITERS=${ITERS:-100}
WARMUP=${WARMUP:-10}
DEMO_EPOCHS=${DEMO_EPOCHS:-12}  # demo and qa
RACCOON_EPOCHS=${RACCOON_EPOCHS:-30}
RACCOON=${RACCOON:-../shared/data/raccoon}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

# the demo's hyperparameters (yolorep/demo.py)
cat >"$OUT/demo_hyp.yaml" <<'EOF'
warmup_epochs: 1.0
close_mosaic: 4
mosaic: 0.5
lr0: 0.003
nbs: 8
EOF

# raccoon: the shared folder as it is (read-only is fine), the split as list files beside this run
RACCOON=$(cd "$RACCOON" && pwd)
ls "$RACCOON/images" | sort | head -160 >"$OUT/raccoon_train.txt"
ls "$RACCOON/images" | sort | tail -40 >"$OUT/raccoon_val.txt"
cat >"$OUT/raccoon.yaml" <<EOF
path: $RACCOON
train: $OUT/raccoon_train.txt
val: $OUT/raccoon_val.txt
names: [raccoon]
EOF

train() {  # name model data imgsz epochs batch [extra...]
  local name=$1 model=$2 data=$3 imgsz=$4 epochs=$5 batch=$6
  shift 6
  if [ -f "$OUT/train/$name/weights/best.pt" ]; then
    echo "== $name: reusing $OUT/train/$name/weights/best.pt"
    return
  fi
  echo "== $name: training $model"
  "$PYTHON" -m yolorep train --model "$model" --data "$data" --imgsz "$imgsz" --epochs "$epochs" --batch "$batch" \
    --optimizer AdamW --device cpu --project "$OUT/train" --name "$name" "$@"
}

for name in $MODELS; do
  case $name in
    demo) train demo yolorep-n.yaml shapes.yaml 256 "$DEMO_EPOCHS" 8 --hyp "$OUT/demo_hyp.yaml"; data=shapes.yaml ;;
    qa) train qa yolorep-qa-n.yaml shapes.yaml 256 "$DEMO_EPOCHS" 8 --hyp "$OUT/demo_hyp.yaml"; data=shapes.yaml ;;
    raccoon) train raccoon yolorep-n.yaml "$OUT/raccoon.yaml" 320 "$RACCOON_EPOCHS" 16; data=$OUT/raccoon.yaml ;;
    *) echo "unknown model $name (demo, qa, raccoon)" >&2; exit 2 ;;
  esac
  echo "== $name: benchmark --formats $FORMATS"
  "$PYTHON" -m yolorep benchmark --formats "$FORMATS" --weights "$OUT/train/$name/weights/best.pt" --data "$data" \
    --device cpu --iters "$ITERS" --warmup "$WARMUP" --out "$OUT/$name" --json "$OUT/${name}_formats.json" \
    2>&1 | tee "$OUT/${name}_formats.log"
done
