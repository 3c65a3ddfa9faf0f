//! The trainer: owns the model, the optimizer, the data and the JSONL log, and runs in its own thread
//! (`bnscope-trainer`). Front ends talk to it only through [`crate::protocol`].
//!
//! * this file: the synchronous engine ([`Trainer`]: `step`, `run_epoch`, `evaluate`, `apply`, `snapshot`), which
//!   the tests drive directly;
//! * `thread.rs`: the thread loop around it (commands between steps, pace, errors and panics);
//! * `outbox.rs`: the event channel's delivery policy for a front end that falls behind.
//!
//! Each epoch: shuffle (seeded), one optimizer step per batch of `--batch-size`, then evaluate the evaluation data
//! twice without touching the running statistics (running stats, then batch stats), compute softmax predictions in
//! both modes and a BatchNorm snapshot. Commands are applied before every step.
//!
//! The evaluation data is the training set, or the held-out set given with [`Trainer::set_held_out`] (Keras'
//! `validation_data`), read in batches of `eval_batch_size` with `val_transform` applied to its inputs. Training
//! and recalibration always read the training set, untransformed.
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Result;
use candle_core::{DType, Device, Tensor};
use rand::{rngs::StdRng, seq::SliceRandom, SeedableRng};
use serde_json::json;

mod ema;
mod health;
mod inspect;
mod outbox;
mod persist;
mod pretrain;

pub use pretrain::Pretrain;
mod thread;

pub use health::{diverged, divergence, Warning, DIVERGED_FACTOR};

pub use outbox::ReceiverGone;

use crate::checkpoint::Meta;
use crate::data::{Dataset, ValTransform};
use crate::framework::{Framework, FrozenBn};
use crate::log::JsonlLog;
use crate::model::{argmax_rows, softmax_rows, BnMode};
use crate::model::{Norm, Preset, ResNet};
use crate::optim::{Optimizer, OptimizerKind};
use crate::protocol::*;

/// Everything the trainer needs to know. `momentum` is in the Keras convention.
#[derive(Clone, Debug)]
pub struct TrainConfig {
    pub preset: Preset,
    pub image_size: usize,
    pub batch_size: usize,
    pub momentum: f64,
    pub cumulative: bool,
    pub lr: f64,
    pub optimizer: OptimizerKind,
    /// `None`: until quit.
    pub epochs: Option<usize>,
    pub seed: u64,
    /// The framework whose BatchNorm and Adam defaults the run follows (see `crate::framework`).
    pub framework: Framework,
    pub bn_eps: f64,
    /// Running variance updated with the unbiased batch variance (PyTorch) or the biased one (Keras 3).
    pub bn_unbiased: bool,
    pub adam_eps: f64,
    pub checkpoint: Option<PathBuf>,
    /// PyTorch weights to start from (and to start again from on restart).
    pub weights: Option<Arc<crate::weights::Imported>>,
    /// `--scenario`: the lesson the run shows.
    pub lesson: Option<crate::lesson::Scenario>,
    /// A pre-training phase on differently distributed data before the run (the `frozen-backbone` lesson).
    pub pretrain: Option<Pretrain>,
    /// `--norm`: BatchNorm, or GroupNorm/LayerNorm in its place.
    pub norm: Norm,
    /// `--ema DECAY`: also evaluate an exponential moving average of the weights (BN buffers copied from the raw
    /// model, as common EMA helpers do).
    pub ema: Option<f64>,
    /// `--freeze backbone`: only `fc` trains, and the backbone's BatchNorm layers behave as this says.
    pub frozen_bn: Option<FrozenBn>,
    /// Where `--save-weights` writes the model as a PyTorch state_dict, on quit and at the end.
    pub save_weights: Option<PathBuf>,
    /// The checkpoint this run continues, for the log's `run` record.
    pub resumed_from: Option<String>,
    pub start_paused: bool,
    /// Pause by itself after this epoch (the TUI's opening at the seed's moment).
    pub pause_after: Option<usize>,
    /// Most epochs a second (`None`: full speed).
    pub pace: Option<f64>,
    /// Images per batch of the two evaluation passes (`None`: `batch_size`).
    pub eval_batch_size: Option<usize>,
    /// A preprocessing mismatch applied to the evaluation inputs only (`--val-transform`).
    pub val_transform: ValTransform,
    /// Most events left waiting for the front end before the trainer holds back epoch metrics (`None`: never).
    /// While the front end is that far behind (a stalled terminal), only the newest epoch's metrics are kept and
    /// delivered once it catches up, so memory stays bounded however long the stall; every other event is
    /// delivered, in order. The JSONL log keeps every epoch either way. The TUI sets it; headless output does not.
    pub event_backlog: Option<usize>,
}

