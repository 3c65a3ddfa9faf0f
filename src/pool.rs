//! Max-pooling with padding and a backward pass.
//!
//! candle 0.11's `max_pool2d` backward only works when kernel == stride, but torchvision's ResNet stem pools with
//! a 3×3 window, stride 2 and padding 1. This module provides that op:
//! * on the CPU, a direct kernel written here as a candle `CustomOp1` (forward) whose backward routes each output
//!   gradient to the first maximum of its window, in row-major order, as PyTorch does; padding is −∞;
//! * on other devices, a composition of candle ops (−∞ padding, strided selection by reshaping, `maximum`), so
//!   candle's autograd differentiates it. Ties split the gradient there; after a ReLU ties are zeros whose
//!   gradient the ReLU blocks anyway.
//!
//! Both are tested against finite differences and against each other (`tests/models.rs`).
use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;
use std::sync::atomic::{AtomicBool, Ordering};

static OWN_KERNELS: AtomicBool = AtomicBool::new(true);

/// Whether bnscope's own CPU kernels are used (`bench --kernels candle` switches them off to compare).
pub fn own_kernels() -> bool {
    OWN_KERNELS.load(Ordering::Relaxed)
}

pub fn set_own_kernels(on: bool) {
    OWN_KERNELS.store(on, Ordering::Relaxed)
}

/// Square max-pool geometry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MaxPool {
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
}

impl MaxPool {
    pub fn new(kernel: usize, stride: usize, padding: usize) -> Self {
        Self {
            kernel,
            stride,
            padding,
        }
    }

    /// Output side for an input side `n`.
    pub fn out_size(&self, n: usize) -> usize {
        (n + 2 * self.padding - self.kernel) / self.stride + 1
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if own_kernels() && x.device().is_cpu() && x.dtype() == candle_core::DType::F32 {
            x.contiguous()?.apply_op1(*self)
        } else {
            self.forward_composite(x)
        }
    }

    /// The device-independent version built from candle ops.
    pub fn forward_composite(&self, x: &Tensor) -> Result<Tensor> {
        if self.padding == 0 && self.kernel == self.stride {
            return x.max_pool2d(self.kernel);
        }
        let x = self.pool_axis(x, 2)?;
        self.pool_axis(&x, 3)
    }

    /// Pools one spatial axis (separable: max over a 2-D window = max over rows of max over columns).
    fn pool_axis(&self, x: &Tensor, axis: usize) -> Result<Tensor> {
        let n = x.dim(axis)?;
        let out = self.out_size(n);
        let (k, s, p) = (self.kernel, self.stride, self.padding);
        // Enough −∞ cells on the right that every window offset can take `out·s` cells.
        let total = (k - 1 + out * s).max(n + 2 * p);
        let right = total - n - p;
        let mut dims = x.dims().to_vec();
        let mut parts = Vec::with_capacity(3);
        if p > 0 {
            dims[axis] = p;
            parts.push(Tensor::full(f32::NEG_INFINITY, dims.clone(), x.device())?.to_dtype(x.dtype())?);
        }
        parts.push(x.clone());
        if right > 0 {
            dims[axis] = right;
            parts.push(Tensor::full(f32::NEG_INFINITY, dims.clone(), x.device())?.to_dtype(x.dtype())?);
        }
        let padded = Tensor::cat(&parts, axis)?;
        let mut best: Option<Tensor> = None;
        for offset in 0..k {
            let window = padded.narrow(axis, offset, out * s)?;
            let mut split = window.dims().to_vec();
            split[axis] = out;
            split.insert(axis + 1, s);
            let picked = window.reshape(split)?.narrow(axis + 1, 0, 1)?.squeeze(axis + 1)?;
            best = Some(match best {
                None => picked,
                Some(b) => b.maximum(&picked)?,
            });
        }
        Ok(best.expect("kernel >= 1"))
    }
}

fn contiguous<'a>(s: &'a CpuStorage, l: &Layout) -> Result<&'a [f32]> {
    let (a, b) = l
        .contiguous_offsets()
        .ok_or_else(|| candle_core::Error::Msg("max-pool: input must be contiguous".into()))?;
    Ok(&s.as_slice::<f32>()?[a..b])
}

impl MaxPool {
    /// For each output cell, the flat index (within its plane) of the first maximum, or `usize::MAX` if the window
    /// holds only padding.
    fn argmax_plane(
        &self,
        src: &[f32],
        h: usize,
        w: usize,
        oh: usize,
        ow: usize,
        out: &mut [f32],
        idx: Option<&mut [usize]>,
    ) {
        let (k, s, p) = (self.kernel, self.stride, self.padding);
        let mut idx = idx;
        for oy in 0..oh {
            for ox in 0..ow {
                let mut best = f32::NEG_INFINITY;
                let mut at = usize::MAX;
                for ky in 0..k {
                    let y = (oy * s + ky) as isize - p as isize;
                    if y < 0 || y >= h as isize {
                        continue;
                    }
                    for kx in 0..k {
                        let xx = (ox * s + kx) as isize - p as isize;
                        if xx < 0 || xx >= w as isize {
                            continue;
                        }
                        let i = y as usize * w + xx as usize;
                        let v = src[i];
                        if v > best || v.is_nan() || at == usize::MAX {
                            best = v;
                            at = i;
                            if v.is_nan() {
                                break;
                            }
                        }
                    }
                }
                out[oy * ow + ox] = best;
                if let Some(idx) = idx.as_deref_mut() {
                    idx[oy * ow + ox] = at;
                }
            }
        }
    }
}

impl CustomOp1 for MaxPool {
    fn name(&self) -> &'static str {
        "bnscope-maxpool2d"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let (n, c, h, w) = layout.shape().dims4()?;
        let src = contiguous(storage, layout)?;
        let (oh, ow) = (self.out_size(h), self.out_size(w));
        let mut dst = vec![0f32; n * c * oh * ow];
        dst.par_chunks_mut(oh * ow)
            .zip(src.par_chunks(h * w))
            .for_each(|(out, plane)| self.argmax_plane(plane, h, w, oh, ow, out, None));
        Ok((CpuStorage::F32(dst), Shape::from((n, c, oh, ow))))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        let g = arg.apply_op2_no_bwd(&grad_res.contiguous()?, &MaxPoolBackward(*self))?;
        Ok(Some(g))
    }
}

/// Gradient of [`MaxPool`] with respect to its input: `(input, grad_output) -> grad_input`.
struct MaxPoolBackward(MaxPool);

impl CustomOp2 for MaxPoolBackward {
    fn name(&self) -> &'static str {
        "bnscope-maxpool2d-backward"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (n, c, h, w) = l1.shape().dims4()?;
        let (_, _, oh, ow) = l2.shape().dims4()?;
        let src = contiguous(s1, l1)?;
        let grad = contiguous(s2, l2)?;
        let mut dst = vec![0f32; n * c * h * w];
        dst.par_chunks_mut(h * w)
            .zip(src.par_chunks(h * w))
            .zip(grad.par_chunks(oh * ow))
            .for_each(|((gin, plane), gout)| {
                let mut scratch = vec![0f32; oh * ow];
                let mut idx = vec![0usize; oh * ow];
                self.0.argmax_plane(plane, h, w, oh, ow, &mut scratch, Some(&mut idx));
                for (&i, &g) in idx.iter().zip(gout) {
                    if i != usize::MAX {
                        gin[i] += g;
                    }
                }
            });
        Ok((CpuStorage::F32(dst), Shape::from((n, c, h, w))))
    }
}
