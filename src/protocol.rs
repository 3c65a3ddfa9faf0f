//! The channel protocol between the trainer thread and its front ends (TUI, headless, tests).
//!
//! Both sides import this module and nothing else of each other: the trainer never imports UI code.
//!
//! # Delivery policy
//! * Events travel on an **unbounded** crossbeam channel, so the trainer never blocks on a slow receiver.
//! * [`Event::Epoch`] metrics are small; every epoch produces exactly one. They are delivered in order, all of them,
//!   unless the trainer runs with an event backlog (`TrainConfig::event_backlog`, the TUI's 1024): while that
//!   many events wait unread, it keeps only the newest epoch's metrics and delivers them first once the queue
//!   drains or before any other event. Every other event is always delivered, in order.
//! * BatchNorm snapshots can be large (resnet50: 26,560 channels × 4 arrays). They are **coalesced**: the trainer
//!   stores the newest one in a [`Latest`] slot and sends [`Event::BnReady`] only when the slot was empty, i.e.
//!   when the receiver has taken the previous one. A lagging receiver therefore sees the newest snapshot and
//!   skips the stale ones; the JSONL log (written by the trainer itself) still records every epoch.
//! * Commands take effect before the trainer's next optimizer step, in the order they were sent.
//! * Every momentum in this protocol is in the **Keras convention**:
//!   `running = m·running + (1−m)·batch`. Keras 0.99 is PyTorch/candle 0.01 (`m_torch = 1 − m_keras`).
use std::sync::{Arc, Mutex};

use serde::Serialize;

/// Which BatchNorm statistics an evaluation uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EvalMode {
    /// Running (moving) statistics: Keras `evaluate`/`predict`, PyTorch `eval()`.
    Running,
    /// Statistics of the evaluated batch, updating nothing: Keras `learning_phase=1`.
    Batch,
}

impl EvalMode {
    pub fn toggled(self) -> Self {
        match self {
            EvalMode::Running => EvalMode::Batch,
            EvalMode::Batch => EvalMode::Running,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            EvalMode::Running => "running",
            EvalMode::Batch => "batch",
        }
    }
}

/// Why a run ended (the `reason` of the JSONL `end` record).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    Done,
    Quit,
    Signal,
    Error,
    /// The loss diverged (the front end quit after [`Event::Diverged`]): a failed run, exit status 1.
    Diverged,
}

impl EndReason {
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::Done => "done",
            EndReason::Quit => "quit",
            EndReason::Signal => "signal",
            EndReason::Error => "error",
            EndReason::Diverged => "diverged",
        }
    }
}

/// One BatchNorm layer as announced at start.
#[derive(Clone, Debug, Serialize)]
pub struct BnLayerInfo {
    pub name: String,
    pub channels: usize,
}

/// The data the evaluations are measured on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EvalOn {
    /// The training images (no held-out set).
    #[default]
    Train,
    /// Held-out images (`--data shapes`, `--val`, `--val-split`), as Keras fit's `validation_data`.
    Val,
}

impl EvalOn {
    pub fn as_str(self) -> &'static str {
        match self {
            EvalOn::Train => "train",
            EvalOn::Val => "val",
        }
    }
    /// The word the screen and the headless lines put before `running` / `batch`: `eval` or `val`.
    pub fn word(self) -> &'static str {
        match self {
            EvalOn::Train => "eval",
            EvalOn::Val => "val",
        }
    }
    /// Reads a log's `eval_on` (absent or unknown: `train`).
    pub fn from_name(s: Option<&str>) -> Self {
        match s {
            Some("val") => EvalOn::Val,
            _ => EvalOn::Train,
        }
    }
}

