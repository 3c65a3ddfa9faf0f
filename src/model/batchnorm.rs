//! BatchNorm2d of our own.
//!
//! candle-nn's layer cannot change momentum while training and always updates its statistics in train mode, so
//! bnscope has its own, with three modes:
//!
//! | mode | normalises with | updates running stats | peer framework |
//! |---|---|---|---|
//! | [`BnMode::Train`] | batch stats | yes | `fit`, `train()` |
//! | [`BnMode::EvalBatch`] | batch stats | no | Keras `learning_phase=1` |
//! | [`BnMode::EvalRunning`] | running stats | no | `evaluate`/`predict`, PyTorch `eval()` |
//!
//! **Momentum convention.** `momentum` here is the Keras one: `running = m·running + (1−m)·batch`.
//! Keras 0.99 is PyTorch/candle 0.01. Running mean starts at 0 and running variance at 1. Normalisation always uses
//! the biased batch variance; the running variance is updated with the unbiased one (`n/(n−1)`, `n = N·H·W`, as
//! PyTorch and candle do) or with the biased one (as Keras 3 does), see [`BatchNorm2d::set_unbiased`]. In
//! cumulative mode (PyTorch `momentum=None`) the running stats are the plain average of all batches since the last
//! reset: the t-th update uses `m = (t−1)/t`.
//!
//! **How far from the start.** After updates with momenta m₁…m_t the running stats still give the weight
//! `w = ∏ mᵢ` to their (0, 1) start ([`BatchNorm2d::init_weight`]): `1 − w` is how far they have travelled, `1 − mᵗ`
//! while m stayed constant, 1 after a recalibration (its first cumulative update has m = 0).
use candle_core::{DType, Device, Result, Tensor, Var, D};

use crate::protocol::BnLayerSnapshot;

/// Which statistics a forward pass uses, and whether it updates the running ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BnMode {
    Train,
    EvalBatch,
    EvalRunning,
}

/// A layer's running statistics and their history, to put back after a look at other statistics
/// ([`BatchNorm2d::state`], [`BatchNorm2d::set_state`]).
#[derive(Clone, Debug)]
pub struct BnState {
    running_mean: Tensor,
    running_var: Tensor,
    t: u64,
    init_weight: f64,
    constant_momentum: Option<f64>,
    n: usize,
    batch_mean: Option<Tensor>,
    batch_var: Option<Tensor>,
}

/// A 2-D batch normalisation layer over `(N, C, H, W)` inputs.
pub struct BatchNorm2d {
    name: String,
    channels: usize,
    eps: f64,
    momentum: f64,
    cumulative: bool,
    /// Running variance updated with the unbiased (`n/(n−1)`) batch variance, else with the biased one.
    unbiased: bool,
    t: u64,
    /// `∏ mᵢ` over the updates since the last reset: the weight the running stats still give their start.
    init_weight: f64,
    /// The momentum of every update since the last reset, while it has been one value (`None` once it varied).
    constant_momentum: Option<f64>,
    /// Values per channel in the last training batch (`N·H·W`).
    n: usize,
    /// While re-estimating (PreciseBN): values per channel seen so far; each batch then weighs by its size.
    precise: Option<u64>,
    /// Affine scale (γ), trainable, starts at 1.
    pub weight: Var,
    /// Affine shift (β), trainable, starts at 0.
    pub bias: Var,
    running_mean: Tensor,
    running_var: Tensor,
    /// The last training batch's mean and biased variance (what normalised it).
    batch_mean: Option<Tensor>,
    batch_var: Option<Tensor>,
    /// `Some(g)`: this layer is a GroupNorm with `g` groups instead (`--norm group|layer`; LayerNorm is one
    /// group over C·H·W): each image is normalised by its own statistics in every mode, and there are no running
    /// statistics to use or update.
    groups: Option<usize>,
    /// Keep the statistics of an `EvalBatch` pass as the layer's last batch statistics (for a frozen backbone,
    /// whose training pass updates nothing; see [`super::ResNet::record_batch_stats`]).
    record: bool,
    /// An `EvalRunning` pass normalises this layer with the batch's own statistics instead (nothing updated):
    /// `bnscope inspect`'s blame switches layers one at a time, or the first k, this way.
    batch_in_eval: bool,
}

