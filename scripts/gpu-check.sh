#!/usr/bin/env bash
# The GPU check, in one run on a machine with an NVIDIA GPU (no Rust toolchain needed there):
#   1. the seed reproduction headless on tiny@64, resnet18@224 and resnet50@224 with --device cuda
#      (5 epochs at Keras momentum 0.99, 20 epochs at 0.01);
#   2. bnscope bench --all --device cuda --json (and resnet50@224 on its own with more steps);
#   3. the PTY end-to-end test (tests/tui_pty.rs) against the CUDA binary;
#   4. the CPU-vs-GPU agreement check: tiny, same seed, 20 epochs: same accuracies, BN running stats within 1e-3;
#   5. PyTorch's resnet50@224 step on the same GPU (batch 3, Adam, median of 20 after warm-up);
# and prints a table last. Budget: under 8 minutes.
#
# Usage (from the repository root): scripts/gpu-check.sh [BNSCOPE_CUDA_BINARY] [TUI_PTY_TEST_BINARY]
# Defaults: .gpu/bnscope and .gpu/tui_pty, as made by scripts/gpu-bundle.sh.
# Results go to $GPU_CHECK_OUT (default $OUT if set, else /tmp/gpu-check).
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
BIN=${1:-.gpu/bnscope}
PTY=${2:-.gpu/tui_pty}
RES=${GPU_CHECK_OUT:-${OUT:-/tmp/gpu-check}}
mkdir -p "$RES"
START=$(date +%s)
log() { echo "[$(( $(date +%s) - START ))s] $*" >&2; }

# shellcheck source=scripts/cuda-env.sh
source scripts/cuda-env.sh "$BIN" || log "warning: some CUDA libraries did not resolve"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$RES/gpu.txt"
PY=python3
command -v "$PY" >/dev/null || PY=/opt/torch/.venv/bin/python3

run() { # name timeout args...
  local name=$1 t=$2; shift 2
  log "$name: $BIN $*"
  timeout "$t" "$BIN" "$@" >"$RES/$name.txt" 2>"$RES/$name.err"
  echo $? >"$RES/$name.rc"
  tail -n 3 "$RES/$name.txt" >&2
}

# 1. seed reproduction
for spec in "tiny 64" "resnet18 224" "resnet50 224"; do
  set -- $spec
  run "seed-$1-m0.99" 150 --headless --device cuda --model "$1" --image-size "$2" --epochs 5 --log "$RES/seed-$1-m0.99.jsonl"
  run "seed-$1-m0.01" 150 --headless --device cuda --model "$1" --image-size "$2" --epochs 20 --momentum 0.01 \
    --log "$RES/seed-$1-m0.01.jsonl"
done

# 2. benchmark
run bench-all 150 bench --all --device cuda --json
run bench-resnet50 120 bench --model resnet50 --image-size 224 --device cuda --steps 20 --warmup 5 --json
run breakdown 120 bench --breakdown --all --device cuda --steps 20 --warmup 5

# 3. PTY end-to-end against the CUDA binary
log "pty: $PTY"
BNSCOPE_BIN=$ROOT/$BIN BNSCOPE_PTY_DEVICE=cuda timeout 120 "$PTY" --test-threads=1 \
  keys_then_q sigterm_restores_terminal sighup_restores_terminal a_trainer_panic_is_shown_in_place_and_q_still_quits \
  rapid_resizes_from_10x3_to_400x120 >"$RES/pty.txt" 2>&1
echo $? >"$RES/pty.rc"
tail -n 3 "$RES/pty.txt" >&2

# 4. agreement: Adam (the default), SGD, and frozen weights (lr 0: only the running stats move)
for v in "adam" "sgd --optimizer sgd" "lr0 --lr 0"; do
  set -- $v
  name=$1; shift
  run "agree-$name-cpu" 120 --headless --device cpu --epochs 20 --log-bn full --log "$RES/agree-$name-cpu.jsonl" "$@"
  run "agree-$name-cuda" 120 --headless --device cuda --epochs 20 --log-bn full --log "$RES/agree-$name-cuda.jsonl" "$@"
  "$PY" scripts/compare_runs.py "$RES/agree-$name-cpu.jsonl" "$RES/agree-$name-cuda.jsonl" >"$RES/agree-$name.txt" 2>&1
  echo $? >"$RES/agree-$name.rc"
  cat "$RES/agree-$name.txt" >&2
done

# 5. PyTorch on the same GPU
log "pytorch resnet50"
timeout 150 "$PY" scripts/pytorch_gpu_reference.py --steps 20 >"$RES/torch.json" 2>"$RES/torch.err"
echo $? >"$RES/torch.rc"

log "done"
"$PY" scripts/gpu_table.py "$RES"
