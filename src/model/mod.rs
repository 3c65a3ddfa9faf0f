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
use std::fmt;

use candle_core::{Device, Result, Tensor, Var};
use rand::{rngs::StdRng, SeedableRng};

use build::{basic, bottleneck, Init};

pub mod batchnorm;
mod build;
pub mod maxpool;
pub mod path;
mod state;
pub mod step;

pub use batchnorm::{argmax_rows, relative_gap, softmax_rows, BatchNorm2d, BnMode, BnState};
pub use maxpool::MaxPool;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Preset {
    Tiny,
    Resnet18,
    Resnet34,
    Resnet50,
    Resnet101,
    Resnet152,
}

/// The normalisation layers (`--norm`): BatchNorm, or per-image GroupNorm / LayerNorm, which have no running
/// statistics and so no train/eval gap.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Norm {
    Batch,
    /// GroupNorm (Wu & He): 32 groups, fewer where a group would hold fewer than 4 channels.
    Group,
    /// LayerNorm over (C, H, W) per image: GroupNorm with one group.
    Layer,
}

impl Norm {
    pub fn name(self) -> &'static str {
        match self {
            Norm::Batch => "batch",
            Norm::Group => "group",
            Norm::Layer => "layer",
        }
    }
    /// Groups for a layer of `c` channels; `None` for BatchNorm.
    pub fn groups(self) -> Option<fn(usize) -> usize> {
        match self {
            Norm::Batch => None,
            Norm::Group => Some(|c| {
                [32, 16, 8, 4, 2, 1]
                    .into_iter()
                    .find(|&g| c.is_multiple_of(g) && c / g >= 4)
                    .unwrap_or(1)
            }),
            Norm::Layer => Some(|_| 1),
        }
    }
}

/// Which residual block a preset stacks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockKind {
    /// Two 3×3 convolutions (resnet18/34, tiny).
    Basic,
    /// 1×1, 3×3, 1×1 with 4× expansion (resnet50/101/152).
    Bottleneck,
}

impl Preset {
    pub const ALL: [Preset; 6] = [
        Preset::Tiny,
        Preset::Resnet18,
        Preset::Resnet34,
        Preset::Resnet50,
        Preset::Resnet101,
        Preset::Resnet152,
    ];
    pub fn name(self) -> &'static str {
        match self {
            Preset::Tiny => "tiny",
            Preset::Resnet18 => "resnet18",
            Preset::Resnet34 => "resnet34",
            Preset::Resnet50 => "resnet50",
            Preset::Resnet101 => "resnet101",
            Preset::Resnet152 => "resnet152",
        }
    }
    pub fn from_name(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.name() == s)
    }
    pub fn block(self) -> BlockKind {
        match self {
            Preset::Tiny | Preset::Resnet18 | Preset::Resnet34 => BlockKind::Basic,
            _ => BlockKind::Bottleneck,
        }
    }
    /// Blocks per stage (torchvision's `layers`).
    pub fn blocks_per_stage(self) -> &'static [usize] {
        match self {
            Preset::Tiny => &[1, 1, 1],
            Preset::Resnet18 => &[2, 2, 2, 2],
            Preset::Resnet34 | Preset::Resnet50 => &[3, 4, 6, 3],
            Preset::Resnet101 => &[3, 4, 23, 3],
            Preset::Resnet152 => &[3, 8, 36, 3],
        }
    }
    /// Each stage's width: the output channels of a basic block, the 3×3 conv's of a bottleneck.
    fn stage_widths(self) -> &'static [usize] {
        match self {
            Preset::Tiny => &[16, 32, 64],
            _ => &[64, 128, 256, 512],
        }
    }
    pub fn default_image_size(self) -> usize {
        match self {
            Preset::Tiny => 64,
            _ => 224,
        }
    }
    /// Values per image of every convolution's output for a `size×size` input, and of the largest one: what a
    /// training step keeps for its backward pass at the least (each BatchNorm and ReLU output comes on top), and
    /// what an evaluation pass holds at once. For the memory check before a run ([`crate::alloc::check_room`]).
    pub fn conv_outputs(self, size: usize) -> (u64, u64) {
        let out = |h: usize, k: usize, stride: usize, pad: usize| (h + 2 * pad).saturating_sub(k) / stride + 1;
        let (mut total, mut largest) = (0u64, 0u64);
        let mut add = |c: usize, h: usize| {
            let v = (c as u64).saturating_mul((h as u64).saturating_mul(h as u64));
            total = total.saturating_add(v);
            largest = largest.max(v);
        };
        let (mut cin, mut h) = match self {
            Preset::Tiny => {
                add(16, size);
                (16, size / 2)
            }
            _ => {
                let c = out(size, 7, 2, 3);
                add(64, c);
                (64, out(c, 3, 2, 1))
            }
        };
        for (i, (&width, &count)) in self.stage_widths().iter().zip(self.blocks_per_stage()).enumerate() {
            for j in 0..count {
                let stride = if i > 0 && j == 0 { 2 } else { 1 };
                let h2 = out(h, 3, stride, 1);
                let cout = match self.block() {
                    BlockKind::Basic => {
                        add(width, h2);
                        add(width, h2);
                        width
                    }
                    BlockKind::Bottleneck => {
                        add(width, h);
                        add(width, h2);
                        add(4 * width, h2);
                        4 * width
                    }
                };
                if stride != 1 || cin != cout {
                    add(cout, h2);
                }
                cin = cout;
                h = h2;
            }
        }
        (total, largest)
    }

    /// Smallest input side the network accepts (every stage must keep at least one pixel).
    pub fn min_image_size(self) -> usize {
        match self {
            Preset::Tiny => 8,
            _ => 32,
        }
    }
}

