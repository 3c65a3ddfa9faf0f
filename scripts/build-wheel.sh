#!/usr/bin/env bash
# Builds the bnscope wheel: the `bnscope` binary (Cargo.toml's [profile.dist]) and the `bnscope` Python module
# (python/bnscope) in one wheel, versioned as Cargo.toml. See --help.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PYTHON=${PYTHON:-python3}
TOOLS=${WHEEL_TOOLS_DIR:-$ROOT/.wheel-tools}
MATURIN_VERSION=${MATURIN_VERSION:-1.16.0}
ZIGLANG_VERSION=${ZIGLANG_VERSION:-0.17.1}
OUT=$ROOT/dist
MODE=manylinux
EXTRA=()

usage() {
  cat <<EOF
Usage: scripts/build-wheel.sh [--out DIR] [--native | --cuda] [-- MATURIN_ARGS...]

Builds dist/bnscope-VERSION-py3-none-manylinux_2_17_x86_64.whl: the bnscope binary (profile dist: fat LTO, one
codegen unit, stripped; 12 minutes from a clean target/ on 2 busy cores) and the bnscope Python module. Install it
with: pip install dist/bnscope-*.whl   (then: bnscope --version; python -c "import bnscope")

The wheel is py3-none (any Python 3.9+; the binary does not link Python) and manylinux2014 (glibc 2.17 or newer):
maturin links it with zig (cargo-zigbuild built into maturin) against glibc 2.17's symbols on the only Rust
target installed here, x86_64-unknown-linux-gnu. maturin $MATURIN_VERSION and ziglang $ZIGLANG_VERSION come from PyPI
into $TOOLS/ once (MATURIN_VERSION, ZIGLANG_VERSION, WHEEL_TOOLS_DIR, PYTHON override).

  --out DIR   where the wheel goes (default: dist/)
  --native    no zig: link against this machine's glibc (a linux_x86_64 wheel for machines like this one)
  --cuda      the CUDA build (--features cuda, docs/GPU.md) as a linux_x86_64 wheel for machines like this one.
              Needs a CUDA toolkit in the environment (nvcc on PATH, CUDA_ROOT, CUDA_COMPUTE_CAP: a system
              toolkit, or the environment scripts/build-cuda.sh sets up from NVIDIA's PyPI wheels). Not manylinux
              and not for PyPI: the binary loads libcudart.so.13, libcublas(Lt).so.13, libcurand.so.10,
              libnvrtc.so.13 and the driver's libcuda.so.1 at run time (scripts/cuda-env.sh finds PyTorch's), which
              a manylinux wheel may not link to, so the wheel's check is skipped. For a GPU box without a wheel:
              scripts/build-cuda.sh, or cargo install --path . --profile dist --features cuda.
  -- ARGS     passed on to maturin build (e.g. -- --verbose)

Without the trainer: cargo build --profile dist --no-default-features gives the viewer alone (replay, watch).
EOF
}

while [[ $# -gt 0 ]]; do
  case $1 in
    -h | --help) usage; exit 0 ;;
    --out) OUT=$(realpath -m "$2"); shift 2 ;;
    --native) MODE=native; shift ;;
    --cuda) MODE=cuda; shift ;;
    --) shift; EXTRA+=("$@"); break ;;
    *) echo "build-wheel.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

# --- 1. tools: maturin and zig from PyPI, into their own environment --------------------------------------------
want="maturin==$MATURIN_VERSION ziglang==$ZIGLANG_VERSION"
if [[ ! -x $TOOLS/bin/maturin || "$(cat "$TOOLS/.versions" 2>/dev/null)" != "$want" ]]; then
  echo ">> installing $want into $TOOLS" >&2
  rm -rf "$TOOLS"
  "$PYTHON" -m venv "$TOOLS"
  # shellcheck disable=SC2086
  "$TOOLS/bin/python" -m pip install --quiet --disable-pip-version-check $want
  echo "$want" >"$TOOLS/.versions"
fi
# maturin finds zig as `python -m ziglang` of the Python on PATH.
export PATH=$TOOLS/bin:$PATH

# --- 2. the wheel -------------------------------------------------------------------------------------------------
args=(build --out "$OUT")
case $MODE in
  manylinux) args+=(--zig --compatibility manylinux2014) ;;
  native) args+=(--compatibility linux) ;;
  cuda)
    if ! command -v nvcc >/dev/null; then
      echo "build-wheel.sh --cuda: no nvcc on PATH; set up a CUDA toolkit first (docs/GPU.md)" >&2
      exit 2
    fi
    args+=(--features cuda --compatibility linux --auditwheel skip)
    ;;
esac
cd "$ROOT"
mkdir -p "$OUT"
start=$(date +%s)
echo ">> maturin ${args[*]} ${EXTRA[*]}" >&2
maturin "${args[@]}" "${EXTRA[@]}"
echo ">> maturin took $(($(date +%s) - start)) s" >&2

# --- 3. what was built --------------------------------------------------------------------------------------------
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
wheel=$(ls -t "$OUT"/bnscope-"$version"-*.whl | head -n1)
echo ">> wheel: $wheel ($(stat -c %s "$wheel") bytes)"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$TOOLS/bin/python" - "$wheel" "$tmp" <<'EOF'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    for i in z.infolist():
        print(f"   {i.file_size:>10}  {i.filename}")
        if i.filename.endswith("/scripts/bnscope"):
            z.extract(i, sys.argv[2])
EOF
bin=$(find "$tmp" -name bnscope -type f | head -n1)
if [[ -n $bin ]] && command -v objdump >/dev/null; then
  echo ">> oldest glibc the binary needs: $(objdump -T "$bin" | grep -o 'GLIBC_[0-9.]*' | sort -V | tail -n1)"
fi
