#!/usr/bin/env bash
# Measures the TUI's cost during steady training: bytes/s written to the terminal (target <= 5 KB/s at
# 120x40), CPU % of the UI thread ("bnscope-ui") and key-to-screen latency (presses `m`, which swaps the
# momentum conventions in the header, and times until the emulated screen shows it).
#
# It launches the release binary in a pseudo-terminal (portable-pty + vt100, in tests/tui_pty.rs `measure`).
#
#   scripts/tui-measure.sh            # 30 s window, bnscope --device cpu --pause-at 0 (no opening pause)
#   scripts/tui-measure.sh 10         # 10 s window
#   BNSCOPE_MEASURE_ARGS="--device cpu --model resnet18 --fps 10" scripts/tui-measure.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export BNSCOPE_MEASURE_SECS="${1:-${BNSCOPE_MEASURE_SECS:-30}}"
export BNSCOPE_MEASURE_ARGS="${BNSCOPE_MEASURE_ARGS:---device cpu --pause-at 0}"
exec cargo test --release --test tui_pty -- --ignored --exact measure --nocapture
