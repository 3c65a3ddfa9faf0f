//! Fused train-mode BatchNorm2d (batch statistics) forward and backward, optionally with the ReLU that follows it
//! and with a ResNet block's residual tail (`relu(bn(x) + skip)`).
//!
//! Why: the composite version in `crate::model::batchnorm` is ~10 candle ops forward (sum, sub, sqr, sum, add, sqrt, recip,
//! 3 broadcast ops) and about twice as many in the backward pass, each a full pass over the activation plus an
//! allocation; it was ~26 % of a small ResNet's step. The ReLU after it and the residual `relu(y + skip)` cost
//! candle another ~8 activation-sized passes each in the backward pass (its ReLU gradient is `ge`, `to_dtype`,
//! `mul`, and autograd adds every gradient into a fresh zero tensor), so they are folded in here. Per channel (the
//! channel's `N` planes stay in cache):
//!
//! * forward: mean, then the biased variance `Σ(x−μ)²/M` (two passes, not `E[x²]−μ²`, for accuracy), then
//!   `y = x·a + b [+ skip]`, `[max(·, 0)]`, with `a = γ/√(σ²+ε)`, `b = β − μ·a`; `M = N·H·W`. The batch mean
//!   and biased variance are returned to the caller so that `crate::model::batchnorm` can update its running statistics;
//! * backward: `g = dy·[y > 0]` with ReLU (PyTorch's rule; candle's `relu` passes the gradient at exactly 0 too,
//!   a measure-zero difference), `g = dy` without; `dskip = g`; `dβ = Σg`, `dγ = Σg·x̂`,
//!   `dx = γ/√(σ²+ε)·(g − dβ/M − x̂·dγ/M)`, `x̂ = (x−μ)/√(σ²+ε)`.
//!
//! Sums are accumulated in 16 f32 lanes per plane and combined in f64.
use std::sync::{Arc, OnceLock};

use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use std::mem::MaybeUninit;

use super::buf::{output_uninit, slice, SendPtr};

/// Below this many elements a pass runs on one thread.
const PAR_MIN: usize = 1 << 14;

/// Train-mode batch normalisation of `x (N, C, H, W)` with affine `gamma`, `beta` (`C`). Returns `y`, the batch
/// mean and the biased batch variance (`C` each, host vectors).
pub fn batch_norm_train(x: &Tensor, gamma: &Tensor, beta: &Tensor, eps: f64) -> Result<(Tensor, Vec<f32>, Vec<f32>)> {
    bn_op(x, gamma, beta, eps, false)
}

/// As [`batch_norm_train`], with the ReLU fused: `y = max(bn(x), 0)`.
pub fn batch_norm_relu_train(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    eps: f64,
) -> Result<(Tensor, Vec<f32>, Vec<f32>)> {
    bn_op(x, gamma, beta, eps, true)
}

/// A residual block's tail in one op: `y = max(bn(x) + skip, 0)`, with gradients for `x`, `skip`, `gamma` and
/// `beta`. (`gamma` and `beta` enter as one concatenated tensor, since a candle op takes at most three inputs; the
/// `cat` is `2·C` floats.)
pub fn batch_norm_add_relu_train(
    x: &Tensor,
    skip: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    eps: f64,
) -> Result<(Tensor, Vec<f32>, Vec<f32>)> {
    if skip.shape() != x.shape() {
        candle_core::bail!("batch-norm + add: skip {:?} vs input {:?}", skip.shape(), x.shape());
    }
    let saved = Arc::new(OnceLock::new());
    let op = BnTrain {
        eps,
        relu: true,
        add: true,
        saved: saved.clone(),
    };
    let gb = Tensor::cat(&[gamma, beta], 0)?;
    let y = x.contiguous()?.apply_op3(&skip.contiguous()?, &gb, op)?;
    take_stats(y, &saved)
}

