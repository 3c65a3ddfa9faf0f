//! The presets (`tiny`, `resnet18` … `resnet152`: their blocks, widths and sizes), the `--norm` choice, and the
//! block kinds.
use std::fmt;

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
    pub(super) fn stage_widths(self) -> &'static [usize] {
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
