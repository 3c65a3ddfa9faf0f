//! The max-pool layer: the CPU kernel (`crate::kernels::pool`) where custom ops apply, otherwise a composite of
//! candle ops that candle's autograd differentiates.
use candle_core::{Result, Tensor};

use crate::kernels::pool::{self, Window};

/// A square max-pool layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MaxPool {
    window: Window,
}

impl MaxPool {
    pub fn new(kernel: usize, stride: usize, padding: usize) -> Self {
        Self {
            window: Window::new(kernel, stride, padding),
        }
    }

    /// The geometry (for the graph-free step, which calls the kernel directly).
    pub fn window(&self) -> Window {
        self.window
    }

    /// Output `(height, width)` for an `h×w` input, or an error where the window does not fit.
    pub fn out_dims(&self, h: usize, w: usize) -> Result<(usize, usize)> {
        self.window.out_dims(h, w)
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if super::path::custom_ops(&[x]) {
            // Keeps the argmax of each window from the forward pass so the backward pass is a scatter.
            pool::max_pool(x, self.window)
        } else {
            self.forward_composite(x)
        }
    }

    /// The device-independent version built from candle ops. Ties split the gradient here; after a ReLU ties
    /// are zeros whose gradient the ReLU blocks anyway.
    ///
    /// It never calls candle's `max_pool2d`, even where kernel == stride: candle 0.11.1's backward for it multiplies
    /// the output gradient by (number of maxima)/(kernel²) instead of dividing by the number of maxima, so a window
    /// with one maximum passes back a quarter of its gradient for a 2×2 pool (`backprop.rs`, `Op::MaxPool2D`). Found
    /// by the CPU-vs-CUDA agreement check; `tests/models.rs` checks this path against finite differences.
    pub fn forward_composite(&self, x: &Tensor) -> Result<Tensor> {
        let x = self.pool_axis(x, 2)?;
        self.pool_axis(&x, 3)
    }

    /// Pools one spatial axis (separable: max over a 2-D window = max over rows of max over columns).
    fn pool_axis(&self, x: &Tensor, axis: usize) -> Result<Tensor> {
        let n = x.dim(axis)?;
        let out = self.window.out_size(n);
        let Window {
            kernel: k,
            stride: s,
            padding: p,
        } = self.window;
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