fn bn_op(x: &Tensor, gamma: &Tensor, beta: &Tensor, eps: f64, relu: bool) -> Result<(Tensor, Vec<f32>, Vec<f32>)> {
    let saved = Arc::new(OnceLock::new());
    let op = BnTrain {
        eps,
        relu,
        add: false,
        saved: saved.clone(),
    };
    let y = x
        .contiguous()?
        .apply_op3(&gamma.contiguous()?, &beta.contiguous()?, op)?;
    take_stats(y, &saved)
}

fn take_stats(y: Tensor, saved: &OnceLock<Stats>) -> Result<(Tensor, Vec<f32>, Vec<f32>)> {
    let s = saved
        .get()
        .ok_or_else(|| candle_core::Error::Msg("batch-norm: statistics missing".into()))?;
    Ok((y, s.mean.clone(), s.var.clone()))
}

/// Per-channel batch statistics (and γ) saved by the forward pass for the backward one.
#[derive(Debug)]
pub(crate) struct Stats {
    pub(crate) mean: Vec<f32>,
    pub(crate) var: Vec<f32>,
    pub(crate) inv_std: Vec<f32>,
    pub(crate) gamma: Vec<f32>,
}

/// The forward op. Inputs `(x, γ, β)`, or `(x, skip, [γ | β])` with `add`.
struct BnTrain {
    eps: f64,
    relu: bool,
    add: bool,
    saved: Arc<OnceLock<Stats>>,
}

#[inline]
fn sum(a: &[f32]) -> f64 {
    let mut acc = [0f32; 16];
    let mut it = a.chunks_exact(16);
    for c in &mut it {
        for i in 0..16 {
            acc[i] += c[i];
        }
    }
    let tail: f32 = it.remainder().iter().sum();
    acc.iter().map(|&v| v as f64).sum::<f64>() + tail as f64
}

#[inline]
fn sum_sq_dev(a: &[f32], mean: f32) -> f64 {
    let mut acc = [0f32; 16];
    let mut it = a.chunks_exact(16);
    for c in &mut it {
        for i in 0..16 {
            let d = c[i] - mean;
            acc[i] += d * d;
        }
    }
    let tail: f32 = it.remainder().iter().map(|&v| (v - mean) * (v - mean)).sum();
    acc.iter().map(|&v| v as f64).sum::<f64>() + tail as f64
}

/// `(Σ g, Σ g·(x − mean))` with `g = dy` where `mask` is `None` or positive, else 0. With `gout`, `g` is also
/// written there.
#[inline]
fn sums_dy(
    dy: &[f32],
    x: &[f32],
    mask: Option<&[f32]>,
    mean: f32,
    gout: Option<&mut [MaybeUninit<f32>]>,
) -> (f64, f64) {
    #[inline(always)]
    fn body<const M: bool, const W: bool>(
        dy: &[f32],
        x: &[f32],
        mask: &[f32],
        mean: f32,
        gout: &mut [MaybeUninit<f32>],
    ) -> (f64, f64) {
        let n = dy.len();
        let (mut a, mut b) = ([0f32; 16], [0f32; 16]);
        let full = n / 16 * 16;
        let mut i = 0;
        while i < full {
            for l in 0..16 {
                let mut g = dy[i + l];
                if M && mask[i + l] <= 0.0 {
                    g = 0.0;
                }
                if W {
                    gout[i + l] = MaybeUninit::new(g);
                }
                a[l] += g;
                b[l] += g * (x[i + l] - mean);
            }
            i += 16;
        }
        let (mut ta, mut tb) = (0f32, 0f32);
        for j in full..n {
            let mut g = dy[j];
            if M && mask[j] <= 0.0 {
                g = 0.0;
            }
            if W {
                gout[j] = MaybeUninit::new(g);
            }
            ta += g;
            tb += g * (x[j] - mean);
        }
        (
            a.iter().map(|&v| v as f64).sum::<f64>() + ta as f64,
            b.iter().map(|&v| v as f64).sum::<f64>() + tb as f64,
        )
    }
    let n = dy.len();
    let x = &x[..n];
    match (mask, gout) {
        (None, None) => body::<false, false>(dy, x, &[], mean, &mut []),
        (Some(m), None) => body::<true, false>(dy, x, &m[..n], mean, &mut []),
        (None, Some(g)) => body::<false, true>(dy, x, &[], mean, &mut g[..n]),
        (Some(m), Some(g)) => body::<true, true>(dy, x, &m[..n], mean, &mut g[..n]),
    }
}

