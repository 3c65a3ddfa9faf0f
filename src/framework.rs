//! The two peer frameworks' BatchNorm and Adam defaults, as measured (Keras 3.15, PyTorch 2.x).
//!
//! | | Keras 3 | PyTorch |
//! |---|---|---|
//! | BN ε | 1e-3 | 1e-5 |
//! | BN momentum | 0.99 (Keras convention) | 0.1 (= Keras 0.9) |
//! | running variance updated with | the **biased** batch variance | the **unbiased** one (`n/(n−1)`) |
//! | Adam ε | 1e-7 | 1e-8 |
//!
//! `--framework` picks a column; each value can still be set by its own flag.
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Framework {
    /// Keras 3 `BatchNormalization` and `Adam` (the seed's framework).
    Keras,
    /// PyTorch `BatchNorm2d` and `torch.optim.Adam`.
    Torch,
}

/// The settings a framework implies.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Profile {
    pub bn_eps: f64,
    /// Keras convention.
    pub momentum: f64,
    /// Running variance updated with the unbiased batch variance.
    pub unbiased: bool,
    pub adam_eps: f64,
}

impl Framework {
    pub fn name(self) -> &'static str {
        match self {
            Framework::Keras => "keras",
            Framework::Torch => "torch",
        }
    }

    /// Where Adam's ε goes under this framework (Keras 3 adds it to the uncorrected √v).
    #[cfg(feature = "train")]
    pub fn adam_form(self) -> crate::optim::AdamForm {
        match self {
            Framework::Keras => crate::optim::AdamForm::Keras,
            Framework::Torch => crate::optim::AdamForm::Torch,
        }
    }

    pub fn profile(self) -> Profile {
        match self {
            Framework::Keras => Profile {
                bn_eps: 1e-3,
                momentum: 0.99,
                unbiased: false,
                adam_eps: 1e-7,
            },
            Framework::Torch => Profile {
                bn_eps: 1e-5,
                momentum: 0.9,
                unbiased: true,
                adam_eps: 1e-8,
            },
        }
    }
}

/// `"biased"` or `"unbiased"`, as the log and the header say it.
pub fn variance_word(unbiased: bool) -> &'static str {
    if unbiased {
        "unbiased"
    } else {
        "biased"
    }
}

/// How the BatchNorm layers of a frozen backbone (`--freeze backbone`) behave while the classifier trains.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum FrozenBn {
    /// Normalise with the running statistics and never update them: TF2 `trainable = False`, timm
    /// `freeze_batch_norm_2d`, torchvision `FrozenBatchNorm2d`, a PyTorch module put in `eval()`.
    Inference,
    /// Normalise with each batch's statistics but leave the running statistics where they are: Keras ≤ 2.2's frozen
    /// layers (keras-team/keras#9214), whose evaluation then uses statistics the training never saw.
    TrainFrozenStats,
    /// Normalise with batch statistics and keep updating the running ones at the momentum: PyTorch
    /// `requires_grad_(False)` with the module left in train mode.
    Train,
}

impl FrozenBn {
    pub fn name(self) -> &'static str {
        match self {
            FrozenBn::Inference => "inference",
            FrozenBn::TrainFrozenStats => "train-frozen-stats",
            FrozenBn::Train => "train",
        }
    }

    /// What freezing a backbone gives in `framework` when nothing more is said: TF2's `trainable = False` puts
    /// BatchNorm in inference mode; PyTorch's `requires_grad_(False)` leaves it training.
    pub fn default_for(framework: Framework) -> Self {
        match framework {
            Framework::Keras => FrozenBn::Inference,
            Framework::Torch => FrozenBn::Train,
        }
    }
}