impl fmt::Display for Preset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A bias-free 2-D convolution.
pub struct Conv {
    pub name: String,
    pub weight: Var,
    pub stride: usize,
    pub padding: usize,
}

impl Conv {
    fn new(
        name: String,
        cin: usize,
        cout: usize,
        k: usize,
        stride: usize,
        padding: usize,
        init: &mut Init,
    ) -> Result<Self> {
        // Kaiming normal, mode fan_out, gain √2 (ReLU): std = √(2 / (cout·k·k)).
        let std = (2.0 / (cout * k * k) as f64).sqrt();
        let weight = init.normal((cout, cin, k, k), std)?;
        Ok(Self {
            name,
            weight,
            stride,
            padding,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let w = self.weight.as_tensor();
        // bnscope's im2col + gemm op on the CPU (candle's conv backward is ~10× slower); candle's elsewhere.
        if path::custom_ops(&[x, w]) {
            return crate::kernels::conv::conv2d(x, w, self.stride, self.padding);
        }
        x.conv2d(w, self.padding, self.stride, 1, 1)
    }

    /// Multiply-accumulates of one forward pass for an `h×w` input, per image.
    fn macs(&self, h: usize, w: usize) -> (usize, usize, usize) {
        let (cout, cin, k, _) = self.weight.as_tensor().dims4().unwrap_or((0, 0, 0, 0));
        let oh = (h + 2 * self.padding - k) / self.stride + 1;
        let ow = (w + 2 * self.padding - k) / self.stride + 1;
        (cout * cin * k * k * oh * ow, oh, ow)
    }
}

// A handful of blocks per model, built once: the size difference between the variants costs nothing.
#[allow(clippy::large_enum_variant)]
enum Block {
    Basic {
        conv1: Conv,
        bn1: BatchNorm2d,
        conv2: Conv,
        bn2: BatchNorm2d,
        down: Option<(Conv, BatchNorm2d)>,
    },
    Bottleneck {
        conv1: Conv,
        bn1: BatchNorm2d,
        conv2: Conv,
        bn2: BatchNorm2d,
        conv3: Conv,
        bn3: BatchNorm2d,
        down: Option<(Conv, BatchNorm2d)>,
    },
}

impl Block {
    fn forward(&mut self, x: &Tensor, mode: BnMode) -> Result<Tensor> {
        match self {
            Block::Basic {
                conv1,
                bn1,
                conv2,
                bn2,
                down,
            } => {
                // bn + relu and bn + add + relu are single ops on bnscope's CPU kernels (see `crate::kernels::bn`).
                let y = bn1.forward_relu(&conv1.forward(x)?, mode)?;
                let skip = match down {
                    Some((c, b)) => b.forward(&c.forward(x)?, mode)?,
                    None => x.clone(),
                };
                bn2.forward_add_relu(&conv2.forward(&y)?, &skip, mode)
            }
            Block::Bottleneck {
                conv1,
                bn1,
                conv2,
                bn2,
                conv3,
                bn3,
                down,
            } => {
                let y = bn1.forward_relu(&conv1.forward(x)?, mode)?;
                let y = bn2.forward_relu(&conv2.forward(&y)?, mode)?;
                let skip = match down {
                    Some((c, b)) => b.forward(&c.forward(x)?, mode)?,
                    None => x.clone(),
                };
                bn3.forward_add_relu(&conv3.forward(&y)?, &skip, mode)
            }
        }
    }

    /// Convolutions and BN layers in torchvision's `named_modules` order.
    fn parts(&self) -> Vec<(&Conv, &BatchNorm2d)> {
        let (mut v, down) = match self {
            Block::Basic {
                conv1,
                bn1,
                conv2,
                bn2,
                down,
            } => (vec![(conv1, bn1), (conv2, bn2)], down),
            Block::Bottleneck {
                conv1,
                bn1,
                conv2,
                bn2,
                conv3,
                bn3,
                down,
            } => (vec![(conv1, bn1), (conv2, bn2), (conv3, bn3)], down),
        };
        if let Some((c, b)) = down {
            v.push((c, b));
        }
        v
    }

    fn bns_mut(&mut self) -> Vec<&mut BatchNorm2d> {
        match self {
            Block::Basic { bn1, bn2, down, .. } => {
                let mut v = vec![bn1, bn2];
                if let Some((_, b)) = down {
                    v.push(b);
                }
                v
            }
            Block::Bottleneck {
                bn1, bn2, bn3, down, ..
            } => {
                let mut v = vec![bn1, bn2, bn3];
                if let Some((_, b)) = down {
                    v.push(b);
                }
                v
            }
        }
    }
}

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