fn for_channels(c: usize, total: usize, f: impl Fn(usize) + Sync + Send) {
    if total < PAR_MIN {
        (0..c).for_each(f);
    } else {
        (0..c).into_par_iter().for_each(f);
    }
}

/// `out = x·a + b [+ skip]`, `[max(·, 0)]` over one plane.
#[inline]
fn affine_plane(out: &mut [MaybeUninit<f32>], x: &[f32], skip: Option<&[f32]>, a: f32, b: f32, relu: bool) {
    match (skip, relu) {
        (None, false) => {
            for (o, &v) in out.iter_mut().zip(x) {
                o.write(v * a + b);
            }
        }
        (None, true) => {
            for (o, &v) in out.iter_mut().zip(x) {
                o.write((v * a + b).max(0.0));
            }
        }
        (Some(s), false) => {
            for ((o, &v), &s) in out.iter_mut().zip(x).zip(s) {
                o.write(v * a + b + s);
            }
        }
        (Some(s), true) => {
            for ((o, &v), &s) in out.iter_mut().zip(x).zip(s) {
                o.write((v * a + b + s).max(0.0));
            }
        }
    }
}

/// Forward on host slices: returns `(y, stats)`.
pub(crate) fn forward(
    x: &[f32],
    skip: Option<&[f32]>,
    gamma: &[f32],
    beta: &[f32],
    dims: (usize, usize, usize),
    eps: f64,
    relu: bool,
) -> (Vec<f32>, Stats) {
    let (n, c, hw) = dims;
    let m = (n * hw) as f64;
    let mut mean = vec![0f32; c];
    let mut var = vec![0f32; c];
    let mut inv_std = vec![0f32; c];
    let (mp, vp, ip) = (
        SendPtr(mean.as_mut_ptr()),
        SendPtr(var.as_mut_ptr()),
        SendPtr(inv_std.as_mut_ptr()),
    );
    let fill = |yp: SendPtr| {
        for_channels(c, x.len(), |ch| {
            let plane = |i: usize| &x[(i * c + ch) * hw..][..hw];
            let mu = ((0..n).map(|i| sum(plane(i))).sum::<f64>() / m) as f32;
            let v = ((0..n).map(|i| sum_sq_dev(plane(i), mu)).sum::<f64>() / m) as f32;
            let is = (1.0 / (v as f64 + eps).sqrt()) as f32;
            let a = gamma[ch] * is;
            let b = beta[ch] - mu * a;
            for i in 0..n {
                let off = (i * c + ch) * hw;
                // SAFETY: plane (i, ch) of y and element ch of the stats are written by this task only.
                let out = unsafe { yp.uninit(off, hw) };
                affine_plane(out, plane(i), skip.map(|s| &s[off..off + hw]), a, b, relu);
            }
            unsafe {
                mp.slice_mut(ch, 1)[0] = mu;
                vp.slice_mut(ch, 1)[0] = v;
                ip.slice_mut(ch, 1)[0] = is;
            }
        })
    };
    // SAFETY: the channel tasks together write every plane of y (affine_plane writes each element).
    let y = unsafe { output_uninit(x.len(), fill) };
    let gamma = gamma.to_vec();
    (
        y,
        Stats {
            mean,
            var,
            inv_std,
            gamma,
        },
    )
}

