//! The ResNet presets, with exact topologies so that numbers compare to PyTorch.
//!
//! * `tiny`: conv3×3(3→16, no bias) + BN + ReLU + max-pool 2×2; BasicBlock(16→16, s1), BasicBlock(16→32, s2),
//!   BasicBlock(32→64, s2); 1×1 conv + BN shortcut where the shape changes; global average pool; linear. 9 BN layers.
//! * `resnet18`, `resnet34` (basic blocks), `resnet50`, `resnet101`, `resnet152` (bottlenecks): torchvision's
//!   architecture (v1.5: the stride sits on the 3×3 conv of a bottleneck), which timm's ResNets share.
//!
//! Every preset uses torchvision's parameter names (`conv1`, `bn1`, `layer1.0.conv1`, `layer1.0.downsample.1`,
//! `fc`), tiny included, so that `--weights` and `--save-weights` speak PyTorch's `state_dict` (see
//! `crate::weights`).
//!
//! Initialisation follows torchvision: Kaiming-normal (fan_out, ReLU) convolutions, BN weight 1 and bias 0, and
//! PyTorch's default `Linear` init (uniform ±1/√fan_in for weight and bias). Weights come from a seeded `StdRng` on
//! the host, so the same seed gives the same network on every device.

use candle_core::{Device, Result, Tensor, Var};
use rand::{rngs::StdRng, SeedableRng};

use build::{basic, bottleneck, Init};

pub mod batchnorm;
mod block;
mod build;
pub mod maxpool;
pub mod path;
mod preset;
mod state;
pub mod step;

pub use batchnorm::{argmax_rows, relative_gap, softmax_rows, BatchNorm2d, BnMode, BnState};
use block::Block;
pub use block::Conv;
pub use maxpool::MaxPool;
pub use preset::{BlockKind, Norm, Preset};

/// A conv layer with the BN layer after it.
pub(crate) type ConvBn<'a> = (&'a Conv, &'a BatchNorm2d);

/// A ResNet's layers in forward order: stem (conv, BN + ReLU, max-pool); per block the main path's conv/BN pairs
/// (the last one's BN takes the residual add and ReLU) and the downsample shortcut if any; the classifier's
/// weight and bias. BN layers appear in [`ResNet::bn_layers`] order.
pub(crate) struct Layout<'a> {
    pub stem: (&'a Conv, &'a BatchNorm2d, MaxPool),
    pub blocks: Vec<(Vec<ConvBn<'a>>, Option<ConvBn<'a>>)>,
    pub fc: (&'a Var, &'a Var),
}

/// A ResNet: stem, residual blocks, global average pool, linear classifier.
pub struct ResNet {
    preset: Preset,
    stem_conv: Conv,
    stem_bn: BatchNorm2d,
    stem_pool: MaxPool,
    blocks: Vec<Block>,
    fc_weight: Var,
    fc_bias: Var,
    classes: usize,
}

impl ResNet {
    /// Builds a freshly initialised network. `momentum` is in the Keras convention.
    pub fn new(preset: Preset, classes: usize, momentum: f64, eps: f64, seed: u64, dev: &Device) -> Result<Self> {
        let mut init = Init {
            rng: StdRng::seed_from_u64(seed),
            dev: dev.clone(),
        };
        let bn = |name: &str, c: usize| BatchNorm2d::new(name, c, momentum, eps, dev);
        let (stem_conv, stem_bn, stem_pool) = match preset {
            Preset::Tiny => (
                Conv::new("conv1".into(), 3, 16, 3, 1, 1, &mut init)?,
                bn("bn1", 16)?,
                MaxPool::new(2, 2, 0),
            ),
            _ => (
                Conv::new("conv1".into(), 3, 64, 7, 2, 3, &mut init)?,
                bn("bn1", 64)?,
                MaxPool::new(3, 2, 1),
            ),
        };
        let mut blocks = Vec::new();
        let mut cin = stem_conv.weight.as_tensor().dim(0)?;
        for (i, (&width, &count)) in preset.stage_widths().iter().zip(preset.blocks_per_stage()).enumerate() {
            for j in 0..count {
                let stride = if i > 0 && j == 0 { 2 } else { 1 };
                let name = format!("layer{}.{j}", i + 1);
                blocks.push(match preset.block() {
                    BlockKind::Basic => basic(&name, cin, width, stride, &mut init, &bn)?,
                    BlockKind::Bottleneck => bottleneck(&name, cin, width, stride, &mut init, &bn)?,
                });
                cin = match preset.block() {
                    BlockKind::Basic => width,
                    BlockKind::Bottleneck => width * 4,
                };
            }
        }
        let final_channels = cin;
        let bound = 1.0 / (final_channels as f64).sqrt();
        let fc_weight = init.uniform((classes, final_channels), bound)?;
        let fc_bias = init.uniform(classes, bound)?;
        Ok(Self {
            preset,
            stem_conv,
            stem_bn,
            stem_pool,
            blocks,
            fc_weight,
            fc_bias,
            classes,
        })
    }

