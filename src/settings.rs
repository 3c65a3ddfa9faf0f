//! The run's settings from three sources, in this order: a flag given on the command line, the checkpoint being
//! resumed, the framework profile (`--framework`, else the checkpoint's, else Keras), bnscope's defaults. A flag
//! that overrides a checkpoint's value says so in one line.
use anyhow::Result;

use crate::checkpoint::Meta;
use crate::cli::{check_image_size, RunArgs, Variance};
use crate::data::Normalize;
use crate::error::usage;
use crate::framework::{Framework, FrozenBn};
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
    /// `--freeze backbone`: how its BatchNorm layers behave (`None`: nothing frozen).
    pub frozen_bn: Option<FrozenBn>,
    /// Input normalisation (`--normalize`), handed to the data loader.
    pub normalize: Normalize,
}

/// bnscope's defaults where neither a flag, a checkpoint nor a framework says otherwise.
pub const DEFAULT_BATCH_SIZE: usize = 32;
pub const DEFAULT_LR: f64 = 1e-3;

/// Decides the settings; returns them with the notices to print (one line each). `weights`: the preset of the
/// `--weights` file (its keys', or `--model`'s), whose PyTorch origin makes torch the default framework.
pub fn resolve(a: &RunArgs, resume: Option<&Meta>, weights: Option<Preset>) -> Result<(Settings, Vec<String>)> {
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
        (None, None) => weights.unwrap_or(Preset::Tiny),
    };
    let num = |v: &f64| v.to_string();
    let lr = pick(&mut notes, a, "--lr", a.lr, saved.map(|s| s.lr), num).unwrap_or(DEFAULT_LR);
    let momentum_given = a.keras_momentum();
    let ckpt_momentum = resume.and_then(|m| m.momentum.parse::<f64>().ok());
    let momentum_ckpt = pick(
        &mut notes,
        a,
        "--momentum (Keras convention)",
        momentum_given,
        ckpt_momentum,
        num,
    );
    let bn_eps_ckpt = pick(&mut notes, a, "--bn-eps", a.bn_eps, saved.map(|s| s.bn_eps), num);
    let adam_eps_ckpt = pick(&mut notes, a, "--adam-eps", a.adam_eps, saved.map(|s| s.adam_eps), num);
    let framework = pick(
        &mut notes,
        a,
        "--framework",
        a.framework,
        saved.map(|s| s.framework),
        |f| f.name().to_string(),
    )
    .unwrap_or_else(|| {
        if weights.is_some() {
            notes.push(
                "bnscope: --weights come from PyTorch: following its BatchNorm and Adam (ε 1e-5, unbiased running \
                 variance, momentum 0.1 = Keras 0.9, Adam ε 1e-8); --framework keras to change"
                    .into(),
            );
            Framework::Torch
        } else {
            Framework::Keras
        }
    });
    let profile = framework.profile();
    // An explicit --framework sets its four values over the checkpoint's (their own flags still win).
    let by_framework = a.framework.is_some() || weights.is_some();
    let image_size = pick(
        &mut notes,
        a,
        "--image-size",
        a.image_size,
        resume.map(|m| m.image_size),
        usize::to_string,
    )
    .unwrap_or(model.default_image_size());
    check_image_size(model, image_size)?;
    let batch_size = pick(
        &mut notes,
        a,
        "--batch-size",
        a.batch_size,
        saved.map(|s| s.batch_size),
        usize::to_string,
    )
    .unwrap_or(DEFAULT_BATCH_SIZE);
    let momentum = momentum_ckpt
        .filter(|_| momentum_given.is_some() || !by_framework)
        .unwrap_or(profile.momentum);
    // An explicit momentum means a moving average, unless --cumulative says otherwise.
    let cumulative = a.cumulative || (momentum_given.is_none() && resume.is_some_and(|m| m.cumulative));
    let optimizer = pick(
        &mut notes,
        a,
        "--optimizer",
        a.optimizer,
        saved.map(|s| {
            if s.optimizer == "sgd" {
                OptimizerKind::Sgd
            } else {
                OptimizerKind::Adam
            }
        }),
        |o| o.name().to_string(),
    )
    .unwrap_or(OptimizerKind::Adam);
    let seed = pick(
        &mut notes,
        a,
        "--seed",
        a.seed,
        saved.map(|s| s.base_seed).or(resume.map(|m| m.seed)),
        u64::to_string,
    )
    .unwrap_or(crate::trainer::DEFAULT_SEED);
    let bn_eps = bn_eps_ckpt
        .filter(|_| a.bn_eps.is_some() || !by_framework)
        .unwrap_or(profile.bn_eps);
    let bn_unbiased = pick(
        &mut notes,
        a,
        "--bn-variance",
        a.bn_variance.map(|v| v == Variance::Unbiased),
        saved.map(|s| s.bn_unbiased),
        |u| crate::framework::variance_word(*u).to_string(),
    )
    .filter(|_| a.bn_variance.is_some() || !by_framework)
    .unwrap_or(profile.unbiased);
    let adam_eps = adam_eps_ckpt
        .filter(|_| a.adam_eps.is_some() || !by_framework)
        .unwrap_or(profile.adam_eps);
    // GroupNorm (`--norm group|layer`) normalises each image by itself in every mode: frozen or not, its layers
    // behave as in training, and there is no mode to choose (`--frozen-bn` is refused with it).
    let group_norm = a.norm.is_some_and(|n| n != crate::model::Norm::Batch);
    let frozen_bn = a.freeze.map(|_| match a.frozen_bn {
        _ if group_norm => FrozenBn::Train,
        Some(f) => f,
        None => FrozenBn::default_for(framework),
    });
    // Weights from PyTorch are usually pretrained on ImageNet and expect its normalisation (said in a notice);
    // not in a checkpoint: a resumed run takes the flag or `none`.
    let normalize = match (a.normalize, weights) {
        (Some(n), _) => n,
        (None, Some(_)) => {
            notes.push(
                "bnscope: --weights: inputs normalised as ImageNet models expect them (--normalize imagenet: mean \
                 0.485/0.456/0.406, std 0.229/0.224/0.225); --normalize none to turn it off"
                    .into(),
            );
            Normalize::Imagenet
        }
        (None, None) => Normalize::None,
    };
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
            frozen_bn,
            normalize,
        },
        notes,
    ))
}