/// `y = x·a + b [+ skip]`, `[max(·, 0)]` per channel (`a`, `b`: `C` each): BatchNorm with fixed statistics.
pub(crate) fn affine(
    x: &[f32],
    skip: Option<&[f32]>,
    a: &[f32],
    b: &[f32],
    dims: (usize, usize, usize),
    relu: bool,
) -> Vec<f32> {
    let (n, c, hw) = dims;
    let fill = |yp: SendPtr| {
        for_channels(c, x.len(), |ch| {
            for i in 0..n {
                let off = (i * c + ch) * hw;
                // SAFETY: plane (i, ch) of y is written by this task only.
                let out = unsafe { yp.uninit(off, hw) };
                affine_plane(
                    out,
                    &x[off..off + hw],
                    skip.map(|s| &s[off..off + hw]),
                    a[ch],
                    b[ch],
                    relu,
                );
            }
        })
    };
    // SAFETY: the channel tasks together write every plane of y.
    unsafe { output_uninit(x.len(), fill) }
}

/// Backward on host slices: `[dx | dskip (with add) | dγ | dβ]`. `mask` (the forward output) applies the ReLU.
pub(crate) fn backward(
    x: &[f32],
    dy: &[f32],
    mask: Option<&[f32]>,
    add: bool,
    s: &Stats,
    dims: (usize, usize, usize),
) -> Vec<f32> {
    let (n, c, hw) = dims;
    let m = (n * hw) as f64;
    let len = x.len();
    let nskip = if add { len } else { 0 };
    let stats_at = len + nskip;
    let fill = |op: SendPtr| {
        for_channels(c, len, |ch| {
            let (mu, is) = (s.mean[ch], s.inv_std[ch]);
            let (mut sdy, mut sdyx) = (0f64, 0f64);
            for i in 0..n {
                let off = (i * c + ch) * hw;
                // SAFETY: plane (i, ch) of dskip is written by this task only.
                let gout = add.then(|| unsafe { op.uninit(len + off, hw) });
                let (a, b) = sums_dy(
                    &dy[off..][..hw],
                    &x[off..][..hw],
                    mask.map(|k| &k[off..][..hw]),
                    mu,
                    gout,
                );
                sdy += a;
                sdyx += b;
            }
            let dgamma = sdyx * is as f64;
            let k1 = s.gamma[ch] * is;
            let mean_dy = (sdy / m) as f32;
            let k2 = (dgamma / m) as f32 * is; // multiplies (x − μ)
            for i in 0..n {
                let off = (i * c + ch) * hw;
                // SAFETY: plane (i, ch) of dx and entries stats_at+ch, stats_at+c+ch are written by this task only;
                // plane (i, ch) of dskip was finished above by this task.
                let dst = unsafe { op.uninit(off, hw) };
                let xs = &x[off..][..hw];
                if add {
                    // SAFETY: initialised by sums_dy above.
                    let g = unsafe { op.slice_mut(len + off, hw) };
                    for ((d, &g), &v) in dst.iter_mut().zip(&*g).zip(xs) {
                        d.write(k1 * (g - mean_dy - (v - mu) * k2));
                    }
                } else if let Some(mk) = mask {
                    for (((d, &g), &v), &y) in dst.iter_mut().zip(&dy[off..][..hw]).zip(xs).zip(&mk[off..][..hw]) {
                        let g = if y > 0.0 { g } else { 0.0 };
                        d.write(k1 * (g - mean_dy - (v - mu) * k2));
                    }
                } else {
                    for ((d, &g), &v) in dst.iter_mut().zip(&dy[off..][..hw]).zip(xs) {
                        d.write(k1 * (g - mean_dy - (v - mu) * k2));
                    }
                }
            }
            unsafe {
                op.uninit(stats_at + ch, 1)[0].write(dgamma as f32);
                op.uninit(stats_at + c + ch, 1)[0].write(sdy as f32);
            }
        })
    };
    // SAFETY: each channel task writes its planes of dx (and dskip) and its two entries of dγ, dβ; together
    // that is every element.
    unsafe { output_uninit(len + nskip + 2 * c, fill) }
}