impl TrainConfig {
    /// The seed experiment's defaults for a preset: Keras 3's BatchNorm and Adam.
    pub fn new(preset: Preset) -> Self {
        let p = Framework::Keras.profile();
        Self {
            preset,
            image_size: preset.default_image_size(),
            batch_size: 32,
            momentum: p.momentum,
            cumulative: false,
            lr: 1e-3,
            optimizer: OptimizerKind::Adam,
            epochs: None,
            seed: DEFAULT_SEED,
            framework: Framework::Keras,
            bn_eps: p.bn_eps,
            bn_unbiased: p.unbiased,
            adam_eps: p.adam_eps,
            checkpoint: None,
            weights: None,
            norm: Norm::Batch,
            ema: None,
            pretrain: None,
            lesson: None,
            frozen_bn: None,
            save_weights: None,
            resumed_from: None,
            start_paused: false,
            pause_after: None,
            pace: None,
            eval_batch_size: None,
            val_transform: ValTransform::None,
            event_backlog: None,
        }
    }
}

/// The default `--seed`: one whose run shows the typical outcome at epoch 5 (1 of 3 right with running stats, as
/// Keras, PyTorch and most seeds give; see the README for the spread over seeds).
pub const DEFAULT_SEED: u64 = 1;

/// The shuffle generator's seed for a weights seed.
fn shuffle_rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed ^ 0x5eed_5eed)
}

/// A restored checkpoint, validated against the configuration.
pub struct Resume {
    pub tensors: std::collections::HashMap<String, Tensor>,
    pub meta: Meta,
}

pub struct Trainer {
    cfg: TrainConfig,
    data: Dataset,
    device: Device,
    device_name: String,
    /// Labels of the whole data set (the pixels are read per batch with `Dataset::batch`).
    y: Tensor,
    /// The held-out set the evaluations read instead of `data`, and its labels.
    val: Option<(Dataset, Tensor)>,
    model: ResNet,
    opt: Optimizer,
    shuffle: StdRng,
    /// Epoch orders drawn from `shuffle` since the last (re)start (a resume replays them).
    shuffles: u64,
    seed: u64,
    restarts: u64,
    epoch: usize,
    start_epoch: usize,
    step: usize,
    momentum: f64,
    cumulative: bool,
    paused: bool,
    pending_steps: usize,
    log: Option<JsonlLog>,
    /// The epoch in progress.
    cur: EpochProgress,
    fault: Option<(String, usize)>,
    pace: Option<f64>,
    epoch_started: Option<Instant>,
    /// `--ema`: the averaged model.
    ema: Option<ema::Ema>,
    /// The pre-training phase has not run yet (see [`Self::prepare`]).
    pretrain_due: bool,
    /// Warnings for the front end and the log, not yet delivered.
    warnings: Vec<Warning>,
    /// Whether the evaluation batches were checked for one value per channel (once per run).
    eval_one_value_checked: bool,
    /// Layers already reported for one value per channel (reported once per layer and run).
    one_value_reported: Vec<String>,
}