/// Facts about the run, sent once at start (and again after a restart).
#[derive(Clone, Debug)]
pub struct RunInfo {
    /// Preset name: `tiny`, `resnet18`, `resnet34`, `resnet50`, `resnet101`, `resnet152`.
    pub model: String,
    pub image_size: usize,
    pub batch_size: usize,
    pub classes: Vec<String>,
    /// File name of each *evaluated* image (the held-out set's with [`EvalOn::Val`], else the training set's), in
    /// data-set order (classes sorted by name, then files sorted): the images the predictions describe.
    pub images: Vec<String>,
    /// Class index of each evaluated image.
    pub labels: Vec<usize>,
    /// Images in the training set.
    pub train_images: usize,
    /// What the evaluations (`eval_running`, `eval_batch`, predictions) are measured on.
    pub eval_on: EvalOn,
    /// Where the held-out images come from (`shapes:20 (seed 1, held-out)`, a `--val` folder, `DIR (last 20% of
    /// each class)`); `None` when evaluating on the training set.
    pub val_data: Option<String>,
    /// Images per batch of the evaluation passes (`--eval-batch-size`, default `batch_size`).
    pub eval_batch_size: usize,
    /// `--val-transform` on the evaluation inputs: `none`, `scale255`, `no-normalize`, `invert`.
    pub val_transform: String,
    /// Where the data came from: `embedded seed3` or the `--data` path.
    pub data: String,
    /// `--normalize`: `none` (values in [0, 1]) or `imagenet`.
    pub normalize: String,
    /// `--norm`: `batch`, `group` or `layer` (the last two have no running statistics).
    pub norm: String,
    /// `--ema`: the decay of the weights' exponential moving average that is evaluated too.
    pub ema: Option<f64>,
    /// A pre-training phase on differently distributed data before the run (`30 epochs on x·0.5 + 0.5`).
    pub pretrain: Option<String>,
    /// `--scenario`: the lesson this run shows (`small-batch`, …).
    pub lesson: Option<String>,
    /// Device description, e.g. `cpu (2 threads)` or `cuda:0`.
    pub device: String,
    pub seed: u64,
    /// Keras convention.
    pub momentum: f64,
    pub cumulative: bool,
    pub lr: f64,
    pub optimizer: String,
    /// `None`: run until quit.
    pub epochs: Option<usize>,
    /// `keras` or `torch`: whose BatchNorm and Adam defaults the run follows.
    pub framework: String,
    pub bn_eps: f64,
    /// `biased` (Keras 3) or `unbiased` (PyTorch): the batch variance the running variance moves toward.
    pub bn_variance: String,
    pub adam_eps: f64,
    /// The checkpoint this run continues (`--resume`).
    pub resumed_from: Option<String>,
    pub params: usize,
    pub bn_layers: Vec<BnLayerInfo>,
    /// Epoch the run starts from (non-zero after `--resume`).
    pub start_epoch: usize,
    /// Most epochs a second (`None`: as fast as the hardware goes).
    pub pace: Option<f64>,
    /// The PyTorch weights the run started from (`--weights`).
    pub weights: Option<String>,
    /// `--freeze backbone`: how its BatchNorm layers behave (`inference`, `train-frozen-stats`, `train`).
    pub frozen_bn: Option<String>,
}

/// Loss and accuracy of one pass.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Metric {
    pub loss: f32,
    pub acc: f32,
}

/// Everything measured in one epoch (see the delivery policy above).
#[derive(Clone, Debug)]
pub struct EpochMetrics {
    /// 1-based epoch number.
    pub epoch: usize,
    /// Optimizer steps so far.
    pub step: usize,
    /// Momentum used for this epoch's updates (Keras convention).
    pub momentum: f64,
    pub cumulative: bool,
    /// BatchNorm running-stat updates since the last reset.
    pub t: u64,
    /// How far the running statistics are from their start (after this epoch).
    pub age: StatsAge,
    /// The training pass itself (batch statistics, averaged over the epoch's batches).
    pub train: Metric,
    /// Whole data set, running statistics, nothing updated.
    pub eval_running: Metric,
    /// Whole data set, batch statistics, nothing updated.
    pub eval_batch: Metric,
    /// Softmax probabilities `[image][class]` in data-set order (at most [`MAX_PREDICTIONS`] images).
    pub predictions_running: Vec<Vec<f32>>,
    pub predictions_batch: Vec<Vec<f32>>,
    /// Mean wall time of one optimizer step in this epoch (forward, backward, update), in ms.
    pub step_ms: f64,
    /// `--ema`: the averaged weights evaluated with their running statistics (copied from the trained model).
    pub eval_ema: Option<Metric>,
}

