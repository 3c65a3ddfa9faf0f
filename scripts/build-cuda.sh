#!/usr/bin/env bash
# Build bnscope with `--features cuda` on a machine that has no CUDA toolkit and
# no GPU, using NVIDIA's PyPI wheels as the toolkit.
#
#   scripts/build-cuda.sh [extra cargo args...]
#
# Idempotent: the wheels are installed once into .cuda-toolchain/ (ignored via
# .git/info/exclude), the build goes to target-cuda/ and is incremental.
#
# Knobs (env): CUDA_COMPUTE_CAP (default 90 = H100/H200), NICE (default 19),
#              CUDA_TOOLCHAIN_DIR (default <repo>/.cuda-toolchain),
#              CARGO_TARGET_DIR (default <repo>/target-cuda), PYTHON (python3).
#
# Why CUDA 13.0 exactly: candle-kernels ships its kernels as PTX; a driver only
# JIT-loads PTX from a toolkit no newer than itself. The GPU machines run driver
# 580.x (= CUDA 13.0), so PTX from nvcc >= 13.1 would fail to load there
# (CUDA_ERROR_UNSUPPORTED_PTX_VERSION). cudarc 0.19.10 also rejects nvcc > 13.4.
# Linking against the oldest 13.x libs keeps the binary happy with any newer
# 13.x libs found at run time (same sonames: libcublas.so.13, ...).
#
# Why a stub libcuda.so: candle-core 0.11.1 enables cudarc's `dynamic-linking`
# feature, so the binary is linked (DT_NEEDED) against libcuda.so.1, libcudart,
# libnvrtc, libcurand, libcublas and libcublasLt. No wheel ships libcuda (it is
# part of the driver), so we generate a link-time stub exporting every driver
# symbol cudarc declares, with SONAME libcuda.so.1. It is only for linking; at
# run time the driver's real libcuda.so.1 is used (see scripts/cuda-env.sh).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TC=${CUDA_TOOLCHAIN_DIR:-$ROOT/.cuda-toolchain}
PYTHON=${PYTHON:-python3}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target-cuda}
export CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-90}
NICE=${NICE:-19}

WHEELS=(
  nvidia-cuda-nvcc==13.0.88      # nvcc, ptxas, fatbinary, nvlink
  nvidia-cuda-crt==13.0.88       # crt/ headers nvcc needs
  nvidia-nvvm==13.0.88           # cicc, libdevice
  nvidia-cuda-runtime==13.0.88   # cuda.h, cuda_runtime.h, cuda_fp16.h, libcudart.so.13
  nvidia-cuda-cccl==13.0.85      # include/cccl (cuda::std, cub, thrust)
  nvidia-cuda-nvrtc==13.0.88     # libnvrtc.so.13 (link time)
  nvidia-cublas==13.0.0.19       # libcublas.so.13, libcublasLt.so.13 (link time)
  nvidia-curand==10.4.0.35       # libcurand.so.10 (link time)
)

SITE=$TC/site
CUDA=$SITE/nvidia/cu13
STAMP=$TC/.wheels
want=$(printf '%s\n' "${WHEELS[@]}")

# --- 1. wheels -------------------------------------------------------------
if [[ ! -f $STAMP || "$(cat "$STAMP")" != "$want" || ! -x $CUDA/bin/nvcc ]]; then
  echo ">> installing CUDA wheels into $SITE" >&2
  rm -rf "$SITE" "$TC/stubs"
  mkdir -p "$TC"
  "$PYTHON" -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --no-deps --no-compile \
    --target "$SITE" "${WHEELS[@]}"
  printf '%s\n' "$want" >"$STAMP"
fi

# --- 2. unversioned link names (wheels ship only libfoo.so.N) ---------------
for l in cudart nvrtc curand cublas cublasLt; do
  if [[ ! -e $CUDA/lib/lib$l.so ]]; then
    so=$(cd "$CUDA/lib" && ls lib$l.so.[0-9]* | sort | head -n1)
    ln -sf "$so" "$CUDA/lib/lib$l.so"
  fi
done

# --- 3. link-time stub for the driver library -------------------------------
STUB=$CUDA/lib/stubs/libcuda.so
if [[ ! -f $STUB ]]; then
  echo ">> generating stub $STUB" >&2
  meta=$(cd "$ROOT" && cargo metadata --format-version 1 --features cuda 2>/dev/null) || meta=
  sys=$(printf '%s' "$meta" | "$PYTHON" -c '
import json, os, sys
try:
    m = json.load(sys.stdin)
except Exception:
    sys.exit(0)
for p in m["packages"]:
    if p["name"] == "cudarc":
        print(os.path.join(os.path.dirname(p["manifest_path"]), "src/driver/sys/mod.rs"))
        break
')
  if [[ -z $sys || ! -f $sys ]]; then
    sys=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/cudarc-0.19.*/src/driver/sys/mod.rs | sort -V | tail -n1)
  fi
  mkdir -p "$(dirname "$STUB")"
  # Every stub returns CUDA_ERROR_NO_DEVICE (100); it is never used at run time
  # on a GPU machine, but lets the binary be smoke-tested here (see below).
  grep -oE '^pub unsafe fn cu[A-Za-z0-9_]+' "$sys" | awk '{print $4}' | sort -u |
    awk '{print "int " $1 "(void) { return 100; }"}' >"$TC/libcuda_stub.c"
  gcc -shared -fPIC -O0 -Wl,-soname,libcuda.so.1 -o "$STUB" "$TC/libcuda_stub.c"
  ln -sf libcuda.so "$(dirname "$STUB")/libcuda.so.1"
fi

# --- 4. build environment --------------------------------------------------
export PATH=$CUDA/bin:$PATH
export CUDA_ROOT=$CUDA CUDA_HOME=$CUDA CUDA_PATH=$CUDA CUDA_TOOLKIT_ROOT_DIR=$CUDA
export NVCC=$CUDA/bin/nvcc
# nvcc's own profile adds -I$CUDA/include and -isystem $CUDA/include/cccl.
export CPATH=$CUDA/include${CPATH:+:$CPATH}
export LIBRARY_PATH=$CUDA/lib:$CUDA/lib/stubs${LIBRARY_PATH:+:$LIBRARY_PATH}
# nvcc itself loads nothing from here, but some host tools may.
export LD_LIBRARY_PATH=$CUDA/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}

nvcc --version | tail -n2 >&2

# --- 5. build ----------------------------------------------------------------
cd "$ROOT"
start=$(date +%s)
rc=0
nice -n "$NICE" cargo build --release --features cuda "$@" || rc=$?
echo ">> cargo build took $(( $(date +%s) - start )) s (exit $rc)" >&2

bin=$CARGO_TARGET_DIR/release/bnscope
if [[ -f $bin ]]; then
  size=$(stat -c %s "$bin")
  echo ">> binary: $bin ($size bytes, $(( size / 1048576 )) MiB)"
  echo ">> CUDA libraries it needs at load time:"
  readelf -d "$bin" | awk '/NEEDED/ {print "   " $NF}' | tr -d '[]' | grep -Ei 'cu|nvrtc' || true
fi
exit $rc
