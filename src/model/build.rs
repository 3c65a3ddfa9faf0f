//! Building the layers of a preset with torchvision's initialisation, from a seeded host RNG (so the same seed
//! gives the same network on every device).
use candle_core::{Device, Result, Tensor, Var};
use rand::{rngs::StdRng, Rng};
use rand_distr::Normal;

use super::{BatchNorm2d, Block, Conv};

/// Host-side seeded initialiser.
pub(super) struct Init {
    pub(super) rng: StdRng,
    pub(super) dev: Device,
}

impl Init {
    pub(super) fn normal<S: Into<candle_core::Shape>>(&mut self, shape: S, std: f64) -> Result<Var> {
        let shape = shape.into();
        let dist = Normal::new(0.0f32, std as f32).map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        let v: Vec<f32> = (0..shape.elem_count()).map(|_| self.rng.sample(dist)).collect();
        Var::from_tensor(&Tensor::from_vec(v, shape, &self.dev)?)
    }
    pub(super) fn uniform<S: Into<candle_core::Shape>>(&mut self, shape: S, bound: f64) -> Result<Var> {
        let shape = shape.into();
        let b = bound as f32;
        let v: Vec<f32> = (0..shape.elem_count()).map(|_| self.rng.random_range(-b..=b)).collect();
        Var::from_tensor(&Tensor::from_vec(v, shape, &self.dev)?)
    }
}

pub(super) fn basic(
    name: &str,
    cin: usize,
    cout: usize,
    stride: usize,
    init: &mut Init,
    bn: &dyn Fn(&str, usize) -> Result<BatchNorm2d>,
) -> Result<Block> {
    let conv1 = Conv::new(format!("{name}.conv1"), cin, cout, 3, stride, 1, init)?;
    let bn1 = bn(&format!("{name}.bn1"), cout)?;
    let conv2 = Conv::new(format!("{name}.conv2"), cout, cout, 3, 1, 1, init)?;
    let bn2 = bn(&format!("{name}.bn2"), cout)?;
    let down = downsample(name, cin, cout, stride, init, bn)?;
    Ok(Block::Basic {
        conv1,
        bn1,
        conv2,
        bn2,
        down,
    })
}

pub(super) fn bottleneck(
    name: &str,
    cin: usize,
    width: usize,
    stride: usize,
    init: &mut Init,
    bn: &dyn Fn(&str, usize) -> Result<BatchNorm2d>,
) -> Result<Block> {
    let cout = width * 4;
    // torchvision creates conv1, bn1, conv2, bn2, conv3, bn3, then the downsample; keep that order so that the
    // random stream matches the module order.
    let conv1 = Conv::new(format!("{name}.conv1"), cin, width, 1, 1, 0, init)?;
    let bn1 = bn(&format!("{name}.bn1"), width)?;
    let conv2 = Conv::new(format!("{name}.conv2"), width, width, 3, stride, 1, init)?;
    let bn2 = bn(&format!("{name}.bn2"), width)?;
    let conv3 = Conv::new(format!("{name}.conv3"), width, cout, 1, 1, 0, init)?;
    let bn3 = bn(&format!("{name}.bn3"), cout)?;
    let down = downsample(name, cin, cout, stride, init, bn)?;
    Ok(Block::Bottleneck {
        conv1,
        bn1,
        conv2,
        bn2,
        conv3,
        bn3,
        down,
    })
}

/// The 1×1 conv + BN shortcut, where the block changes shape.
fn downsample(
    name: &str,
    cin: usize,
    cout: usize,
    stride: usize,
    init: &mut Init,
    bn: &dyn Fn(&str, usize) -> Result<BatchNorm2d>,
) -> Result<Option<(Conv, BatchNorm2d)>> {
    if stride == 1 && cin == cout {
        return Ok(None);
    }
    Ok(Some((
        Conv::new(format!("{name}.downsample.0"), cin, cout, 1, stride, 0, init)?,
        bn(&format!("{name}.downsample.1"), cout)?,
    )))
}
