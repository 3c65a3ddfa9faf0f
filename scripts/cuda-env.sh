# shellcheck shell=bash
# Source this on the GPU machine before running the CUDA build of bnscope:
#
#   source scripts/cuda-env.sh [path/to/bnscope]
#
# The CUDA build (candle-core 0.11.1 -> cudarc `dynamic-linking`) is linked at
# load time against:
#   libcuda.so.1        (NVIDIA driver)
#   libcudart.so.13     (pip: nvidia-cuda-runtime)
#   libnvrtc.so.13      (pip: nvidia-cuda-nvrtc; it dlopens libnvrtc-builtins.so.13.x beside it)
#   libcurand.so.10     (pip: nvidia-curand)
#   libcublas.so.13, libcublasLt.so.13 (pip: nvidia-cublas)
# PyTorch's CUDA 13 wheels install those under site-packages/nvidia/cu13/lib
# (older layouts: site-packages/nvidia/<pkg>/lib). This puts every such dir on
# LD_LIBRARY_PATH, plus the driver's dir if the loader can't find libcuda.so.1.
# With a binary path given (or ./target-cuda/release/bnscope present) it checks
# that every needed library resolves and says which one does not.
# Never put .cuda-toolchain/.../lib/stubs on LD_LIBRARY_PATH on a GPU machine:
# that libcuda.so is a link-time stub that answers "no device" to everything.

_bn_cuda_dirs() {
  local py
  # Every python that may hold the nvidia wheels; the GPU image's is /opt/torch/.venv.
  for py in "${PYTHON:-}" python3 /opt/torch/.venv/bin/python3 python; do
    [ -n "$py" ] && command -v "$py" >/dev/null 2>&1 || continue
    "$py" - <<'EOF' 2>/dev/null
import glob, os, site, sys
roots = []
try:
    import nvidia  # namespace package: may span several site dirs
    roots += [os.path.dirname(p) for p in nvidia.__path__]
except Exception:
    pass
try:
    roots += site.getsitepackages() + [site.getusersitepackages()]
except Exception:
    pass
roots += sys.path
seen = set()
for r in roots:
    if not r or not os.path.isdir(os.path.join(r, "nvidia")):
        continue
    # nvidia/cu13/lib (CUDA 13 wheels), nvidia/<pkg>/lib (CUDA 12 wheels)
    for d in sorted(glob.glob(os.path.join(r, "nvidia", "*", "lib"))):
        d = os.path.realpath(d)
        if d not in seen and glob.glob(os.path.join(d, "*.so*")):
            seen.add(d)
            print(d)
EOF
  done
  # No python found the wheels: try the usual places directly.
  ls -d /opt/*/.venv/lib/python3*/site-packages/nvidia/*/lib \
        /usr/local/lib/python3*/dist-packages/nvidia/*/lib \
        /usr/local/lib/python3*/site-packages/nvidia/*/lib \
        /usr/lib/python3/dist-packages/nvidia/*/lib 2>/dev/null
  # System toolkit as a last resort (also has libcublas.so.13 etc.).
  for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib; do
    [ -d "$d" ] && echo "$d"
  done
}

_bn_cuda_setup() {
  local d new="" bin="${1:-}"
  while IFS= read -r d; do
    [ -n "$d" ] || continue
    case ":$new:" in *":$d:"*) continue ;; esac
    new="${new:+$new:}$d"
  done <<EOF
$(_bn_cuda_dirs)
EOF
  # The driver's libcuda.so.1: normally known to ld.so.cache; if not, add its dir.
  if ! ldconfig -p 2>/dev/null | grep -q 'libcuda\.so\.1 '; then
    for d in /usr/local/nvidia/lib64 /usr/local/nvidia/lib /usr/lib/x86_64-linux-gnu /usr/lib64 /usr/lib/wsl/lib; do
      if [ -e "$d/libcuda.so.1" ]; then new="${new:+$new:}$d"; break; fi
    done
  fi
  if [ -z "$new" ]; then
    echo "cuda-env.sh: found no site-packages/nvidia/*/lib dir (is PyTorch's python on PATH? set PYTHON=...)" >&2
  else
    export LD_LIBRARY_PATH="$new${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  fi

  if [ -z "$bin" ]; then
    for d in ./target-cuda/release/bnscope ./bnscope; do
      [ -x "$d" ] && { bin=$d; break; }
    done
  fi
  if [ -n "$bin" ] && command -v ldd >/dev/null 2>&1; then
    local missing
    missing=$(ldd "$bin" 2>&1 | grep 'not found')
    if [ -n "$missing" ]; then
      echo "cuda-env.sh: $bin still misses:" >&2
      echo "$missing" >&2
      return 1
    fi
    echo "cuda-env.sh: all libraries of $bin resolve:" >&2
    ldd "$bin" | grep -E 'libcu|nvrtc' >&2
  fi
  return 0
}

_bn_cuda_setup "$@"