/// A flag wins over the checkpoint, with a notice when they differ; the checkpoint wins over the default (`None`).
/// A value a lesson filled in (`--scenario`) is the lesson's, and its notice says so.
fn pick<T: PartialEq>(
    notes: &mut Vec<String>,
    a: &RunArgs,
    flag: &str,
    given: Option<T>,
    saved: Option<T>,
    show: impl Fn(&T) -> String,
) -> Option<T> {
    match (given, saved) {
        (Some(g), Some(c)) if g != c => {
            let name = flag.split_whitespace().next().unwrap_or(flag);
            let lesson = a.scenario.filter(|_| a.lesson_filled.contains(&name));
            notes.push(match lesson {
                Some(l) => format!(
                    "bnscope: the lesson {} sets {flag} {} over the checkpoint's {}",
                    l.name(),
                    show(&g),
                    show(&c)
                ),
                None => format!("bnscope: {flag} {} overrides the checkpoint's {}", show(&g), show(&c)),
            });
            Some(g)
        }
        (Some(g), _) => Some(g),
        (None, c) => c,
    }
}

/// The lessons' data (other than `seed` and `groupnorm`, which run the seed's images).
pub const LESSON_DATA: &str = "shapes:150";

/// `--scenario`: fills in the flags the lesson needs where the command line left them open, and records which
/// (`RunArgs::lesson_filled`, so that notices say whose value it is). A flag given explicitly that contradicts
/// the lesson's story (`--scenario seed --momentum 0.5`, `--scenario groupnorm --norm batch`) is refused in one
/// line naming the flag and the lesson ([`contradiction`]); one that leaves the story true still wins. Returns the
/// pre-training phase the lesson needs, if any.
pub fn apply_scenario(a: &mut RunArgs) -> Result<Option<crate::trainer::Pretrain>> {
    use crate::lesson::Scenario;
    let Some(s) = a.scenario else { return Ok(None) };
    if let Some(why) = contradiction(a, s) {
        return Err(usage(why));
    }
    let mut filled: Vec<&'static str> = Vec::new();
    macro_rules! fill {
        ($field:expr, $flag:literal, $value:expr) => {
            if $field.is_none() {
                $field = Some($value);
                filled.push($flag);
            }
        };
    }
    if !matches!(s, Scenario::Seed | Scenario::Groupnorm) && a.data.is_none() {
        // Enough generated shapes that the tiny ResNet generalises to the held-out ones (at 32 px a run is quick).
        fill!(a.data, "--data", LESSON_DATA.into());
        if s != Scenario::SmallBatch {
            fill!(a.image_size, "--image-size", 32);
        }
    }
    if a.momentum.is_none() {
        // The seed's story is momentum 0.99 (Keras), whatever --framework says; the others use statistics that
        // converge within a few epochs (Keras 0.9 = PyTorch 0.1), so that what the lesson shows is its own trap and
        // not the seed's slow momentum. (GroupNorm has no running statistics to move.)
        let m = match s {
            Scenario::Seed => Some(0.99),
            Scenario::Groupnorm => None,
            _ => Some(0.9),
        };
        if let Some(m) = m {
            fill!(a.momentum, "--momentum", m);
            a.momentum_convention = crate::cli::Convention::Keras;
        }
    }
    let pretrain = match s {
        Scenario::Seed => None,
        Scenario::SmallBatch => {
            fill!(a.batch_size, "--batch-size", 2);
            fill!(a.eval_batch_size, "--eval-batch-size", 1);
            // At 8 px tiny's last stage is 1×1: one image gives one value per channel there, and BatchNorm on one
            // value outputs its bias whatever the image (training at batch 2 still sees two values).
            fill!(a.image_size, "--image-size", 8);
            fill!(a.lr, "--lr", 0.003);
            None
        }
        Scenario::FrozenBackbone => {
            fill!(a.freeze, "--freeze", crate::cli::Freeze::Backbone);
            fill!(a.frozen_bn, "--frozen-bn", FrozenBn::TrainFrozenStats);
            Some(crate::trainer::Pretrain::LESSON)
        }
        Scenario::ShiftedEval => {
            fill!(a.val_transform, "--val-transform", crate::data::ValTransform::Scale255);
            None
        }
        Scenario::Ema => {
            fill!(a.ema, "--ema", 0.99);
            None
        }
        Scenario::Groupnorm => {
            fill!(a.norm, "--norm", crate::model::Norm::Group);
            None
        }
    };
    a.lesson_filled = filled;
    Ok(pretrain)
}