    pub fn preset(&self) -> Preset {
        self.preset
    }
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// Everything before global pooling: `(N, C, h, w)`.
    fn backbone(&mut self, x: &Tensor, mode: BnMode) -> Result<Tensor> {
        let y = self.stem_conv.forward(x)?;
        let y = self.stem_bn.forward_relu(&y, mode)?;
        let mut y = self.stem_pool.forward(&y)?;
        for b in self.blocks.iter_mut() {
            y = b.forward(&y, mode)?;
        }
        Ok(y)
    }

    /// The pooled features `(N, C)` the classifier sees, detached (a frozen backbone). In `BnMode::Train` the
    /// BatchNorm layers normalise with batch statistics and update their running statistics.
    pub fn features(&mut self, x: &Tensor, mode: BnMode) -> Result<Tensor> {
        if let Some(f) = step::eval_features(self, x, mode)? {
            return Ok(f);
        }
        self.backbone(x, mode)?.mean((2, 3))?.detach().contiguous()
    }

    /// Takes `x`'s batch statistics as every BatchNorm layer's last batch statistics, updating nothing: a frozen
    /// backbone's training pass normalises without recording them, and the layer gauges compare them with the
    /// running statistics.
    pub fn record_batch_stats(&mut self, x: &Tensor) -> Result<()> {
        self.bn_layers_mut().into_iter().for_each(|b| b.set_record(true));
        let r = self.backbone(x, BnMode::EvalBatch).map(|_| ());
        self.bn_layers_mut().into_iter().for_each(|b| b.set_record(false));
        r
    }

    /// The classifier `fc` (weight `(classes, C)`, bias `(classes)`).
    pub fn head(&self) -> (&Var, &Var) {
        (&self.fc_weight, &self.fc_bias)
    }

    /// Logits `(N, classes)` for images `(N, 3, H, W)`.
    pub fn forward(&mut self, x: &Tensor, mode: BnMode) -> Result<Tensor> {
        let y = self.backbone(x, mode)?;
        let (w, b) = (self.fc_weight.as_tensor(), self.fc_bias.as_tensor());
        if path::custom_ops(&[&y, w, b]) {
            // Global average pool + linear as one op (see `crate::kernels::head`).
            return crate::kernels::head::pool_linear(&y, w, b);
        }
        let y = y.mean((2, 3))?;
        y.matmul(&w.t()?)?.broadcast_add(b)
    }