fn dims(l: &Layout) -> Result<(usize, usize, usize)> {
    let (n, c, h, w) = l.shape().dims4()?;
    Ok((n, c, h * w))
}

impl CustomOp3 for BnTrain {
    fn name(&self) -> &'static str {
        match (self.add, self.relu) {
            (true, _) => "bnscope-batchnorm-add-relu-train",
            (false, true) => "bnscope-batchnorm-relu-train",
            (false, false) => "bnscope-batchnorm-train",
        }
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let d = dims(l1)?;
        let x = slice(s1, l1, "bn")?;
        let (skip, gamma, beta) = if self.add {
            if l2.shape() != l1.shape() {
                candle_core::bail!("batch-norm + add: skip shape {:?}", l2.shape());
            }
            let gb = slice(s3, l3, "bn")?;
            if gb.len() != 2 * d.1 {
                candle_core::bail!("batch-norm + add: {} channels but [γ|β] of {}", d.1, gb.len());
            }
            (Some(slice(s2, l2, "bn")?), &gb[..d.1], &gb[d.1..])
        } else {
            (None, slice(s2, l2, "bn")?, slice(s3, l3, "bn")?)
        };
        if gamma.len() != d.1 || beta.len() != d.1 {
            candle_core::bail!("batch-norm: {} channels but γ/β of {}/{}", d.1, gamma.len(), beta.len());
        }
        let (y, stats) = forward(x, skip, gamma, beta, d, self.eps, self.relu);
        // One op value per forward call: a second call (none in practice) keeps the first statistics.
        let _ = self.saved.set(stats);
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        _a2: &Tensor,
        _a3: &Tensor,
        res: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let stats = self
            .saved
            .get()
            .ok_or_else(|| candle_core::Error::Msg("batch-norm backward: no saved statistics".into()))?;
        let op = BnBackward {
            stats,
            relu: self.relu,
            add: self.add,
        };
        let packed = x.apply_op3_no_bwd(&dy.contiguous()?, res, &op)?;
        let (len, c) = (x.elem_count(), stats.gamma.len());
        let dx = Some(packed.narrow(0, 0, len)?.reshape(x.shape())?);
        if self.add {
            let dskip = packed.narrow(0, len, len)?.reshape(x.shape())?;
            Ok((dx, Some(dskip), Some(packed.narrow(0, 2 * len, 2 * c)?)))
        } else {
            Ok((dx, Some(packed.narrow(0, len, c)?), Some(packed.narrow(0, len + c, c)?)))
        }
    }
}

/// `(x, dy, y) -> [dx | dskip (with add) | dγ | dβ]`; `y` (the forward output) only masks the ReLU.
struct BnBackward<'a> {
    stats: &'a Stats,
    relu: bool,
    add: bool,
}

impl CustomOp3 for BnBackward<'_> {
    fn name(&self) -> &'static str {
        "bnscope-batchnorm-backward"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let d = dims(l1)?;
        if l2.shape() != l1.shape() || l3.shape() != l1.shape() {
            candle_core::bail!("batch-norm backward: gradient shape {:?}", l2.shape());
        }
        if self.stats.gamma.len() != d.1 {
            candle_core::bail!(
                "batch-norm backward: {} channels, {} saved",
                d.1,
                self.stats.gamma.len()
            );
        }
        let (x, dy) = (slice(s1, l1, "bn")?, slice(s2, l2, "bn")?);
        let mask = if self.relu { Some(slice(s3, l3, "bn")?) } else { None };
        let out = backward(x, dy, mask, self.add, self.stats, d);
        let len = out.len();
        Ok((CpuStorage::F32(out), Shape::from(len)))
    }
}