/// Where the trainer is inside the current epoch, and what it has summed so far.
#[derive(Default)]
struct EpochProgress {
    /// This epoch's shuffled image order.
    order: Vec<u32>,
    /// Images of `order` already trained on (0: at an epoch boundary).
    position: usize,
    loss_sum: f64,
    correct: usize,
    seen: usize,
    step_ms: Vec<f64>,
}

/// The model and optimizer for a weights seed, with the configuration's BatchNorm and Adam settings.
fn build(
    cfg: &TrainConfig,
    classes: usize,
    seed: u64,
    momentum: f64,
    cumulative: bool,
    dev: &Device,
) -> Result<(ResNet, Optimizer)> {
    let mut model = ResNet::new(cfg.preset, classes, momentum, cfg.bn_eps, seed, dev)?;
    if let Some(w) = &cfg.weights {
        // The seeded classifier stays where the data has another number of classes (fine-tuning).
        crate::weights::apply(&mut model, w, w.classes != classes)?;
    }
    model.set_group_norm(cfg.norm.groups())?;
    model.set_unbiased_variance(cfg.bn_unbiased);
    model.set_cumulative(cumulative);
    let opt = Optimizer::new(cfg.optimizer, model.params(), cfg.lr)?
        .with_eps(cfg.adam_eps)
        .with_form(cfg.framework.adam_form());
    Ok((model, opt))
}

/// `1 batch`, `3 batches`.
fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Fault injection for tests: `BNSCOPE_FAULT=panic@N` panics and `error@N` fails at the start of epoch N;
/// `slow@N` makes epoch N's first step take 12 s longer.
fn fault_from_env() -> Option<(String, usize)> {
    let v = std::env::var("BNSCOPE_FAULT").ok()?;
    let (kind, at) = v.split_once('@')?;
    Some((kind.to_string(), at.parse().ok()?))
}

/// One evaluation pass over the data set.
struct Pass {
    metric: Metric,
    /// Softmax of the first [`MAX_PREDICTIONS`] images.
    predictions: Vec<Vec<f32>>,
    /// Every image's logits, when asked for.
    logits: Vec<Vec<f32>>,
}

/// What happened in one call of [`Trainer::step`].
pub enum StepOutcome {
    /// A step inside an epoch.
    Step,
    /// The step completed an epoch.
    Epoch(Box<EpochMetrics>, Arc<BnSnapshot>),
}

impl Trainer {
    /// Builds the model (and restores `resume` if given). Runs on the caller's thread so that errors surface
    /// before any thread starts.
    pub fn new(
        cfg: TrainConfig,
        data: Dataset,
        device: Device,
        device_name: String,
        log: Option<JsonlLog>,
        resume: Option<Resume>,
    ) -> Result<Self> {
        let n = data.len();
        let labels: Vec<u32> = data.labels.iter().map(|&l| l as u32).collect();
        let y = Tensor::from_vec(labels, n, &device)?;
        let (model, opt) = build(
            &cfg,
            data.classes.len(),
            cfg.seed,
            cfg.momentum,
            cfg.cumulative,
            &device,
        )?;
        let mut t = Self {
            shuffle: shuffle_rng(cfg.seed),
            shuffles: 0,
            seed: cfg.seed,
            restarts: 0,
            epoch: 0,
            start_epoch: 0,
            step: 0,
            momentum: cfg.momentum,
            cumulative: cfg.cumulative,
            paused: cfg.start_paused,
            pending_steps: 0,
            log,
            cur: EpochProgress::default(),
            fault: fault_from_env(),
            pace: cfg.pace,
            epoch_started: None,
            warnings: Vec::new(),
            ema: None,
            eval_one_value_checked: false,
            one_value_reported: Vec::new(),
            pretrain_due: false,
            cfg,
            data,
            device,
            device_name,
            y,
            val: None,
            model,
            opt,
        };
        if let Some(r) = resume {
            t.restore(r)?;
        }
        // The pre-training phase (tens of seconds) runs on the trainer thread, with progress and a way to quit
        // (`thread::prepare`), or before the first step of a synchronous caller (`ready`).
        t.pretrain_due = t.cfg.pretrain.is_some();
        if !t.pretrain_due {
            t.start_ema()?;
        }
        Ok(t)
    }