impl BatchNorm2d {
    /// `momentum` in the Keras convention.
    pub fn new(name: impl Into<String>, channels: usize, momentum: f64, eps: f64, dev: &Device) -> Result<Self> {
        Ok(Self {
            name: name.into(),
            channels,
            eps,
            momentum,
            cumulative: false,
            unbiased: true,
            t: 0,
            init_weight: 1.0,
            constant_momentum: None,
            n: 0,
            precise: None,
            weight: Var::ones(channels, DType::F32, dev)?,
            bias: Var::zeros(channels, DType::F32, dev)?,
            running_mean: Tensor::zeros(channels, DType::F32, dev)?,
            running_var: Tensor::ones(channels, DType::F32, dev)?,
            batch_mean: None,
            batch_var: None,
            groups: None,
            record: false,
            batch_in_eval: false,
        })
    }

    /// Makes this layer a GroupNorm with `groups` groups (`None`: BatchNorm again). `groups` must divide the
    /// channels.
    pub fn set_groups(&mut self, groups: Option<usize>) -> Result<()> {
        if let Some(g) = groups {
            if g == 0 || !self.channels.is_multiple_of(g) {
                candle_core::bail!("{}: {g} groups do not divide {} channels", self.name, self.channels);
            }
        }
        self.groups = groups;
        Ok(())
    }

    /// See the `record` field.
    pub fn set_record(&mut self, on: bool) {
        self.record = on;
    }

    /// `Some(g)` for a GroupNorm layer (see [`Self::set_groups`]).
    pub fn groups(&self) -> Option<usize> {
        self.groups
    }

    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn channels(&self) -> usize {
        self.channels
    }
    /// Keras convention.
    pub fn momentum(&self) -> f64 {
        self.momentum
    }
    /// Keras convention, `[0, 1]`. Takes effect from the next update.
    pub fn set_momentum(&mut self, m: f64) {
        self.momentum = m;
    }
    pub fn cumulative(&self) -> bool {
        self.cumulative
    }
    /// PyTorch `momentum=None`: running stats are the plain average of all batches since the last reset.
    pub fn set_cumulative(&mut self, on: bool) {
        self.cumulative = on;
    }
    /// Updates since the last reset.
    pub fn t(&self) -> u64 {
        self.t
    }
    /// Whether the running variance is updated with the unbiased batch variance (PyTorch) or the biased one
    /// (Keras 3).
    pub fn unbiased(&self) -> bool {
        self.unbiased
    }
    pub fn set_unbiased(&mut self, on: bool) {
        self.unbiased = on;
    }
    /// `∏ mᵢ` over the updates since the last reset (1 right after it): the weight the running stats still give to
    /// their (0, 1) start.
    pub fn init_weight(&self) -> f64 {
        self.init_weight
    }
    /// The one momentum every update since the last reset used (`None` when they differed or none happened).
    pub fn constant_momentum(&self) -> Option<f64> {
        self.constant_momentum
    }
    /// Values per channel in the last training batch (`N·H·W`; 0 before the first).
    pub fn n(&self) -> usize {
        self.n
    }
    /// Restores [`Self::init_weight`] and [`Self::constant_momentum`] (checkpoint restore).
    pub fn set_history(&mut self, init_weight: f64, constant_momentum: Option<f64>) {
        self.init_weight = init_weight;
        self.constant_momentum = constant_momentum;
    }
    /// Starts (`true`) or ends a size-weighted re-estimation: while on, each batch's statistics weigh by its number
    /// of values, as PreciseBN does (a partial last batch counts for what it holds).
    pub fn set_precise(&mut self, on: bool) {
        self.precise = on.then_some(0);
    }
    pub fn eps(&self) -> f64 {
        self.eps
    }
    pub fn running_mean(&self) -> &Tensor {
        &self.running_mean
    }
    pub fn running_var(&self) -> &Tensor {
        &self.running_var
    }

