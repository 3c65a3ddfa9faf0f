#!/usr/bin/env bash
# Prepares .gpu/ for scripts/gpu-check.sh on a GPU machine that has no Rust toolchain:
#   .gpu/bnscope   the CUDA build (scripts/build-cuda.sh), stripped
#   .gpu/tui_pty   the PTY end-to-end test binary (a CPU build: it drives whatever BNSCOPE_BIN names)
# Together they stay under the 64 MiB a GPU call may carry. .gpu/ is ignored by git (.git/info/exclude).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
scripts/build-cuda.sh
mkdir -p .gpu
grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >>.git/info/exclude
strip -o .gpu/bnscope target-cuda/release/bnscope
test_bin=$(cargo test --release --test tui_pty --no-run --message-format=json 2>/dev/null |
  python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "tui_pty" and m.get("executable"):
        print(m["executable"])')
strip -o .gpu/tui_pty "$test_bin"
du -b .gpu/* | awk '{s+=$1; printf "%s %.1f MiB\n", $2, $1/1048576} END {printf "total %.1f MiB\n", s/1048576}'