    /// Evaluates on `val` from now on (held-out images with the training set's classes and image size) instead
    /// of the training set. Call before [`Self::spawn`], so that the `run` record says so.
    pub fn set_held_out(&mut self, val: Dataset) -> Result<()> {
        self.data.check_held_out(&val, "--val")?;
        if val.is_empty() {
            anyhow::bail!("the held-out set has no images");
        }
        let labels: Vec<u32> = val.labels.iter().map(|&l| l as u32).collect();
        let y = Tensor::from_vec(labels, val.len(), &self.device)?;
        self.val = Some((val, y));
        Ok(())
    }

    /// What the evaluations read: `val` on a held-out set, `train` on the training set.
    pub fn eval_on(&self) -> EvalOn {
        if self.val.is_some() {
            EvalOn::Val
        } else {
            EvalOn::Train
        }
    }

    /// The evaluation data and its labels: the held-out set if there is one, else the training set.
    fn eval_data(&self) -> (&Dataset, &Tensor) {
        match &self.val {
            Some((d, y)) => (d, y),
            None => (&self.data, &self.y),
        }
    }

    /// Images per batch of the evaluation passes.
    pub fn eval_batch_size(&self) -> usize {
        self.cfg.eval_batch_size.unwrap_or(self.cfg.batch_size)
    }

    pub fn model(&self) -> &ResNet {
        &self.model
    }
    pub fn model_mut(&mut self) -> &mut ResNet {
        &mut self.model
    }
    pub fn epoch(&self) -> usize {
        self.epoch
    }
    pub fn paused(&self) -> bool {
        self.paused
    }

    pub fn info(&self) -> RunInfo {
        let (evaluated, _) = self.eval_data();
        RunInfo {
            model: self.cfg.preset.name().into(),
            image_size: self.data.size,
            batch_size: self.cfg.batch_size,
            classes: self.data.classes.clone(),
            images: evaluated.names.clone(),
            labels: evaluated.labels.clone(),
            train_images: self.data.len(),
            eval_on: self.eval_on(),
            val_data: self.val.as_ref().map(|(d, _)| d.source.clone()),
            eval_batch_size: self.eval_batch_size(),
            val_transform: self.cfg.val_transform.name().into(),
            data: self.data.source.clone(),
            normalize: self.data.normalize.name().into(),
            norm: self.cfg.norm.name().into(),
            pretrain: self.cfg.pretrain.map(|p| p.describe()),
            lesson: self.cfg.lesson.map(|l| l.name().to_string()),
            ema: self.cfg.ema,
            device: self.device_name.clone(),
            seed: self.seed,
            momentum: self.momentum,
            cumulative: self.cumulative,
            lr: self.cfg.lr,
            optimizer: self.cfg.optimizer.name().into(),
            epochs: self.cfg.epochs,
            framework: self.cfg.framework.name().into(),
            bn_eps: self.cfg.bn_eps,
            bn_variance: crate::framework::variance_word(self.cfg.bn_unbiased).into(),
            adam_eps: self.cfg.adam_eps,
            resumed_from: self.cfg.resumed_from.clone(),
            weights: self.cfg.weights.as_ref().map(|w| w.path.display().to_string()),
            frozen_bn: self.cfg.frozen_bn.map(|f| f.name().to_string()),
            params: self.model.param_count(),
            bn_layers: self
                .model
                .bn_layers()
                .iter()
                .map(|b| BnLayerInfo {
                    name: b.name().into(),
                    channels: b.channels(),
                })
                .collect(),
            start_epoch: self.start_epoch,
            pace: self.pace,
        }
    }