    /// The running statistics with their history and the last batch's statistics.
    pub fn state(&self) -> BnState {
        BnState {
            running_mean: self.running_mean.clone(),
            running_var: self.running_var.clone(),
            t: self.t,
            init_weight: self.init_weight,
            constant_momentum: self.constant_momentum,
            n: self.n,
            batch_mean: self.batch_mean.clone(),
            batch_var: self.batch_var.clone(),
        }
    }

    /// Puts back what [`Self::state`] returned.
    pub fn set_state(&mut self, s: BnState) {
        self.running_mean = s.running_mean;
        self.running_var = s.running_var;
        self.t = s.t;
        self.init_weight = s.init_weight;
        self.constant_momentum = s.constant_momentum;
        self.n = s.n;
        self.batch_mean = s.batch_mean;
        self.batch_var = s.batch_var;
    }

    /// Running mean back to 0, variance to 1, t to 0. The affine weights stay.
    pub fn reset_running_stats(&mut self) -> Result<()> {
        let dev = self.running_mean.device().clone();
        self.running_mean = Tensor::zeros(self.channels, DType::F32, &dev)?;
        self.running_var = Tensor::ones(self.channels, DType::F32, &dev)?;
        self.t = 0;
        self.init_weight = 1.0;
        self.constant_momentum = None;
        Ok(())
    }

    /// Replaces the running statistics (checkpoint restore).
    pub fn set_running_stats(&mut self, mean: Tensor, var: Tensor, t: u64) -> Result<()> {
        let dev = self.running_mean.device().clone();
        self.running_mean = mean.to_dtype(DType::F32)?.to_device(&dev)?;
        self.running_var = var.to_dtype(DType::F32)?.to_device(&dev)?;
        self.t = t;
        Ok(())
    }

    /// The factor `m` the next update will use (Keras convention). While re-estimating, it depends on the batch's
    /// size too (see [`Self::set_precise`]); this is the value for a batch as large as the last one.
    pub fn next_update_momentum(&self) -> f64 {
        self.update_momentum(self.n.max(1))
    }

    fn update_momentum(&self, count: usize) -> f64 {
        if let Some(seen) = self.precise {
            seen as f64 / (seen as f64 + count as f64)
        } else if self.cumulative {
            self.t as f64 / (self.t as f64 + 1.0)
        } else {
            self.momentum
        }
    }

    pub fn forward(&mut self, x: &Tensor, mode: BnMode) -> Result<Tensor> {
        self.forward_tail(x, None, false, mode)
    }

    /// `relu(self.forward(x, mode))`; one fused op on bnscope's CPU kernels (train and eval-batch modes).
    pub fn forward_relu(&mut self, x: &Tensor, mode: BnMode) -> Result<Tensor> {
        self.forward_tail(x, None, true, mode)
    }

    /// A residual block's tail, `relu(self.forward(x, mode) + skip)`; one fused op on bnscope's CPU kernels
    /// (train and eval-batch modes).
    pub fn forward_add_relu(&mut self, x: &Tensor, skip: &Tensor, mode: BnMode) -> Result<Tensor> {
        self.forward_tail(x, Some(skip), true, mode)
    }

    /// `bn(x) [+ skip]`, then `[relu]`.
    /// Whether an `EvalRunning` pass normalises this layer with the batch's statistics (see `batch_in_eval`).
    pub fn batch_in_eval(&self) -> bool {
        self.batch_in_eval
    }

    /// Makes `EvalRunning` passes normalise this layer with the batch's own statistics (`true`), or with the
    /// running ones again (`false`).
    pub fn set_batch_in_eval(&mut self, on: bool) {
        self.batch_in_eval = on;
    }