/// The first flag given on the command line that would make lesson `s` tell a story that is not true of the run,
/// as the one-line refusal; `None` when the flags leave the story true.
pub fn contradiction(a: &RunArgs, s: crate::lesson::Scenario) -> Option<String> {
    use crate::data::ValTransform;
    use crate::lesson::Scenario;
    use crate::model::Norm;
    let lesson = s.name();
    let refuse = |flag: String, why: &str| {
        Some(format!(
            "{flag}: contradicts the lesson {lesson} ({why}); leave it out, or run without --scenario"
        ))
    };
    match (s, a.norm) {
        (Scenario::Groupnorm, Some(Norm::Batch)) => {
            return refuse(
                "--norm batch".into(),
                "it runs the seed with GroupNorm instead of BatchNorm",
            )
        }
        (Scenario::Groupnorm, _) => {}
        (_, Some(n)) if n != Norm::Batch => {
            return refuse(
                format!("--norm {}", n.name()),
                "it is about BatchNorm's running statistics, which GroupNorm does not have; --scenario groupnorm \
                 shows GroupNorm",
            )
        }
        _ => {}
    }
    match s {
        Scenario::Seed => {
            if let Some(m) = a.keras_momentum().filter(|m| (m - 0.99).abs() > 1e-12) {
                return refuse(
                    format!("--momentum {}", a.momentum.unwrap_or(m)),
                    "its mystery is the running statistics' slow start at momentum 0.99 (Keras) = 0.01 (PyTorch)",
                );
            }
            if a.cumulative {
                return refuse(
                    "--cumulative".into(),
                    "its mystery is the moving average at momentum 0.99 (Keras)",
                );
            }
        }
        Scenario::SmallBatch => {
            let story = "training at batch 2 and evaluating at batch 1 on tiny at 8 px, whose last stage is 1×1";
            if let Some(b) = a.batch_size.filter(|&b| b != 2) {
                return refuse(format!("--batch-size {b}"), story);
            }
            if let Some(b) = a.eval_batch_size.filter(|&b| b != 1) {
                return refuse(format!("--eval-batch-size {b}"), story);
            }
            if let Some(px) = a.image_size.filter(|&px| px != 8) {
                return refuse(format!("--image-size {px}"), story);
            }
            if let Some(m) = a.model.filter(|&m| m != crate::model::Preset::Tiny) {
                return refuse(format!("--model {}", m.name()), story);
            }
        }
        Scenario::FrozenBackbone => {
            if a.frozen_bn == Some(FrozenBn::Train) {
                return refuse(
                    "--frozen-bn train".into(),
                    "its frozen BatchNorm layers keep the pre-training statistics (train-frozen-stats; --frozen-bn \
                     inference shows the fix), while train moves them on",
                );
            }
        }
        Scenario::ShiftedEval => {
            if let Some(t) = a.val_transform.filter(|&t| t != ValTransform::Scale255) {
                return refuse(
                    format!("--val-transform {}", t.name()),
                    "its held-out images reach the model unscaled (scale255)",
                );
            }
        }
        Scenario::Ema | Scenario::Groupnorm => {}
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::SavedState;
    use clap::Parser;

    fn args(flags: &[&str]) -> RunArgs {
        let argv = std::iter::once("bnscope").chain(flags.iter().copied());
        crate::cli::Cli::try_parse_from(argv).expect("flags parse").run
    }

    /// A tiny run's checkpoint at epoch 3 whose settings differ from every default that this test looks at.
    fn checkpoint() -> Meta {
        Meta {
            model: "tiny".into(),
            classes: vec!["a".into(), "b".into()],
            image_size: 32,
            epoch: 3,
            step: 0,
            momentum: "0.9".into(),
            cumulative: false,
            seed: 1,
            state: Some(SavedState {
                framework: Framework::Torch,
                bn_eps: 1e-5,
                bn_unbiased: true,
                adam_eps: 1e-8,
                batch_size: 8,
                lr: 0.05,
                optimizer: "adam".into(),
                base_seed: 1,
                restarts: 0,
                shuffles: 3,
                order: Vec::new(),
                position: 0,
                loss_sum: 0.0,
                correct: 0,
                seen: 0,
                init_weight: 1.0,
                constant_momentum: None,
                norm: None,
            }),
        }
    }

    /// #21: flag, then checkpoint, then default; a flag that differs from the checkpoint says so, one that agrees
    /// says nothing.
    #[test]
    fn a_flag_wins_over_the_checkpoint_which_wins_over_the_default() {
        let ckpt = checkpoint();
        let (s, notes) = resolve(&args(&[]), None, None).unwrap();
        assert_eq!((s.lr, s.batch_size), (DEFAULT_LR, DEFAULT_BATCH_SIZE), "defaults");
        assert!(!notes.iter().any(|n| n.contains("overrides")), "{notes:?}");

        let (s, notes) = resolve(&args(&[]), Some(&ckpt), None).unwrap();
        assert_eq!((s.lr, s.batch_size), (0.05, 8), "the checkpoint's");
        assert_eq!(s.framework, Framework::Torch, "the checkpoint's framework");
        assert!(!notes.iter().any(|n| n.contains("overrides")), "{notes:?}");

        let (s, notes) = resolve(&args(&["--lr", "0.2", "--batch-size", "8"]), Some(&ckpt), None).unwrap();
        assert_eq!((s.lr, s.batch_size), (0.2, 8), "the flags'");
        assert!(
            notes.contains(&"bnscope: --lr 0.2 overrides the checkpoint's 0.05".to_string()),
            "{notes:?}"
        );
        assert!(
            !notes.iter().any(|n| n.contains("--batch-size")),
            "a flag equal to the checkpoint's value: no notice: {notes:?}"
        );
    }
}