    /// While running at a pace, the instant the next epoch may start (`None`: now).
    fn pace_deadline(&self) -> Option<Instant> {
        let (pace, started) = (self.pace?, self.epoch_started?);
        if self.cur.position != 0 || self.paused || pace <= 0.0 {
            return None;
        }
        let at = started + Duration::from_secs_f64(1.0 / pace);
        (at > Instant::now()).then_some(at)
    }

    /// True when `--epochs` is reached.
    pub fn done(&self) -> bool {
        self.cur.position == 0 && self.cfg.epochs.is_some_and(|n| self.epoch >= n)
    }

    /// Applies a command. Returns the acknowledgement to show, if the command changed something.
    pub fn apply(&mut self, cmd: &Command) -> Result<Option<(EventKind, String)>> {
        let ack = match cmd {
            Command::SetMomentum(m) => {
                let m = m.clamp(0.0, 1.0);
                self.momentum = m;
                self.cumulative = false;
                self.model.set_momentum(m);
                self.model.set_cumulative(false);
                Some((EventKind::Momentum, format!("{m}")))
            }
            Command::SetCumulative(on) => {
                self.cumulative = *on;
                self.model.set_cumulative(*on);
                Some((EventKind::Cumulative, on.to_string()))
            }
            Command::Pause => {
                self.paused = true;
                self.pending_steps = 0;
                Some((EventKind::Pause, String::new()))
            }
            Command::Resume => {
                self.paused = false;
                Some((EventKind::Resume, String::new()))
            }
            Command::Step => {
                self.pending_steps += 1;
                None
            }
            Command::ResetStats => {
                self.model.reset_running_stats()?;
                Some((EventKind::ResetStats, String::new()))
            }
            Command::Recalibrate => {
                let order = self.recalibration_order();
                self.recalibrate(&order)?;
                // The EMA model's statistics too, with its own weights (`swa_utils.update_bn(loader, ema_model)`).
                self.with_ema(|t| t.recalibrate(&order))?;
                let bs = self.cfg.batch_size;
                Some((
                    EventKind::Recalibrate,
                    plural(order.len().div_ceil(bs), "batch", "batches"),
                ))
            }
            Command::Restart => {
                self.restart()?;
                Some((EventKind::Restart, format!("seed {}", self.seed)))
            }
            Command::SetPace(p) => {
                self.pace = p.filter(|v| v.is_finite() && *v > 0.0);
                let v = match self.pace {
                    Some(p) => format!("{p} epochs/s"),
                    None => "full speed".into(),
                };
                Some((EventKind::Pace, v))
            }
            Command::NoteEvalMode(mode) => Some((EventKind::EvalMode, mode.as_str().to_string())),
            Command::Quit(_) => None,
        };
        if let (Some((kind, value)), Some(log)) = (&ack, self.log.as_mut()) {
            let v = match kind {
                EventKind::Momentum => json!(self.momentum),
                EventKind::Cumulative => json!(self.cumulative),
                EventKind::Pace => json!(self.pace),
                _ if value.is_empty() => serde_json::Value::Null,
                _ => json!(value),
            };
            log.event(self.epoch, *kind, v)?;
        }
        Ok(ack)
    }

    /// A model of this run's shape and settings, freshly initialised from `seed`, without `--weights` (for a copy
    /// that takes other weights right away: the EMA, a new head).
    fn blank_model(&self, seed: u64) -> Result<ResNet> {
        let cfg = TrainConfig {
            weights: None,
            ..self.cfg.clone()
        };
        let classes = self.data.classes.len();
        Ok(build(&cfg, classes, seed, self.momentum, self.cumulative, &self.device)?.0)
    }

    /// A fresh EMA of the current weights (`--ema`).
    fn start_ema(&mut self) -> Result<()> {
        self.ema = match self.cfg.ema {
            Some(d) => {
                let copy = self.blank_model(self.seed)?;
                Some(ema::Ema::new(d, copy, &self.model)?)
            }
            None => None,
        };
        Ok(())
    }