    fn forward_tail(&mut self, x: &Tensor, skip: Option<&Tensor>, relu: bool, mode: BnMode) -> Result<Tensor> {
        let mode = if mode == BnMode::EvalRunning && self.batch_in_eval {
            BnMode::EvalBatch
        } else {
            mode
        };
        let (n, c, h, w) = x.dims4()?;
        if c != self.channels {
            candle_core::bail!("{}: expected {} channels, got {c}", self.name, self.channels);
        }
        let shape = (1, c, 1, 1);
        if let Some(g) = self.groups {
            // GroupNorm: statistics per image and group over (C/g, H, W), biased variance, the same in every mode;
            // candle's ops (and autograd) on every device: the graph-free path does not take GroupNorm models.
            let xg = x.reshape((n, g, (c / g) * h * w))?;
            let mean = xg.mean_keepdim(2)?;
            let centered = xg.broadcast_sub(&mean)?;
            let var = centered.sqr()?.mean_keepdim(2)?;
            let y = centered
                .broadcast_div(&(var + self.eps)?.sqrt()?)?
                .reshape((n, c, h, w))?
                .broadcast_mul(&self.weight.as_tensor().reshape(shape)?)?
                .broadcast_add(&self.bias.as_tensor().reshape(shape)?)?;
            let y = match skip {
                Some(s) => (y + s)?,
                None => y,
            };
            return if relu { y.relu() } else { Ok(y) };
        }
        let y = match mode {
            BnMode::EvalRunning => {
                // y = (x − μ)/√(σ² + ε)·γ + β, folded into one scale and one shift per channel.
                let inv_std = (&self.running_var + self.eps)?.sqrt()?.recip()?;
                let scale = self.weight.as_tensor().mul(&inv_std)?;
                let shift = self.bias.as_tensor().sub(&self.running_mean.mul(&scale)?)?;
                x.broadcast_mul(&scale.reshape(shape)?)?
                    .broadcast_add(&shift.reshape(shape)?)?
            }
            BnMode::Train | BnMode::EvalBatch => {
                let count = n * h * w;
                let (gamma, beta) = (self.weight.as_tensor(), self.bias.as_tensor());
                let own = match skip {
                    Some(s) => super::path::custom_ops(&[x, s, gamma, beta]),
                    None => super::path::custom_ops(&[x, gamma, beta]),
                };
                if own {
                    // Fused CPU kernel (one op forward, one backward, ReLU and residual add included); same
                    // semantics as the composite below.
                    use crate::kernels::bn as k;
                    let (y, mean, var) = match (skip, relu) {
                        (Some(s), true) => k::batch_norm_add_relu_train(x, s, gamma, beta, self.eps)?,
                        (None, true) => k::batch_norm_relu_train(x, gamma, beta, self.eps)?,
                        (None, false) => k::batch_norm_train(x, gamma, beta, self.eps)?,
                        (Some(s), false) => {
                            let (y, m, v) = k::batch_norm_train(x, gamma, beta, self.eps)?;
                            ((y + s)?, m, v)
                        }
                    };
                    if mode == BnMode::Train {
                        self.update_from_batch(mean, var, count)?;
                    } else if self.record {
                        let dev = self.running_mean.device().clone();
                        self.batch_mean = Some(Tensor::from_vec(mean, c, &dev)?);
                        self.batch_var = Some(Tensor::from_vec(var, c, &dev)?);
                        self.n = count;
                    }
                    return Ok(y);
                }
                let mean = (x.sum_keepdim((0, 2, 3))? / count as f64)?;
                let centered = x.broadcast_sub(&mean)?;
                let var = (centered.sqr()?.sum_keepdim((0, 2, 3))? / count as f64)?;
                let inv_std = (&var + self.eps)?.sqrt()?.recip()?;
                let y = centered
                    .broadcast_mul(&inv_std)?
                    .broadcast_mul(&self.weight.as_tensor().reshape(shape)?)?
                    .broadcast_add(&self.bias.as_tensor().reshape(shape)?)?;
                if mode == BnMode::Train {
                    let bm = mean.flatten_all()?.detach();
                    let bv = var.flatten_all()?.detach();
                    self.update(bm, bv, count)?;
                } else if self.record {
                    self.batch_mean = Some(mean.flatten_all()?.detach());
                    self.batch_var = Some(var.flatten_all()?.detach());
                    self.n = count;
                }
                y
            }
        };
        let y = match skip {
            Some(s) => (y + s)?,
            None => y,
        };
        if relu {
            y.relu()
        } else {
            Ok(y)
        }
    }

