//! The one place that decides which code path computes a forward or training pass, and why.
//!
//! There are three, from fastest to most general:
//! 1. **Graph-free** ([`super::step`]): a whole training step or evaluation pass on host buffers, calling the
//!    kernels directly with no candle autograd graph. CPU, f32, own kernels on, graph-free on.
//! 2. **Custom ops**: each layer is one of bnscope's own kernels wrapped as a candle custom op (`crate::kernels`),
//!    differentiated by candle's autograd. CPU and f32 with the own kernels on; `bench --kernels ops` forces it
//!    for whole steps by switching graph-free off.
//! 3. **Candle**: candle's own tensor ops (composites for BatchNorm and max-pool). Every other device (CUDA) and
//!    dtype, and `bench --kernels candle`, which switches the own kernels off to compare.
//!
//! All three give the same numbers (bit-identical between 1 and 2, `tests/step.rs`; to rounding with 3,
//! `tests/kernels.rs`). The switches exist only so that `bench` can measure each path.
use std::sync::atomic::{AtomicBool, Ordering};

use candle_core::{DType, Tensor};

use super::ResNet;

static OWN_KERNELS: AtomicBool = AtomicBool::new(true);
static GRAPH_FREE: AtomicBool = AtomicBool::new(true);

/// Whether bnscope's own CPU kernels are used (`bench --kernels candle` switches them off to compare).
pub fn own_kernels() -> bool {
    OWN_KERNELS.load(Ordering::Relaxed)
}

pub fn set_own_kernels(on: bool) {
    OWN_KERNELS.store(on, Ordering::Relaxed)
}

/// Whether train steps on the CPU skip candle's autograd (`bench --kernels ops` switches this off to measure the
/// custom ops through autograd).
pub fn graph_free() -> bool {
    GRAPH_FREE.load(Ordering::Relaxed)
}

pub fn set_graph_free(on: bool) {
    GRAPH_FREE.store(on, Ordering::Relaxed)
}

/// Path 2: whether a layer's own custom op applies to these tensors (switch on, CPU, f32). The first time it does,
/// the allocator is tuned (see `crate::runtime::tune_allocator`).
pub fn custom_ops(ts: &[&Tensor]) -> bool {
    let yes = own_kernels() && ts.iter().all(|t| t.device().is_cpu() && t.dtype() == DType::F32);
    if yes {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(crate::runtime::tune_allocator);
    }
    yes
}

/// Path 1: whether the graph-free step and evaluation handle `x` on `model`: graph-free on, custom ops apply to
/// the images, `x` is a batch of images, and every parameter is a contiguous f32 CPU tensor.
pub fn graph_free_applies(model: &ResNet, x: &Tensor) -> bool {
    graph_free()
        && custom_ops(&[x])
        && x.rank() == 4
        && model.bn_layers().iter().all(|b| b.groups().is_none())
        && model
            .params()
            .iter()
            .all(|v| custom_ops(&[v.as_tensor()]) && v.is_contiguous())
}