/// How far the running statistics have moved from their (0, 1) start, exactly, whatever the momenta were.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct StatsAge {
    /// Updates since the last reset.
    pub t: u64,
    /// `w = ∏ mᵢ` over those updates (Keras convention): the weight the running stats still give to their start.
    /// 1 right after a reset, 0 after a recalibration or a cumulative update from t = 0.
    pub init_weight: f64,
    /// The momentum of every one of those updates while it was one value (`None` when they differed, or t = 0):
    /// then `w = mᵗ`, the closed form the screen explains.
    pub constant_momentum: Option<f64>,
}

impl StatsAge {
    /// A fresh start: no update yet.
    pub const START: StatsAge = StatsAge {
        t: 0,
        init_weight: 1.0,
        constant_momentum: None,
    };

    /// `1 − w`: how far the running stats have travelled from their start toward the batch statistics.
    pub fn travelled(&self) -> f64 {
        1.0 - self.init_weight
    }

    /// Further updates at momentum `m` (Keras) until the start's weight is at most 1 %:
    /// `⌈ln(0.01 / w) / ln m⌉`, 0 when it already is, `None` when it never will be (m = 1).
    pub fn updates_to_one_percent(&self, m: f64) -> Option<u64> {
        updates_to_reach(self.init_weight, 0.01, m)
    }
}

/// Updates at momentum `m` (Keras) that take a start weight `w` down to `target` or below: `⌈ln(target/w)/ln m⌉`,
/// 0 if `w ≤ target` already, `None` if never (m = 1 with w above the target).
pub fn updates_to_reach(w: f64, target: f64, m: f64) -> Option<u64> {
    if w <= target {
        Some(0)
    } else if m >= 1.0 {
        None
    } else if m <= 0.0 {
        Some(1)
    } else {
        // The tiny tolerance keeps exact powers (0.1² = 0.01) from rounding up to one more update.
        Some(((target / w).ln() / m.ln() - 1e-9).ceil().max(0.0) as u64)
    }
}

/// A re-evaluation between epochs (see [`Event::Refreshed`]).
#[derive(Clone, Debug)]
pub struct Refresh {
    /// Epochs completed (0 right after a restart).
    pub epoch: usize,
    pub age: StatsAge,
    pub eval_running: Metric,
    pub eval_batch: Metric,
    pub predictions_running: Vec<Vec<f32>>,
    pub predictions_batch: Vec<Vec<f32>>,
    /// As in [`EpochMetrics::eval_ema`].
    pub eval_ema: Option<Metric>,
}

/// How far a slow phase is (see [`Event::Progress`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Progress {
    /// What the trainer does, in words: `pre-training the backbone`.
    pub what: String,
    /// What `done` and `total` count: `epoch`, `step`.
    pub unit: &'static str,
    /// Units finished, of `total`.
    pub done: usize,
    pub total: usize,
    /// The whole phase's share done, 0 to 1 (finer than `done / total`: the batches inside an epoch count).
    pub fraction: f64,
}

impl Progress {
    /// `pre-training the backbone: epoch 12 of 30` (the unit in progress, counted from 1).
    pub fn words(&self) -> String {
        if self.total <= 1 {
            return format!("{}…", self.what);
        }
        let at = (self.done + 1).min(self.total);
        format!("{}: {} {at} of {}", self.what, self.unit, self.total)
    }
}

/// How many images' predictions an epoch carries.
pub const MAX_PREDICTIONS: usize = 32;

/// One BatchNorm layer's statistics.
#[derive(Clone, Debug, Serialize)]
pub struct BnLayerSnapshot {
    pub name: String,
    /// Values per channel in the last training batch (`N·H·W`; 0 before the first). With 1, train-mode BatchNorm
    /// is degenerate (PyTorch refuses: "Expected more than 1 value per channel when training").
    pub n: usize,
    /// `‖running_mean − batch_mean‖₂ / (‖batch_mean‖₂ + 1e-8)`.
    pub mean_gap: f32,
    /// `‖running_var − batch_var‖₂ / (‖batch_var‖₂ + 1e-8)`.
    pub var_gap: f32,
    pub running_mean: Vec<f32>,
    pub running_var: Vec<f32>,
    /// The last training batch's mean and biased variance: what normalised it.
    pub batch_mean: Vec<f32>,
    pub batch_var: Vec<f32>,
}