    /// One running-stat update from host vectors: the batch mean and the biased batch variance over `count`
    /// values per channel (the fused kernels' statistics).
    pub fn update_from_batch(&mut self, mean: Vec<f32>, biased_var: Vec<f32>, count: usize) -> Result<()> {
        let dev = self.running_mean.device().clone();
        let c = self.channels;
        self.update(
            Tensor::from_vec(mean, c, &dev)?,
            Tensor::from_vec(biased_var, c, &dev)?,
            count,
        )
    }

    /// One running-stat update from a batch's mean and biased variance over `count` values per channel. The
    /// running variance moves toward the unbiased variance or the biased one, as [`Self::set_unbiased`] says.
    pub fn update(&mut self, batch_mean: Tensor, biased_var: Tensor, count: usize) -> Result<()> {
        let m = self.update_momentum(count);
        let target_var = if self.unbiased {
            (&biased_var * unbias(count))?
        } else {
            biased_var.clone()
        };
        self.running_mean = ((&self.running_mean * m)? + (&batch_mean * (1.0 - m))?)?.detach();
        self.running_var = ((&self.running_var * m)? + (&target_var * (1.0 - m))?)?.detach();
        self.batch_mean = Some(batch_mean);
        self.batch_var = Some(biased_var);
        self.n = count;
        if let Some(seen) = self.precise.as_mut() {
            *seen += count as u64;
        }
        self.constant_momentum = match (self.t, self.constant_momentum) {
            (0, _) => Some(m),
            (_, Some(c)) if c == m => Some(c),
            _ => None,
        };
        self.init_weight *= m;
        // PyTorch's `num_batches_tracked` is an int64: the count stops at its largest value instead of wrapping
        // (an imported counter near it would otherwise be exported negative).
        self.t = (self.t + 1).min(i64::MAX as u64);
        Ok(())
    }

    /// Per-channel running and last-batch statistics, with the relative gaps between them.
    pub fn snapshot(&self) -> Result<BnLayerSnapshot> {
        let rm = self.running_mean.to_vec1::<f32>()?;
        let rv = self.running_var.to_vec1::<f32>()?;
        let bm = match &self.batch_mean {
            Some(t) => t.to_vec1::<f32>()?,
            None => vec![f32::NAN; self.channels],
        };
        let bv = match &self.batch_var {
            Some(t) => t.to_vec1::<f32>()?,
            None => vec![f32::NAN; self.channels],
        };
        Ok(BnLayerSnapshot {
            name: self.name.clone(),
            n: self.n,
            mean_gap: relative_gap(&rm, &bm),
            var_gap: relative_gap(&rv, &bv),
            running_mean: rm,
            running_var: rv,
            batch_mean: bm,
            batch_var: bv,
        })
    }
}

/// Bessel's correction `n/(n−1)` that turns a biased variance over `count` values into the unbiased one (1 for a
/// single value).
fn unbias(count: usize) -> f64 {
    if count > 1 {
        count as f64 / (count as f64 - 1.0)
    } else {
        1.0
    }
}

/// `‖a − b‖₂ / (‖b‖₂ + 1e-8)`, accumulated in f64.
pub fn relative_gap(a: &[f32], b: &[f32]) -> f32 {
    let mut diff = 0f64;
    let mut norm = 0f64;
    for (&x, &y) in a.iter().zip(b) {
        diff += (x as f64 - y as f64).powi(2);
        norm += (y as f64).powi(2);
    }
    (diff.sqrt() / (norm.sqrt() + 1e-8)) as f32
}

/// Softmax over the last dimension, returned as rows.
pub fn softmax_rows(logits: &Tensor) -> Result<Vec<Vec<f32>>> {
    candle_nn::ops::softmax_last_dim(logits)?
        .to_dtype(DType::F32)?
        .to_vec2::<f32>()
}

/// Index of the largest value of each row.
pub fn argmax_rows(logits: &Tensor) -> Result<Vec<u32>> {
    logits.argmax(D::Minus1)?.to_vec1::<u32>()
}