    /// The layers, for the graph-free CPU training step ([`step`]).
    pub(crate) fn layout(&self) -> Layout<'_> {
        Layout {
            stem: (&self.stem_conv, &self.stem_bn, self.stem_pool),
            blocks: self
                .blocks
                .iter()
                .map(|b| {
                    let mut parts = b.parts();
                    let n_main = match b {
                        Block::Basic { .. } => 2,
                        Block::Bottleneck { .. } => 3,
                    };
                    let down = (parts.len() > n_main).then(|| parts.remove(n_main));
                    (parts, down)
                })
                .collect(),
            fc: (&self.fc_weight, &self.fc_bias),
        }
    }

    /// Logits of an evaluation pass (`mode` `EvalBatch` or `EvalRunning`; nothing is updated): the graph-free
    /// CPU pass where it applies ([`step::eval_forward`]), candle's ops elsewhere, with the same
    /// numbers.
    pub fn eval_forward(&mut self, x: &Tensor, mode: BnMode) -> Result<Tensor> {
        match step::eval_forward(self, x, mode)? {
            Some(logits) => Ok(logits),
            None => Ok(self.forward(x, mode)?.detach()),
        }
    }

    /// BN layers in forward (torchvision `named_modules`) order.
    pub fn bn_layers(&self) -> Vec<&BatchNorm2d> {
        let mut v = vec![&self.stem_bn];
        for b in &self.blocks {
            v.extend(b.parts().into_iter().map(|(_, bn)| bn));
        }
        v
    }

    pub fn bn_layers_mut(&mut self) -> Vec<&mut BatchNorm2d> {
        let mut v = vec![&mut self.stem_bn];
        for b in self.blocks.iter_mut() {
            v.extend(b.bns_mut());
        }
        v
    }

    fn convs(&self) -> Vec<&Conv> {
        let mut v = vec![&self.stem_conv];
        for b in &self.blocks {
            v.extend(b.parts().into_iter().map(|(c, _)| c));
        }
        v
    }

    /// Every trainable parameter with its torchvision-style name.
    pub fn named_params(&self) -> Vec<(String, Var)> {
        let mut v = Vec::new();
        for c in self.convs() {
            v.push((format!("{}.weight", c.name), c.weight.clone()));
        }
        for bn in self.bn_layers() {
            v.push((format!("{}.weight", bn.name()), bn.weight.clone()));
            v.push((format!("{}.bias", bn.name()), bn.bias.clone()));
        }
        v.push(("fc.weight".to_string(), self.fc_weight.clone()));
        v.push(("fc.bias".to_string(), self.fc_bias.clone()));
        v
    }

    pub fn params(&self) -> Vec<Var> {
        self.named_params().into_iter().map(|(_, v)| v).collect()
    }

    pub fn param_count(&self) -> usize {
        self.params().iter().map(|v| v.elem_count()).sum()
    }

    pub fn set_momentum(&mut self, m: f64) {
        for bn in self.bn_layers_mut() {
            bn.set_momentum(m);
        }
    }

    pub fn set_cumulative(&mut self, on: bool) {
        for bn in self.bn_layers_mut() {
            bn.set_cumulative(on);
        }
    }

    /// Every normalisation layer a GroupNorm with `groups(channels)` groups (`--norm group|layer`), or BatchNorm
    /// again with `None`.
    pub fn set_group_norm(&mut self, groups: Option<fn(usize) -> usize>) -> Result<()> {
        for bn in self.bn_layers_mut() {
            let g = groups.map(|f| f(bn.channels()));
            bn.set_groups(g)?;
        }
        Ok(())
    }

    pub fn reset_running_stats(&mut self) -> Result<()> {
        for bn in self.bn_layers_mut() {
            bn.reset_running_stats()?;
        }
        Ok(())
    }

    /// Updates since the last reset (the same for every layer).
    pub fn bn_t(&self) -> u64 {
        self.stem_bn.t()
    }

    /// How far the running statistics are from their start (every layer shares its update history).
    pub fn stats_age(&self) -> crate::protocol::StatsAge {
        crate::protocol::StatsAge {
            t: self.stem_bn.t(),
            init_weight: self.stem_bn.init_weight(),
            constant_momentum: self.stem_bn.constant_momentum(),
        }
    }

    /// Whether the running variances move toward the unbiased batch variance (PyTorch) or the biased one (Keras 3).
    pub fn set_unbiased_variance(&mut self, on: bool) {
        for bn in self.bn_layers_mut() {
            bn.set_unbiased(on);
        }
    }

    /// Re-estimates the running statistics from `batches` (PreciseBN; `torch.optim.swa_utils.update_bn` does the
    /// same with equal batch weights): stats reset, then a train-mode forward pass per batch with no weight update,
    /// each batch's statistics weighted by its size (a partial last batch counts for what it holds). Momentum and
    /// cumulative settings are restored afterwards; t ends equal to the number of batches, the start's weight at 0.
    pub fn recalibrate(&mut self, batches: &[Tensor]) -> Result<()> {
        self.recalibrate_with(batches.iter().map(|b| Ok(b.clone())))
    }

    /// [`Self::recalibrate`] over batches made one at a time (a streamed data set decodes each when it is asked
    /// for, so one batch is in memory at a time). A batch that fails ends the recalibration with its error.
    pub fn recalibrate_with<E: From<candle_core::Error>>(
        &mut self,
        batches: impl IntoIterator<Item = std::result::Result<Tensor, E>>,
    ) -> std::result::Result<(), E> {
        self.reset_running_stats()?;
        self.bn_layers_mut().into_iter().for_each(|b| b.set_precise(true));
        let result = batches
            .into_iter()
            .try_for_each(|b| self.forward(&b?, BnMode::Train).map(|_| ()).map_err(E::from));
        self.bn_layers_mut().into_iter().for_each(|b| b.set_precise(false));
        result
    }
}

/// Mean cross-entropy of `logits (N, K)` against class indices `targets (N)`: bnscope's one-op kernel
/// (`crate::kernels::head::cross_entropy`) where custom ops apply, candle-nn's otherwise (the same value).
pub fn cross_entropy(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    if path::custom_ops(&[logits]) && targets.device().is_cpu() && targets.rank() == 1 && logits.rank() == 2 {
        crate::kernels::head::cross_entropy(logits, targets)
    } else {
        candle_nn::loss::cross_entropy(logits, targets)
    }
}