/// All BatchNorm layers after an epoch.
#[derive(Clone, Debug)]
pub struct BnSnapshot {
    pub epoch: usize,
    pub t: u64,
    pub age: StatsAge,
    pub layers: Vec<BnLayerSnapshot>,
}

/// What a command changed, as acknowledged by the trainer (also the JSONL `event` record).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Momentum,
    EvalMode,
    Pause,
    Resume,
    ResetStats,
    Recalibrate,
    Restart,
    Cumulative,
    Pace,
    Diverged,
    /// A training batch gave some BatchNorm layer one value per channel.
    OneValuePerChannel,
    /// The trainer paused by itself after `--pause-at`'s epoch (the TUI's opening).
    PauseAt,
    /// `--save-weights` wrote the model as a PyTorch state_dict (value: the path).
    SaveWeights,
    /// An evaluation batch with batch statistics gives some BatchNorm layer one value per channel.
    OneValueInEvaluation,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Momentum => "momentum",
            EventKind::EvalMode => "eval_mode",
            EventKind::Pause => "pause",
            EventKind::Resume => "resume",
            EventKind::ResetStats => "reset_stats",
            EventKind::Recalibrate => "recalibrate",
            EventKind::Restart => "restart",
            EventKind::Cumulative => "cumulative",
            EventKind::Pace => "pace",
            EventKind::Diverged => "diverged",
            EventKind::OneValuePerChannel => "one_value_per_channel",
            EventKind::PauseAt => "pause_at",
            EventKind::SaveWeights => "save_weights",
            EventKind::OneValueInEvaluation => "one_value_in_evaluation",
        }
    }
}

/// Trainer → front end.
#[derive(Clone, Debug)]
pub enum Event {
    /// The run (re)started. Sent first, and again after [`Command::Restart`].
    Started(Arc<RunInfo>),
    /// With `--weights`: the imported model looked at on the data before any step (sent after `Started`).
    Inspected(Arc<Inspection>),
    /// One epoch finished.
    Epoch(Box<EpochMetrics>),
    /// A new BatchNorm snapshot waits in the [`Latest`] slot.
    BnReady,
    /// Both evaluations again, right after a command changed the running statistics or the weights (reset,
    /// recalibrate, restart), also while paused, so that every number on screen agrees with the state the user
    /// just created. No epoch passed: it replaces the newest epoch's evaluation figures, it adds no history.
    Refreshed(Box<Refresh>),
    /// A command was applied (before the given epoch's next step). `value` is human-readable.
    Applied {
        epoch: usize,
        what: EventKind,
        value: String,
    },
    /// The trainer paused itself because the run diverged: `what` says where (the training loss, an evaluation,
    /// the running statistics), `loss` is the training loss.
    Diverged { epoch: usize, loss: f32, what: String },
    /// Something the user should know that does not stop the run (e.g. one value per channel).
    Warning {
        epoch: usize,
        what: EventKind,
        text: String,
    },
    /// A slow phase before the run proper (pre-training, inspecting imported weights): what it does and how far it
    /// is. Sent at most a few times a second; the phase is over at the next `Epoch`, `Refreshed`, `Inspected`,
    /// `Applied`, `Error` or `Finished`, or a `Progress` with `done == total`.
    Progress(Progress),
    /// The trainer failed (an error or a panic); it has stopped training.
    Error(String),
    /// The trainer thread is about to exit. `checkpoint` names the file written, if any.
    Finished {
        epochs: usize,
        reason: EndReason,
        checkpoint: Option<String>,
    },
}