    fn restart(&mut self) -> Result<()> {
        self.restarts += 1;
        self.seed = self.cfg.seed.wrapping_add(self.restarts);
        let classes = self.data.classes.len();
        (self.model, self.opt) = build(
            &self.cfg,
            classes,
            self.seed,
            self.momentum,
            self.cumulative,
            &self.device,
        )?;
        self.shuffle = shuffle_rng(self.seed);
        self.shuffles = 0;
        self.one_value_reported.clear();
        self.epoch = 0;
        self.start_epoch = 0;
        self.step = 0;
        self.cur = EpochProgress::default();
        self.pretrain_due = self.cfg.pretrain.is_some();
        if self.pretrain_due {
            return Ok(());
        }
        self.start_ema()
    }

    /// Runs a pre-training phase still due (see [`Pretrain`]), telling `progress` after every batch how far it
    /// is (`epochs done`, `of`, `share of the whole phase`); an error from `progress` stops it (a quit). Then the
    /// EMA starts from the pre-trained weights. Nothing to do when no phase is due.
    pub fn prepare(&mut self, progress: &mut dyn FnMut(usize, usize, f64) -> Result<()>) -> Result<()> {
        if let (true, Some(p)) = (self.pretrain_due, self.cfg.pretrain) {
            self.pretrain(p, progress)?;
            self.pretrain_due = false;
            self.start_ema()?;
        }
        Ok(())
    }

    /// Whatever set-up is still due, without progress (a synchronous caller's first step or evaluation).
    fn ready(&mut self) -> Result<()> {
        self.prepare(&mut |_, _, _| Ok(()))
    }

    /// Re-estimates the running statistics over the data in `order`, in batches of `--batch-size`, one batch in
    /// memory at a time (a streamed data set decodes each when it is needed).
    fn recalibrate(&mut self, order: &[u32]) -> Result<()> {
        let (data, dev, bs) = (&self.data, &self.device, self.cfg.batch_size);
        self.model
            .recalibrate_with(order.chunks(bs).map(|c| data.batch(c, dev)))
    }

    /// The data set's order for a recalibration (in batches of `--batch-size`), shuffled as training shuffles it.
    /// The order comes from its own generator (seeded by the weights seed and t), so recalibrating never changes
    /// the training's shuffles.
    fn recalibration_order(&self) -> Vec<u32> {
        let n = self.data.len();
        let mut order: Vec<u32> = (0..n as u32).collect();
        let mut rng = StdRng::seed_from_u64(self.seed ^ 0x7ec4_1b7a ^ self.model.bn_t().rotate_left(17));
        order.shuffle(&mut rng);
        order
    }

    /// Images and labels of the training set at `idx`.
    fn training_batch(&self, idx: &[u32]) -> Result<(Tensor, Tensor)> {
        let i = Tensor::from_slice(idx, idx.len(), &self.device)?;
        Ok((self.data.batch(idx, &self.device)?, self.y.index_select(&i, 0)?))
    }

