#!/usr/bin/env bash
# Installs a built wheel into a fresh virtual environment (no index, no compiler) and checks what a user gets:
# `bnscope --version`, `bnscope watch --help`, a headless `bnscope watch` following a log as it is written, and
# `import bnscope` without torch or keras (and `bnscope.watch` then naming the extra to install).
#
#   scripts/wheel-check.sh [dist/bnscope-*.whl]     # default: the newest wheel in dist/ (scripts/build-wheel.sh)
#
# Exit 0 when every check passes; the first failure stops it with a message.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PYTHON=${PYTHON:-python3}
wheel=${1:-$(ls -t "$ROOT"/dist/bnscope-*.whl 2>/dev/null | head -n1)}
if [[ -z $wheel || ! -f $wheel ]]; then
  echo "wheel-check.sh: no wheel (build one with scripts/build-wheel.sh, or give its path)" >&2
  exit 2
fi
wheel=$(realpath "$wheel")
version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$ROOT/Cargo.toml" | head -n1)
tmp=$(mktemp -d)
watcher=
cleanup() {
  if [[ -n $watcher ]]; then kill "$watcher" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() {
  echo "wheel-check.sh: FAILED: $*" >&2
  exit 1
}

echo ">> fresh venv, pip install --no-index $(basename "$wheel")"
"$PYTHON" -m venv "$tmp/venv"
start=$EPOCHREALTIME
"$tmp/venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-index "$wheel"
echo "   installed in $(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }') s"
bin=$tmp/venv/bin/bnscope
[[ -x $bin ]] || fail "no bnscope in the venv's bin/"

echo ">> bnscope --version"
"$bin" --version | tee "$tmp/version"
grep -q "^bnscope $version\$" "$tmp/version" || fail "--version does not say $version"
grep -q "^features: .*train" "$tmp/version" || fail "the wheel's binary has no trainer"

echo ">> bnscope watch --help"
"$bin" watch --help >"$tmp/help"
head -n3 "$tmp/help"
grep -q "Usage: bnscope watch" "$tmp/help" || fail "watch --help"

echo ">> bnscope watch --headless, the log written while it watches"
log=$tmp/run.jsonl
"$bin" watch --headless "$log" >"$tmp/watch.out" 2>&1 &
watcher=$!
sleep 0.5
fixture=$ROOT/tests/fixtures/logs/bnscope_seed.jsonl
while IFS= read -r line; do
  printf '%s\n' "$line" >>"$log"
  sleep 0.02
done <"$fixture"
for _ in $(seq 50); do
  grep -q "^epoch 5 " "$tmp/watch.out" && break
  sleep 0.1
done
kill -INT "$watcher"
rc=0
wait "$watcher" || rc=$?
watcher=
head -n3 "$tmp/watch.out"
[[ $rc -eq 130 ]] || fail "watch: exit $rc after SIGINT (expected 130)"
grep -q "waiting for" "$tmp/watch.out" || fail "watch did not wait for the log"
grep -q "^epoch 5 " "$tmp/watch.out" || fail "watch did not show epoch 5"

echo ">> python -c 'import bnscope' (torch and keras blocked)"
start=$EPOCHREALTIME
"$tmp/venv/bin/python" - "$version" <<'EOF'
import sys
sys.modules["torch"] = None   # as if neither were installed
sys.modules["keras"] = None
import bnscope
assert bnscope.__version__ == sys.argv[1], (bnscope.__version__, sys.argv[1])
assert bnscope.__file__.startswith(sys.prefix), bnscope.__file__
try:
    bnscope.watch
except ImportError as e:
    assert "pip install 'bnscope[torch]'" in str(e), e
    print(f"   bnscope {bnscope.__version__} from {bnscope.__file__}")
    print(f"   bnscope.watch without torch: {e}")
else:
    raise AssertionError("bnscope.watch without torch")
EOF
echo "   python ran in $(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }') s"
echo ">> wheel-check.sh: all checks passed ($(basename "$wheel"))"
