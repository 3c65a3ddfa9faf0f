//! Max-pooling with padding on the CPU: the forward pass keeps each window's argmax, and the backward pass
//! scatters the output gradient to it (the first maximum of the window in row-major order, as PyTorch does;
//! padding is −∞).
//!
//! Why our own: candle 0.11's `max_pool2d` backward only works when kernel == stride (torchvision's ResNet stem
//! pools with a 3×3 window, stride 2, padding 1), and it scales the gradient by (#maxima)/k² instead of
//! 1/#maxima. The model's `MaxPool` layer (`crate::model::MaxPool`) uses this op on the CPU and a composite of
//! candle ops elsewhere; both are tested against finite differences (`tests/models.rs`).
use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};
use rayon::prelude::*;
use std::sync::{Arc, OnceLock};

/// Square max-pool geometry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
}

impl Window {
    pub fn new(kernel: usize, stride: usize, padding: usize) -> Self {
        Self {
            kernel,
            stride,
            padding,
        }
    }

    /// Output side for an input side `n` (at least the kernel with padding; see [`Self::out_dims`]).
    pub fn out_size(&self, n: usize) -> usize {
        (n + 2 * self.padding - self.kernel) / self.stride + 1
    }

    /// Output `(height, width)` for an `h×w` input, or an error where the window does not fit.
    pub fn out_dims(&self, h: usize, w: usize) -> Result<(usize, usize)> {
        if h + 2 * self.padding < self.kernel || w + 2 * self.padding < self.kernel || self.stride == 0 {
            candle_core::bail!(
                "max-pool: a {h}×{w} map is smaller than the {0}×{0} window",
                self.kernel
            );
        }
        Ok((self.out_size(h), self.out_size(w)))
    }
}

impl Window {
    /// Forward on a host slice `(N, C, H, W)`: the pooled map and, per output cell, the flat index (within its
    /// plane) of the window's first maximum (`usize::MAX` for a window of padding only).
    pub(crate) fn forward_saved(&self, src: &[f32], dims: (usize, usize, usize, usize)) -> (Vec<f32>, Vec<usize>) {
        let (n, c, h, w) = dims;
        let (oh, ow) = (self.out_size(h), self.out_size(w));
        let mut dst = vec![0f32; n * c * oh * ow];
        let mut idx = vec![0usize; n * c * oh * ow];
        dst.par_chunks_mut(oh * ow)
            .zip(idx.par_chunks_mut(oh * ow))
            .zip(src.par_chunks(h * w))
            .for_each(|((out, ix), plane)| self.argmax_plane(plane, h, w, oh, ow, out, ix));
        (dst, idx)
    }

    /// For each output cell, the flat index (within its plane) of the first maximum, or `usize::MAX` if the window
    /// holds only padding.
    ///
    /// Speed: the window is clipped to the image once per output cell (no per-element bounds tests), and planes
    /// without NaN take a branch-light comparison; planes with a NaN take the exact original rule (a NaN wins).
    #[allow(clippy::too_many_arguments)] // one plane's geometry; a struct would only rename the same eight values
    fn argmax_plane(&self, src: &[f32], h: usize, w: usize, oh: usize, ow: usize, out: &mut [f32], idx: &mut [usize]) {
        // Branch-free scan (vectorises, unlike a short-circuiting `any`).
        let has_nan = src.iter().fold(false, |a, v| a | v.is_nan());
        let (k, s, p) = (self.kernel, self.stride, self.padding);
        if !has_nan && k == 2 && s == 2 && p == 0 && h >= 2 * oh && w >= 2 * ow {
            // tiny's stem pool: 2×2 windows without clipping; the same first-maximum rule, unrolled.
            for oy in 0..oh {
                let (r0, r1) = (2 * oy * w, (2 * oy + 1) * w);
                for ox in 0..ow {
                    let i = 2 * ox;
                    let (mut best, mut at) = (src[r0 + i], r0 + i);
                    for j in [r0 + i + 1, r1 + i, r1 + i + 1] {
                        if src[j] > best {
                            best = src[j];
                            at = j;
                        }
                    }
                    out[oy * ow + ox] = best;
                    idx[oy * ow + ox] = at;
                }
            }
            return;
        }
        // Clipped window [lo, hi) along one axis for output position o.
        let clip = |o: usize, n: usize| -> (usize, usize) {
            let start = o * s;
            let lo = p.saturating_sub(start).min(k);
            let hi = (n + p).saturating_sub(start).min(k);
            (lo, hi.max(lo))
        };
        for oy in 0..oh {
            let (ky0, ky1) = clip(oy, h);
            for ox in 0..ow {
                let (kx0, kx1) = clip(ox, w);
                let mut best = f32::NEG_INFINITY;
                let mut at = usize::MAX;
                for ky in ky0..ky1 {
                    let row = (oy * s + ky - p) * w + ox * s - p;
                    let cells = &src[row + kx0..row + kx1];
                    if !has_nan {
                        for (j, &v) in cells.iter().enumerate() {
                            if v > best || at == usize::MAX {
                                best = v;
                                at = row + kx0 + j;
                            }
                        }
                    } else {
                        for (j, &v) in cells.iter().enumerate() {
                            if v > best || v.is_nan() || at == usize::MAX {
                                best = v;
                                at = row + kx0 + j;
                                if v.is_nan() {
                                    break;
                                }
                            }
                        }
                    }
                }
                out[oy * ow + ox] = best;
                idx[oy * ow + ox] = at;
            }
        }
    }
}