    /// One optimizer step (starting a new epoch when needed). Completes the epoch with evaluation and a snapshot
    /// when this was its last batch.
    pub fn step(&mut self) -> Result<StepOutcome> {
        self.ready()?;
        let n = self.data.len();
        if let Some((kind, at)) = &self.fault {
            if self.cur.position == 0 && self.epoch + 1 == *at {
                match kind.as_str() {
                    // Raised on a pool thread, where the step's kernels run, so that the path a real kernel bug
                    // would take is the one tested.
                    "panic" => {
                        crate::runtime::in_pool(&Device::Cpu, || panic!("injected fault at epoch {at} (BNSCOPE_FAULT)"))
                    }
                    // A step that outlasts any patience a quit might have had (tests of the quit path).
                    "slow" => std::thread::sleep(std::time::Duration::from_secs(12)),
                    _ => anyhow::bail!("injected fault at epoch {at} (BNSCOPE_FAULT)"),
                }
            }
        }
        if self.cur.position == 0 {
            let mut order: Vec<u32> = (0..n as u32).collect();
            order.shuffle(&mut self.shuffle);
            self.shuffles += 1;
            self.cur = EpochProgress {
                order,
                ..EpochProgress::default()
            };
        }
        let c = &self.cur;
        let len = self.cfg.batch_size.min(n - c.position);
        let (xb, yb) = self.training_batch(&c.order[c.position..c.position + len])?;
        let started = Instant::now();
        let (loss_v, logits) = match self.cfg.frozen_bn {
            None => self.opt.train_step(&mut self.model, &xb, &yb)?,
            Some(f) => {
                let mode = match f {
                    FrozenBn::Inference => BnMode::EvalRunning,
                    FrozenBn::TrainFrozenStats => BnMode::EvalBatch,
                    FrozenBn::Train => BnMode::Train,
                };
                let out = self.opt.train_head_step(&mut self.model, &xb, &yb, mode)?;
                if mode != BnMode::Train && self.cur.position + len == n {
                    // The epoch's last batch: its statistics for the snapshot (the step recorded none).
                    let dev = self.device.clone();
                    let model = &mut self.model;
                    crate::runtime::in_pool(&dev, || model.record_batch_stats(&xb))?;
                }
                out
            }
        };
        let ms = started.elapsed().as_secs_f64() * 1e3;
        if let Some(e) = self.ema.as_mut() {
            e.update(&self.model)?;
        }
        self.check_one_value_per_channel();
        let pred = argmax_rows(&logits)?;
        let truth = yb.to_vec1::<u32>()?;
        let c = &mut self.cur;
        c.step_ms.push(ms);
        c.correct += pred.iter().zip(&truth).filter(|(a, b)| a == b).count();
        c.loss_sum += loss_v as f64 * len as f64;
        c.seen += len;
        c.position += len;
        self.step += 1;
        if c.position < n {
            return Ok(StepOutcome::Step);
        }
        c.position = 0;
        self.epoch += 1;
        let train = Metric {
            loss: (c.loss_sum / c.seen as f64) as f32,
            acc: c.correct as f32 / c.seen as f32,
        };
        let step_ms = c.step_ms.iter().sum::<f64>() / c.step_ms.len().max(1) as f64;
        self.check_one_value_in_evaluation()?;
        let (eval_running, predictions_running) = self.evaluate(BnMode::EvalRunning)?;
        let (eval_batch, predictions_batch) = self.evaluate(BnMode::EvalBatch)?;
        let eval_ema = self.evaluate_ema()?;
        let metrics = EpochMetrics {
            epoch: self.epoch,
            step: self.step,
            momentum: self.momentum,
            cumulative: self.cumulative,
            t: self.model.bn_t(),
            age: self.model.stats_age(),
            train,
            eval_running,
            eval_batch,
            predictions_running,
            predictions_batch,
            step_ms,
            eval_ema,
        };
        let snap = Arc::new(self.snapshot()?);
        if let Some(log) = self.log.as_mut() {
            log.epoch(&metrics)?;
            log.bn(&snap)?;
        }
        Ok(StepOutcome::Epoch(Box::new(metrics), snap))
    }

    /// Runs steps until the current epoch completes.
    pub fn run_epoch(&mut self) -> Result<(Box<EpochMetrics>, Arc<BnSnapshot>)> {
        loop {
            if let StepOutcome::Epoch(m, s) = self.step()? {
                return Ok((m, s));
            }
        }
    }

    /// Both evaluations now, without an epoch (after a command changed the statistics or the weights).
    pub fn refresh(&mut self) -> Result<Refresh> {
        self.ready()?;
        let (eval_running, predictions_running) = self.evaluate(BnMode::EvalRunning)?;
        let (eval_batch, predictions_batch) = self.evaluate(BnMode::EvalBatch)?;
        Ok(Refresh {
            epoch: self.epoch,
            age: self.model.stats_age(),
            eval_running,
            eval_batch,
            predictions_running,
            predictions_batch,
            eval_ema: self.evaluate_ema()?,
        })
    }

