//! The layers a ResNet is made of: a bias-free convolution ([`Conv`]) and the residual blocks (basic and
//! bottleneck), each conv followed by its BN layer.
use candle_core::{Result, Tensor, Var};

use super::build::Init;
use super::{path, BatchNorm2d, BnMode};

/// A bias-free 2-D convolution.
pub struct Conv {
    pub name: String,
    pub weight: Var,
    pub stride: usize,
    pub padding: usize,
}

impl Conv {
    pub(super) fn new(
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
    pub(super) fn macs(&self, h: usize, w: usize) -> (usize, usize, usize) {
        let (cout, cin, k, _) = self.weight.as_tensor().dims4().unwrap_or((0, 0, 0, 0));
        let oh = (h + 2 * self.padding - k) / self.stride + 1;
        let ow = (w + 2 * self.padding - k) / self.stride + 1;
        (cout * cin * k * k * oh * ow, oh, ow)
    }
}

// A handful of blocks per model, built once: the size difference between the variants costs nothing.
#[allow(clippy::large_enum_variant)]
pub(super) enum Block {
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
    pub(super) fn forward(&mut self, x: &Tensor, mode: BnMode) -> Result<Tensor> {
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
    pub(super) fn parts(&self) -> Vec<(&Conv, &BatchNorm2d)> {
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

    pub(super) fn bns_mut(&mut self) -> Vec<&mut BatchNorm2d> {
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
