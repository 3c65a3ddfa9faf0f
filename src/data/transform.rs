//! What the pixel values become: `--normalize` ([`Normalize`], applied while loading) and `--val-transform`
//! ([`ValTransform`], an affine map of the evaluation inputs only).
use anyhow::Result;
use candle_core::Tensor;

use crate::error::usage;

/// Input normalisation after scaling to `[0, 1]` (`--normalize`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Normalize {
    /// Values in [0, 1].
    #[default]
    None,
    /// `(x − mean) / std` per channel with ImageNet's mean (0.485, 0.456, 0.406) and std (0.229, 0.224, 0.225),
    /// as torchvision's `transforms.Normalize` (what pretrained torchvision and timm weights expect).
    Imagenet,
}

impl Normalize {
    /// ImageNet's per-channel mean (RGB), as torchvision's reference scripts use it.
    pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
    /// ImageNet's per-channel standard deviation (RGB).
    pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

    pub fn name(self) -> &'static str {
        match self {
            Normalize::None => "none",
            Normalize::Imagenet => "imagenet",
        }
    }

    /// The input value of an 8-bit `byte` in channel `c`: `byte / 255`, then for ImageNet `(v − mean) / std`, in
    /// f32 as torchvision's `ToTensor` + `Normalize`.
    pub fn value(self, c: usize, byte: u8) -> f32 {
        let v = byte as f32 / 255.0;
        match self {
            Normalize::None => v,
            Normalize::Imagenet => (v - Self::IMAGENET_MEAN[c]) / Self::IMAGENET_STD[c],
        }
    }

    /// [`Self::value`] for every byte and channel (a lookup table: the same numbers, without the divisions).
    pub(super) fn table(self) -> [[f32; 256]; 3] {
        let mut t = [[0f32; 256]; 3];
        for (c, row) in t.iter_mut().enumerate() {
            for (b, v) in row.iter_mut().enumerate() {
                *v = self.value(c, b as u8);
            }
        }
        t
    }
}

/// `--val-transform`: a preprocessing mismatch applied to the evaluation inputs only (never to training or to a
/// recalibration), for lessons on shifted data. Each is a per-channel affine map of the values the data set gives.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ValTransform {
    /// The evaluation inputs are preprocessed as the training inputs.
    #[default]
    None,
    /// Pixels in 0..255 instead of 0..1 before any normalisation (Keras' "forgot to rescale": the model was
    /// trained with `Rescaling(1/255)` and is served raw bytes; torchvision: `ToTensor`'s /255 skipped).
    Scale255,
    /// The held-out data skips `--normalize imagenet`: values in 0..1 where the model saw (x − mean)/std.
    NoNormalize,
    /// Inverted pixels (255 − value, a photographic negative): a domain shift of every channel's mean.
    Invert,
}

impl ValTransform {
    pub fn name(self) -> &'static str {
        match self {
            ValTransform::None => "none",
            ValTransform::Scale255 => "scale255",
            ValTransform::NoNormalize => "no-normalize",
            ValTransform::Invert => "invert",
        }
    }

    /// The transform's per-channel `(scale, shift)` on values normalised with `n` (`None`: the identity).
    pub fn affine(self, n: Normalize) -> Option<([f32; 3], [f32; 3])> {
        // With v = byte/255 and z = (v − m)/s (m = 0, s = 1 without normalisation), so v = s·z + m:
        let (m, s) = match n {
            Normalize::None => ([0.0; 3], [1.0; 3]),
            Normalize::Imagenet => (Normalize::IMAGENET_MEAN, Normalize::IMAGENET_STD),
        };
        let per = |f: &dyn Fn(usize) -> (f32, f32)| {
            let v: Vec<(f32, f32)> = (0..3).map(f).collect();
            ([v[0].0, v[1].0, v[2].0], [v[0].1, v[1].1, v[2].1])
        };
        match self {
            ValTransform::None => None,
            // (255·v − m)/s = 255·z + 254·m/s
            ValTransform::Scale255 => Some(per(&|c| (255.0, 254.0 * m[c] / s[c]))),
            // v = s·z + m
            ValTransform::NoNormalize => Some(per(&|c| (s[c], m[c]))),
            // (1 − v − m)/s = −z + (1 − 2m)/s
            ValTransform::Invert => Some(per(&|c| (-1.0, (1.0 - 2.0 * m[c]) / s[c]))),
        }
    }

    /// `x` `(N, 3, H, W)` with the transform applied (values normalised with `n`).
    pub fn apply(self, x: &Tensor, n: Normalize) -> Result<Tensor> {
        let Some((scale, shift)) = self.affine(n) else {
            return Ok(x.clone());
        };
        let dev = x.device();
        let a = Tensor::from_slice(&scale, (1, 3, 1, 1), dev)?.to_dtype(x.dtype())?;
        let b = Tensor::from_slice(&shift, (1, 3, 1, 1), dev)?.to_dtype(x.dtype())?;
        Ok(x.broadcast_mul(&a)?.broadcast_add(&b)?)
    }

    /// A transform that means nothing with this normalisation is a one-line error.
    pub fn check(self, n: Normalize) -> Result<()> {
        if self == ValTransform::NoNormalize && n != Normalize::Imagenet {
            return Err(usage(
                "--val-transform no-normalize: only with --normalize imagenet (the inputs are not normalised)",
            ));
        }
        Ok(())
    }
}