    /// Loss, accuracy and softmax predictions over the whole data set in `mode` (which must not update stats).
    pub fn evaluate(&mut self, mode: BnMode) -> Result<(Metric, Vec<Vec<f32>>)> {
        self.ready()?;
        assert!(mode != BnMode::Train, "evaluation never updates running statistics");
        // On a rayon thread, as the training step (see `runtime::in_pool`).
        let dev = self.device.clone();
        crate::runtime::in_pool(&dev, || self.evaluate_here(mode))
    }

    fn evaluate_here(&mut self, mode: BnMode) -> Result<(Metric, Vec<Vec<f32>>)> {
        let p = self.pass(mode, false)?;
        Ok((p.metric, p.predictions))
    }

    /// Loss and accuracy over the evaluation data (the held-out set if any, else the training set) in `mode` in
    /// batches of the evaluation batch size, data order, with `--val-transform` applied to the inputs; the softmax
    /// of the first [`MAX_PREDICTIONS`] images; with `all_logits`, every image's logits.
    fn pass(&mut self, mode: BnMode, all_logits: bool) -> Result<Pass> {
        let mut loss_sum = 0f64;
        let mut correct = 0usize;
        let mut preds = Vec::new();
        let mut logits_out = Vec::new();
        let bs = self.eval_batch_size();
        let transform = self.cfg.val_transform;
        let (data, y) = match &self.val {
            Some((d, y)) => (d, y),
            None => (&self.data, &self.y),
        };
        let n = data.len();
        let mut i = 0;
        while i < n {
            let len = bs.min(n - i);
            let batch: Vec<u32> = (i as u32..(i + len) as u32).collect();
            let xb = transform.apply(&data.batch(&batch, &self.device)?, data.normalize)?;
            let yb = y.narrow(0, i, len)?;
            let logits = self.model.eval_forward(&xb, mode)?;
            let loss = crate::model::cross_entropy(&logits, &yb)?
                .to_dtype(DType::F32)?
                .to_scalar::<f32>()?;
            loss_sum += loss as f64 * len as f64;
            let pred = argmax_rows(&logits)?;
            let truth = yb.to_vec1::<u32>()?;
            correct += pred.iter().zip(&truth).filter(|(a, b)| a == b).count();
            if preds.len() < MAX_PREDICTIONS {
                let take = (MAX_PREDICTIONS - preds.len()).min(len);
                preds.extend(softmax_rows(&logits.narrow(0, 0, take)?)?);
            }
            if all_logits {
                logits_out.extend(logits.to_dtype(DType::F32)?.to_vec2::<f32>()?);
            }
            i += len;
        }
        Ok(Pass {
            metric: Metric {
                loss: (loss_sum / n as f64) as f32,
                acc: correct as f32 / n as f32,
            },
            predictions: preds,
            logits: logits_out,
        })
    }

    pub fn snapshot(&self) -> Result<BnSnapshot> {
        let layers = self
            .model
            .bn_layers()
            .iter()
            .map(|b| b.snapshot())
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(BnSnapshot {
            epoch: self.epoch,
            t: self.model.bn_t(),
            age: self.model.stats_age(),
            layers,
        })
    }

    /// Starts the trainer thread. The returned [`Link`] is the front end's side.
    pub fn spawn(self) -> Result<(Link, JoinHandle<()>)> {
        let (cmd_tx, cmd_rx) = crossbeam_channel::unbounded();
        let (ev_tx, ev_rx) = crossbeam_channel::unbounded();
        let bn: BnSlot = Arc::default();
        let slot = bn.clone();
        let out = outbox::Outbox::new(ev_tx, self.cfg.event_backlog);
        let handle = std::thread::Builder::new()
            .name(crate::runtime::TRAINER_THREAD.into())
            .spawn(move || thread::main(self, cmd_rx, out, slot))?;
        Ok((
            Link {
                commands: cmd_tx,
                events: ev_rx,
                bn,
            },
            handle,
        ))
    }
}