/// Max-pools `x (N, C, H, W)` with the CPU op that keeps the argmax for its backward pass.
pub fn max_pool(x: &Tensor, pool: Window) -> Result<Tensor> {
    x.contiguous()?.apply_op1(MaxPoolSaved {
        pool,
        idx: Arc::new(OnceLock::new()),
    })
}

/// The forward op of [`max_pool`]. It keeps each window's argmax (within its plane) so
/// that the backward pass scatters instead of searching again.
struct MaxPoolSaved {
    pool: Window,
    idx: Arc<OnceLock<Vec<usize>>>,
}

impl CustomOp1 for MaxPoolSaved {
    fn name(&self) -> &'static str {
        "bnscope-maxpool2d"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let (n, c, h, w) = layout.shape().dims4()?;
        let src = super::buf::slice(storage, layout, "max-pool")?;
        let (oh, ow) = self.pool.out_dims(h, w)?;
        let (dst, idx) = self.pool.forward_saved(src, (n, c, h, w));
        let _ = self.idx.set(idx);
        Ok((CpuStorage::F32(dst), Shape::from((n, c, oh, ow))))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        match self.idx.get() {
            Some(idx) => {
                let op = MaxPoolScatter {
                    idx,
                    dims: arg.dims4()?,
                };
                Ok(Some(grad_res.contiguous()?.apply_op1_no_bwd(&op)?))
            }
            None => candle_core::bail!("max-pool backward: the forward pass kept no argmax"),
        }
    }
}

/// `grad_output -> grad_input` from saved argmax indices.
struct MaxPoolScatter<'a> {
    idx: &'a [usize],
    dims: (usize, usize, usize, usize),
}

impl CustomOp1 for MaxPoolScatter<'_> {
    fn name(&self) -> &'static str {
        "bnscope-maxpool2d-scatter"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let (n, c, h, w) = self.dims;
        let grad = super::buf::slice(storage, layout, "max-pool")?;
        let planes = n * c;
        if grad.len() != self.idx.len() || planes == 0 || grad.len() % planes != 0 {
            candle_core::bail!(
                "max-pool backward: gradient of {} cells for {} indices",
                grad.len(),
                self.idx.len()
            );
        }
        let dst = scatter(grad, self.idx, (n, c, h, w));
        Ok((CpuStorage::F32(dst), Shape::from((n, c, h, w))))
    }
}

/// Input gradient `(N, C, H, W)` of a max-pool from the output gradient and the argmax indices of
/// [`Window::forward_saved`] (the caller checks that the gradient has one cell per index and whole planes).
pub(crate) fn scatter(grad: &[f32], idx: &[usize], dims: (usize, usize, usize, usize)) -> Vec<f32> {
    let (n, c, h, w) = dims;
    let per = grad.len() / (n * c).max(1);
    let mut dst = vec![0f32; n * c * h * w];
    if per == 0 {
        return dst;
    }
    dst.par_chunks_mut(h * w)
        .zip(grad.par_chunks(per))
        .zip(idx.par_chunks(per))
        .for_each(|((gin, gout), idx)| {
            for (&i, &g) in idx.iter().zip(gout) {
                if i != usize::MAX {
                    gin[i] += g;
                }
            }
        });
    dst
}
