//! One-pass in-place Adam update.
//!
//! Why: the tensor-op version in `crate::optim` runs ~10 candle ops per parameter (each an allocation and a full
//! pass); for tiny that is ~300 small ops per step, for resnet50 ~10 passes over 25 M floats. This kernel reads
//! p, g, m, v once and writes p, m, v once. The arithmetic is the same as the tensor version (PyTorch's):
//! `m ← β₁m + (1−β₁)g`, `v ← β₂v + (1−β₂)g²`, `p ← p − (lr/c₁)·m/(√(v/c₂) + ε)`; in Keras' form
//! ([`AdamForm::Keras`]) ε goes to the uncorrected √v: `p ← p − (lr·√c₂/c₁)·m/(√v + ε)`.
use std::cell::RefCell;

use candle_core::{CpuStorage, InplaceOp2, Layout, Result, Tensor};
use rayon::prelude::*;

/// Where ε goes: PyTorch adds it after the bias correction (`m̂/(√v̂ + ε)`), Keras 3 (`keras.optimizers.Adam`)
/// to the uncorrected √v (`lr·√(1−β₂ᵗ)/(1−β₁ᵗ) · m/(√v + ε)`), which is `√c₂` times PyTorch's ε in effect (31.6× at
/// step 1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AdamForm {
    #[default]
    Torch,
    Keras,
}

/// Hyper-parameters of one step (`c1`, `c2`: the bias corrections `1 − βᵗ`).
#[derive(Clone, Copy, Debug)]
pub struct AdamStep {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub c1: f64,
    pub c2: f64,
    pub form: AdamForm,
}

impl AdamStep {
    /// The step size and the factor on v under the square root: `(lr/c₁, 1/c₂)` for PyTorch, `(lr·√c₂/c₁, 1)` for
    /// Keras (so that one kernel computes both).
    pub fn coefficients(&self) -> (f64, f64) {
        match self.form {
            AdamForm::Torch => (self.lr / self.c1, 1.0 / self.c2),
            AdamForm::Keras => (self.lr * self.c2.sqrt() / self.c1, 1.0),
        }
    }
}

/// The update on host slices (all the same length).
#[allow(clippy::type_complexity)]
pub fn update(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], h: &AdamStep) {
    let (b1, b2) = (h.beta1 as f32, h.beta2 as f32);
    let (ob1, ob2) = ((1.0 - h.beta1) as f32, (1.0 - h.beta2) as f32);
    let (step, inv_c2) = h.coefficients();
    let (step, inv_c2) = (step as f32, inv_c2 as f32);
    let eps = h.eps as f32;
    let k = Coeffs {
        b1,
        b2,
        ob1,
        ob2,
        step,
        inv_c2,
        eps,
    };
    #[cfg(target_arch = "x86_64")]
    let wide = std::arch::is_x86_feature_detected!("avx512f");
    #[cfg(not(target_arch = "x86_64"))]
    let wide = false;
    let body = |(((p, g), m), v): (((&mut [f32], &[f32]), &mut [f32]), &mut [f32])| {
        #[cfg(target_arch = "x86_64")]
        if wide {
            // SAFETY: AVX-512F was detected at run time.
            unsafe { chunk_avx512(p, g, m, v, &k) };
            return;
        }
        let _ = wide;
        chunk(p, g, m, v, &k);
    };
    const CHUNK: usize = 1 << 14;
    if p.len() <= CHUNK {
        body((((p, g), m), v));
    } else {
        p.par_chunks_mut(CHUNK)
            .zip(g.par_chunks(CHUNK))
            .zip(m.par_chunks_mut(CHUNK))
            .zip(v.par_chunks_mut(CHUNK))
            .for_each(body);
    }
}

/// The per-step constants of [`update`] in f32.
struct Coeffs {
    b1: f32,
    b2: f32,
    ob1: f32,
    ob2: f32,
    step: f32,
    inv_c2: f32,
    eps: f32,
}

#[inline(always)]
fn chunk(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], k: &Coeffs) {
    for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
        let mm = k.b1 * *m + k.ob1 * g;
        let vv = k.b2 * *v + k.ob2 * (g * g);
        *m = mm;
        *v = vv;
        *p -= k.step * (mm / ((vv * k.inv_c2).sqrt() + k.eps));
    }
}

/// [`chunk`] compiled for AVX-512 (16 lanes instead of SSE's 4). The same IEEE operations in the same order (no
/// FMA contraction), so the result is bit-identical.
///
/// # Safety
/// The CPU must support AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn chunk_avx512(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], k: &Coeffs) {
    chunk(p, g, m, v, k)
}

/// Applies [`update`] to the storage of `p` (a parameter on the CPU, f32, contiguous) with gradient `g`.
pub fn step(p: &Tensor, g: &Tensor, m: &mut [f32], v: &mut [f32], h: &AdamStep) -> Result<()> {
    let op = InPlace {
        moments: RefCell::new((m, v)),
        h: *h,
    };
    p.inplace_op2(&g.contiguous()?, &op)
}

struct InPlace<'a> {
    moments: RefCell<(&'a mut [f32], &'a mut [f32])>,
    h: AdamStep,
}

impl InplaceOp2 for InPlace<'_> {
    fn name(&self) -> &'static str {
        "bnscope-adam"
    }

    fn cpu_fwd(&self, s1: &mut CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<()> {
        let (a, b) = l1
            .contiguous_offsets()
            .ok_or_else(|| candle_core::Error::Msg("adam: parameter must be contiguous".into()))?;
        let g = super::buf::slice(s2, l2, "adam")?;
        let p = match s1 {
            CpuStorage::F32(v) => &mut v[a..b],
            _ => candle_core::bail!("adam: parameter must be f32"),
        };
        let mut mv = self.moments.borrow_mut();
        let (m, v) = &mut *mv;
        if g.len() != p.len() || m.len() != p.len() || v.len() != p.len() {
            candle_core::bail!(
                "adam: {} parameters, {} gradients, {}/{} moments",
                p.len(),
                g.len(),
                m.len(),
                v.len()
            );
        }
        update(p, g, m, v, &self.h);
        Ok(())
    }
}
