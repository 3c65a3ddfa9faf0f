//! The run's settings from three sources, in this order: a flag given on the command line, the checkpoint being
//! resumed, the framework profile (`--framework`, else the checkpoint's, else Keras), bnscope's defaults. A flag
//! that overrides a checkpoint's value says so in one line.
use anyhow::Result;

use crate::checkpoint::Meta;
use crate::cli::{check_image_size, RunArgs, Variance};
use crate::error::usage;
use crate::framework::Framework;
use crate::model::Preset;
use crate::optim::OptimizerKind;

/// Everything `RunArgs` leaves open, decided.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    pub model: Preset,
    pub image_size: usize,
    pub batch_size: usize,
    pub framework: Framework,
    /// Keras convention.
    pub momentum: f64,
    pub cumulative: bool,
    pub lr: f64,
    pub optimizer: OptimizerKind,
    pub seed: u64,
    pub bn_eps: f64,
    pub bn_unbiased: bool,
    pub adam_eps: f64,
}

/// bnscope's defaults where neither a flag, a checkpoint nor a framework says otherwise.
pub const DEFAULT_BATCH_SIZE: usize = 32;
pub const DEFAULT_LR: f64 = 1e-3;

/// Decides the settings; returns them with the notices to print (one line each).
pub fn resolve(a: &RunArgs, resume: Option<&Meta>) -> Result<(Settings, Vec<String>)> {
    let mut notes = Vec::new();
    let saved = resume.and_then(|m| m.state.as_ref());
    if let (Some(m), None) = (resume, saved) {
        notes.push(format!(
            "bnscope: the checkpoint (epoch {}) is from an older bnscope: its weights and statistics are restored, \
             but its shuffling and settings other than the model, momentum and seed are not in it",
            m.epoch
        ));
    }
    let ckpt_model = match resume {
        Some(m) => Some(Preset::from_name(&m.model).ok_or_else(|| {
            usage(format!(
                "--resume: the checkpoint is for an unknown model {:?}",
                m.model
            ))
        })?),
        None => None,
    };
    let model = match (a.model, ckpt_model) {
        (Some(x), Some(c)) if x != c => {
            return Err(usage(format!(
                "--resume: the checkpoint is for model {}, not {} (add --model {})",
                c.name(),
                x.name(),
                c.name()
            )))
        }
        (Some(x), _) => x,
        (None, Some(c)) => c,
        (None, None) => Preset::Tiny,
    };
    // A flag wins over the checkpoint (with a notice when they differ), the checkpoint over the default.
    let mut pick = |flag: &str, given: Option<String>, from_ckpt: Option<String>| -> Option<String> {
        match (given, from_ckpt) {
            (Some(g), Some(c)) if g != c => {
                notes.push(format!("bnscope: {flag} {g} overrides the checkpoint's {c}"));
                Some(g)
            }
            (Some(g), _) => Some(g),
            (None, c) => c,
        }
    };
    let framework = pick(
        "--framework",
        a.framework.map(|f| f.name().to_string()),
        saved.map(|s| s.framework.name().to_string()),
    )
    .map_or(Framework::Keras, |n| {
        if n == "torch" {
            Framework::Torch
        } else {
            Framework::Keras
        }
    });
    let profile = framework.profile();
    // An explicit --framework sets its four values over the checkpoint's (their own flags still win).
    let by_framework = a.framework.is_some();
    let num = |s: Option<String>| s.and_then(|v| v.parse::<f64>().ok());
    let image_size = pick(
        "--image-size",
        a.image_size.map(|v| v.to_string()),
        resume.map(|m| m.image_size.to_string()),
    )
    .and_then(|v| v.parse().ok())
    .unwrap_or(model.default_image_size());
    check_image_size(model, image_size)?;
    let batch_size = pick(
        "--batch-size",
        a.batch_size.map(|v| v.to_string()),
        saved.map(|s| s.batch_size.to_string()),
    )
    .and_then(|v| v.parse().ok())
    .unwrap_or(DEFAULT_BATCH_SIZE);
    let momentum_given = a.keras_momentum();
    let momentum = num(pick(
        "--momentum (Keras convention)",
        momentum_given.map(|v| v.to_string()),
        resume.map(|m| m.momentum.clone()),
    ))
    .filter(|_| momentum_given.is_some() || !by_framework)
    .unwrap_or(profile.momentum);
    // An explicit momentum means a moving average, unless --cumulative says otherwise.
    let cumulative = a.cumulative || (momentum_given.is_none() && resume.is_some_and(|m| m.cumulative));
    let lr = num(pick(
        "--lr",
        a.lr.map(|v| v.to_string()),
        saved.map(|s| s.lr.to_string()),
    ))
    .unwrap_or(DEFAULT_LR);
    let optimizer = pick(
        "--optimizer",
        a.optimizer.map(|o| o.name().to_string()),
        saved.map(|s| s.optimizer.clone()),
    )
    .map_or(OptimizerKind::Adam, |n| {
        if n == "sgd" {
            OptimizerKind::Sgd
        } else {
            OptimizerKind::Adam
        }
    });
    let seed = pick(
        "--seed",
        a.seed.map(|v| v.to_string()),
        saved
            .map(|s| s.base_seed.to_string())
            .or(resume.map(|m| m.seed.to_string())),
    )
    .and_then(|v| v.parse().ok())
    .unwrap_or(crate::trainer::DEFAULT_SEED);
    let bn_eps = num(pick(
        "--bn-eps",
        a.bn_eps.map(|v| v.to_string()),
        saved.map(|s| s.bn_eps.to_string()),
    ))
    .filter(|_| a.bn_eps.is_some() || !by_framework)
    .unwrap_or(profile.bn_eps);
    let word = |u: bool| crate::framework::variance_word(u).to_string();
    let bn_unbiased = pick(
        "--bn-variance",
        a.bn_variance.map(|v| word(v == Variance::Unbiased)),
        saved.map(|s| word(s.bn_unbiased)),
    )
    .filter(|_| a.bn_variance.is_some() || !by_framework)
    .map_or(profile.unbiased, |w| w == "unbiased");
    let adam_eps = num(pick(
        "--adam-eps",
        a.adam_eps.map(|v| v.to_string()),
        saved.map(|s| s.adam_eps.to_string()),
    ))
    .filter(|_| a.adam_eps.is_some() || !by_framework)
    .unwrap_or(profile.adam_eps);
    Ok((
        Settings {
            model,
            image_size,
            batch_size,
            framework,
            momentum,
            cumulative,
            lr,
            optimizer,
            seed,
            bn_eps,
            bn_unbiased,
            adam_eps,
        },
        notes,
    ))
}