/// Front end → trainer.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    /// Keras convention, in `[0, 1]`. Also switches cumulative mode off.
    SetMomentum(f64),
    /// PyTorch `momentum=None`: running stats become the plain average of all batches since the last reset.
    SetCumulative(bool),
    Pause,
    Resume,
    /// Run exactly one epoch while paused.
    Step,
    /// Running stats back to mean 0 / var 1 and t = 0; the weights stay.
    ResetStats,
    /// Re-estimate running stats from one pass over the data (cumulative average, no weight update).
    Recalibrate,
    /// New weights (a new seed derived from the old one), fresh optimizer and stats.
    Restart,
    /// At most this many epochs a second (`None`: full speed). A slower pace leaves time to watch the mystery.
    SetPace(Option<f64>),
    /// The front end switched the headline evaluation mode; the trainer records it in the log.
    NoteEvalMode(EvalMode),
    /// Stop: write the checkpoint (if asked) and the `end` record, send [`Event::Finished`], exit.
    Quit(EndReason),
}

/// A single-value mailbox that keeps only the newest value (see the module docs).
#[derive(Debug)]
pub struct Latest<T> {
    slot: Mutex<Option<T>>,
}

impl<T> Default for Latest<T> {
    fn default() -> Self {
        Latest { slot: Mutex::new(None) }
    }
}

impl<T> Latest<T> {
    /// Stores `value`, replacing any unread one. Returns `true` if the slot was empty, i.e. the receiver needs a
    /// notification.
    pub fn put(&self, value: T) -> bool {
        let mut slot = self.slot.lock().unwrap_or_else(|e| e.into_inner());
        slot.replace(value).is_none()
    }

    /// Takes the newest value, if any.
    pub fn take(&self) -> Option<T> {
        self.slot.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

/// The shared slot for BatchNorm snapshots.
pub type BnSlot = Arc<Latest<Arc<BnSnapshot>>>;

/// Converts between the two momentum conventions (the map is its own inverse).
pub fn keras_to_torch(m: f64) -> f64 {
    1.0 - m
}

/// Fraction of the way the running stats have travelled from their start after `t` updates at one momentum:
/// `1 − mᵗ` (the closed form; [`StatsAge::travelled`] is exact whatever the momenta were).
pub fn travelled(m_keras: f64, t: u64) -> f64 {
    1.0 - m_keras.powf(t as f64)
}

/// Updates needed from the start to get within 1 % of a constant target: `⌈ln 0.01 / ln m⌉` (`None` for m = 1:
/// never; 1 for m = 0).
pub fn steps_to_one_percent(m_keras: f64) -> Option<u64> {
    updates_to_reach(1.0, 0.01, m_keras)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latest_coalesces() {
        let l = Latest::default();
        assert!(l.put(1));
        assert!(!l.put(2));
        assert_eq!(l.take(), Some(2));
        assert_eq!(l.take(), None);
        assert!(l.put(3));
    }

    #[test]
    fn closed_forms() {
        assert!((travelled(0.99, 5) - 0.0490099501).abs() < 1e-9);
        assert_eq!(steps_to_one_percent(0.99), Some(459));
        assert_eq!(steps_to_one_percent(0.0), Some(1));
        assert_eq!(steps_to_one_percent(1.0), None);
        assert!((keras_to_torch(0.99) - 0.01).abs() < 1e-12);
        assert_eq!(updates_to_reach(1.0, 0.01, 0.1), Some(2));
    }

    #[test]
    fn start_weight_whatever_the_momenta() {
        // The seed at epoch 5: 454 more updates at 0.99.
        let five = StatsAge {
            t: 5,
            init_weight: 0.99f64.powi(5),
            constant_momentum: Some(0.99),
        };
        assert_eq!(five.updates_to_one_percent(0.99), Some(454));
        assert!((five.travelled() - travelled(0.99, 5)).abs() < 1e-12);
        // 95 updates at 0.99 then 80 at 0.9: far beyond 1 %, and not 1 − 0.9¹⁷⁵.
        let mixed = StatsAge {
            t: 175,
            init_weight: 0.99f64.powi(95) * 0.9f64.powi(80),
            constant_momentum: None,
        };
        assert!((mixed.travelled() - (1.0 - 0.99f64.powi(95) * 0.9f64.powi(80))).abs() < 1e-15);
        assert_eq!(mixed.updates_to_one_percent(0.99), Some(0));
        // After a recalibration the start weighs nothing.
        let recal = StatsAge {
            t: 1,
            init_weight: 0.0,
            constant_momentum: Some(0.0),
        };
        assert_eq!(recal.travelled(), 1.0);
        assert_eq!(recal.updates_to_one_percent(0.9999), Some(0));
        assert_eq!(StatsAge::START.updates_to_one_percent(1.0), None);
    }
}

/// The front end's end of a running trainer: where commands go, where events come from, and the BN snapshot slot.
#[derive(Clone, Debug)]
pub struct Link {
    pub commands: crossbeam_channel::Sender<Command>,
    pub events: crossbeam_channel::Receiver<Event>,
    pub bn: BnSlot,
}

/// One evaluation pass of an inspection, with every image's logits in data order.
#[derive(Clone, Debug, Serialize)]
pub struct InspectPass {
    pub loss: f32,
    pub acc: f32,
    pub logits: Vec<Vec<f32>>,
}

/// How far a BatchNorm layer's running statistics are from the statistics of the data (what a recalibration on
/// it gives): `‖running − data‖₂ / ‖data‖₂` for the mean and for the variance.
#[derive(Clone, Debug, Serialize)]
pub struct LayerGap {
    pub name: String,
    pub mean_gap: f32,
    pub var_gap: f32,
}

/// One evaluation of `bnscope inspect`'s blame: some layers on batch statistics, the others on running ones.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct BlameFigure {
    pub loss: f32,
    pub acc: f32,
    /// How much of the gap between all-running and all-batch this closes: `(L_running − L)/(L_running − L_batch)`
    /// for the loss, `(A − A_running)/(A_batch − A_running)` for the accuracy; NaN where the two ends agree.
    pub loss_share: f32,
    pub acc_share: f32,
}

/// Which layer to blame: evaluation with running statistics but this layer alone (`alone`), or this layer and
/// every one before it in forward order (`prefix`), on batch statistics.
#[derive(Clone, Debug, Serialize)]
pub struct LayerBlame {
    pub name: String,
    pub alone: BlameFigure,
    pub prefix: BlameFigure,
}

/// How many evaluated images the blame pass reads unless told otherwise (`bnscope inspect --blame-samples`; the
/// TUI's epoch 0 with `--weights`): two evaluations of them per BatchNorm layer.
pub const BLAME_SAMPLES: usize = 256;

/// `bnscope inspect`: imported weights looked at on the data, before any training step.
#[derive(Clone, Debug, Serialize)]
pub struct Inspection {
    pub model: String,
    pub images: Vec<String>,
    pub classes: Vec<String>,
    pub labels: Vec<usize>,
    /// Evaluation with the running statistics (PyTorch `eval()`, Keras `evaluate`).
    pub eval_running: InspectPass,
    /// Evaluation with each batch's own statistics, updating nothing.
    pub eval_batch: InspectPass,
    /// Evaluation with running statistics re-estimated on this data (AdaBN / `swa_utils.update_bn`).
    pub recalibrated: InspectPass,
    /// Largest gap first.
    pub layers: Vec<LayerGap>,
    /// Per layer in forward order: the evaluation with it alone, and with the first k, on batch statistics
    /// (`bnscope inspect`; empty in the TUI's epoch 0).
    pub blame: Vec<LayerBlame>,
    /// How many of the evaluated images (the first ones) the blame was computed on: at most `--blame-samples`
    /// ([`BLAME_SAMPLES`] by default), since a blame pass is one evaluation per layer and per prefix.
    pub blame_samples: usize,
    /// One sentence per finding, most important first.
    pub findings: Vec<String>,
    /// The findings as one paragraph.
    pub diagnosis: String,
    /// The first finding in a few words (the TUI's short header).
    #[serde(skip)]
    pub summary: String,
    /// The imported running statistics' age (t = `num_batches_tracked`).
    #[serde(skip)]
    pub age: StatsAge,
}
