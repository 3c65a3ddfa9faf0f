//! The trainer's data as the UI has received it: run info, the newest epoch, the bounded history, the newest
//! BatchNorm snapshot, and how the trainer's life is going. It changes only by [`Store::ingest`] (and the key
//! marks the app puts on the time axis); the view state (selection, eval mode, help, status line) lives in
//! [`super::App`].
use std::collections::VecDeque;
use std::sync::Arc;

use crate::protocol::{
    BnSlot, BnSnapshot, EndReason, EpochMetrics, Event, EventKind, Inspection, Metric, Refresh, RunInfo, StatsAge,
};

/// How many of the newest epochs the history keeps exactly (for `z`: the charts' zoom windows).
pub const HISTORY_CAP: usize = 1000;

/// How many buckets the downsampled whole-run history holds before neighbours merge pairwise (a power of two, so
/// that the buckets stay aligned to multiples of their width; at least half of it is in use once it has merged).
pub const SERIES_CAP: usize = 2048;

/// Loss and accuracy as the screen has them. `None` is "not in this log" (a replayed log may lack a pass or one
/// of its two numbers); a live run has both. NaN is a number that was not finite (a divergence), never a gap in
/// the data.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Val {
    pub loss: Option<f32>,
    pub acc: Option<f32>,
}

impl From<Metric> for Val {
    fn from(m: Metric) -> Self {
        Val {
            loss: Some(m.loss),
            acc: Some(m.acc),
        }
    }
}

/// One epoch as the screen shows it: the trainer's [`EpochMetrics`], or a log's epoch with what the log lacks as
/// `None`.
#[derive(Clone, Debug, Default)]
pub struct Shown {
    /// 1-based epoch number.
    pub epoch: usize,
    /// Optimizer steps so far.
    pub step: Option<usize>,
    /// Momentum of this epoch's updates (Keras convention).
    pub momentum: Option<f64>,
    pub cumulative: bool,
    pub train: Val,
    pub eval_running: Val,
    pub eval_batch: Val,
    /// Softmax probabilities `[image][class]`.
    pub predictions_running: Option<Vec<Vec<f32>>>,
    pub predictions_batch: Option<Vec<Vec<f32>>>,
    /// Mean wall time of one optimizer step, in ms.
    pub step_ms: Option<f64>,
    /// `--ema`: the averaged model with its (copied) running statistics.
    pub eval_ema: Option<Metric>,
}

impl From<&EpochMetrics> for Shown {
    fn from(m: &EpochMetrics) -> Self {
        Shown {
            epoch: m.epoch,
            step: Some(m.step),
            momentum: Some(m.momentum),
            cumulative: m.cumulative,
            train: m.train.into(),
            eval_running: m.eval_running.into(),
            eval_batch: m.eval_batch.into(),
            predictions_running: Some(m.predictions_running.clone()),
            predictions_batch: Some(m.predictions_batch.clone()),
            step_ms: Some(m.step_ms),
            eval_ema: m.eval_ema,
        }
    }
}

/// One epoch in the history.
#[derive(Clone, Copy, Debug)]
pub struct Point {
    pub epoch: usize,
    pub train: Val,
    pub running: Val,
    pub batch: Val,
}

impl Point {
    /// The three curves in the charts' order: train (batch), eval running, eval batch.
    pub fn curves(&self) -> [Val; 3] {
        [self.train, self.running, self.batch]
    }
}

/// Several epochs' values of one curve: how many the log has, their sum, least and greatest value, and whether
/// any was NaN/Inf (a divergence is never averaged away). Loss is summed as log10 (the charts' log scale), so the
/// mean is the geometric mean and one spike does not dominate it; the spike stays in `max`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Agg {
    /// Values taken (NaN/Inf included).
    pub n: u32,
    /// Finite values taken (`sum`, `min`, `max` are of those).
    pub finite: u32,
    pub sum: f64,
    pub min: f32,
    pub max: f32,
    pub bad: bool,
}

impl Default for Agg {
    fn default() -> Self {
        Agg {
            n: 0,
            finite: 0,
            sum: 0.0,
            min: f32::INFINITY,
            max: f32::NEG_INFINITY,
            bad: false,
        }
    }
}

impl Agg {
    /// Takes one value (already on the chart's scale: accuracy, or log10 of the loss).
    pub fn add(&mut self, v: Option<f32>) {
        let Some(v) = v else { return };
        self.n += 1;
        if !v.is_finite() {
            self.bad = true;
            return;
        }
        self.finite += 1;
        self.sum += v as f64;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
    }

    pub fn merge(&mut self, o: &Agg) {
        self.n += o.n;
        self.finite += o.finite;
        self.sum += o.sum;
        self.min = self.min.min(o.min);
        self.max = self.max.max(o.max);
        self.bad |= o.bad;
    }

    /// The mean of the finite values (`None`: none).
    pub fn mean(&self) -> Option<f32> {
        (self.finite > 0).then(|| (self.sum / self.finite as f64) as f32)
    }
}

/// A value on the chart's scale: accuracy as it is, loss as log10 (floored at 1e-8).
pub fn on_scale(v: Option<f32>, loss: bool) -> Option<f32> {
    match (v, loss) {
        (Some(v), true) if v.is_finite() => Some(v.max(1e-8).log10()),
        (v, _) => v,
    }
}

/// The six curves of a stretch of epochs: `acc[c]`, `loss[c]` for curve `c` of [`Point::curves`].
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Bucket {
    pub acc: [Agg; 3],
    pub loss: [Agg; 3],
}

impl Bucket {
    pub fn add(&mut self, p: &Point) {
        for (c, v) in p.curves().iter().enumerate() {
            self.acc[c].add(v.acc);
            self.loss[c].add(on_scale(v.loss, true));
        }
    }

    pub fn merge(&mut self, o: &Bucket) {
        for c in 0..3 {
            self.acc[c].merge(&o.acc[c]);
            self.loss[c].merge(&o.loss[c]);
        }
    }

    pub fn of(p: &Point) -> Bucket {
        let mut b = Bucket::default();
        b.add(p);
        b
    }
}

/// The whole run downsampled: at most [`SERIES_CAP`] buckets of `width` consecutive points each (bucket `i` holds
/// points `i·width..(i+1)·width`), merged pairwise and the width doubled when full; the newest point is kept
/// apart (`tail`) until the next arrives, since a re-evaluation (`Refreshed`) may still change it. Its memory and
/// the cost of drawing it are the same at 100 or 10⁶ epochs; min and max per bucket keep a one-epoch spike.
#[derive(Clone, Debug, Default)]
pub struct Series {
    /// Points per bucket (a power of two).
    pub width: u64,
    buckets: Vec<Bucket>,
    /// Points taken, the tail included.
    len: u64,
    tail: Option<Point>,
    /// The epoch number of the first point (the newest is `tail`).
    first_epoch: usize,
}

impl Series {
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn push(&mut self, p: Point) {
        if self.width == 0 {
            self.width = 1;
            self.first_epoch = p.epoch;
        }
        if let Some(t) = self.tail.take() {
            self.fold(&t);
        }
        self.tail = Some(p);
        self.len += 1;
    }

    /// The newest point (a re-evaluation changes it).
    pub fn last_mut(&mut self) -> Option<&mut Point> {
        self.tail.as_mut()
    }

    pub fn last(&self) -> Option<&Point> {
        self.tail.as_ref()
    }

    pub fn first_epoch(&self) -> Option<usize> {
        (self.len > 0).then_some(self.first_epoch)
    }

    /// Adds the point after those in the buckets.
    fn fold(&mut self, p: &Point) {
        let folded = self.len - 1;
        if !folded.is_multiple_of(self.width) {
            if let Some(b) = self.buckets.last_mut() {
                b.add(p);
                return;
            }
        }
        if self.buckets.len() == SERIES_CAP {
            let merged: Vec<Bucket> = self
                .buckets
                .chunks(2)
                .map(|pair| {
                    let mut b = pair[0];
                    if let Some(o) = pair.get(1) {
                        b.merge(o);
                    }
                    b
                })
                .collect();
            self.buckets = merged;
            self.width *= 2;
            // `folded` is SERIES_CAP·old width: a multiple of the new width, so the point starts a bucket.
        }
        self.buckets.push(Bucket::of(p));
    }

    /// Every bucket with the absolute number of its first point and how many points it holds, then the newest
    /// point as a bucket of one: the whole run, oldest first (what an export draws).
    pub fn buckets(&self) -> Vec<(u64, u64, Bucket)> {
        let folded = self.len - u64::from(self.tail.is_some());
        let mut out: Vec<(u64, u64, Bucket)> = self
            .buckets
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let start = i as u64 * self.width;
                (start, self.width.min(folded - start), *b)
            })
            .collect();
        if let Some(t) = &self.tail {
            out.push((self.len - 1, 1, Bucket::of(t)));
        }
        out
    }

    /// Points `range` (absolute point numbers) summed up; the range's ends are rounded out to whole buckets
    /// (callers ask for ranges aligned to multiples of `width`).
    pub fn sum(&self, range: std::ops::Range<u64>) -> Bucket {
        let mut out = Bucket::default();
        if self.width == 0 || range.is_empty() {
            return out;
        }
        let a = (range.start / self.width) as usize;
        let b = (range.end.div_ceil(self.width) as usize).min(self.buckets.len());
        for bk in self.buckets.get(a..b).unwrap_or_default() {
            out.merge(bk);
        }
        if let Some(t) = &self.tail {
            if range.contains(&(self.len - 1)) {
                out.add(t);
            }
        }
        out
    }
}

/// A key press (or trainer event) marked on the time axis.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mark {
    /// Absolute index of the first point recorded after the event.
    pub index: u64,
    pub symbol: char,
}

/// The epoch history: the whole run downsampled ([`Series`]), the newest [`HISTORY_CAP`] points exactly (a replay:
/// those up to the cursor), event marks, all indexed by absolute point number (0: the run's first epoch).
#[derive(Clone, Debug, Default)]
pub struct History {
    /// The whole run (shared with the replay's timeline, which builds it as the log is read).
    pub series: Arc<Series>,
    /// Exact points (for `z`'s windows): the newest, or in a replay those up to the cursor.
    pub points: VecDeque<Point>,
    /// Absolute index of `points[0]`.
    pub first: u64,
    pub marks: VecDeque<Mark>,
    /// A replay: the cursor's point, marked on the charts (the panels show its epoch).
    pub cursor: Option<u64>,
}

impl History {
    /// Absolute index the next point will get.
    pub fn next_index(&self) -> u64 {
        self.series.len()
    }

    /// One past the newest exact point (the cursor's, in a replay).
    pub fn points_end(&self) -> u64 {
        self.first + self.points.len() as u64
    }

    pub(crate) fn push(&mut self, p: Point) {
        Arc::make_mut(&mut self.series).push(p);
        self.push_exact(p);
    }

    /// Adds a point to the exact window only (a replay's window up to the cursor; the series is the timeline's).
    pub(crate) fn push_exact(&mut self, p: Point) {
        if self.points.len() == HISTORY_CAP {
            self.points.pop_front();
            self.first += 1;
        }
        self.points.push_back(p);
    }

    /// The newest point changed (a re-evaluation).
    pub(crate) fn set_last(&mut self, f: impl Fn(&mut Point)) {
        if let Some(p) = self.points.back_mut() {
            f(p);
        }
        if let Some(p) = Arc::make_mut(&mut self.series).last_mut() {
            f(p);
        }
    }

    pub(crate) fn mark(&mut self, symbol: char) {
        self.mark_at(self.next_index(), symbol);
    }

    pub(crate) fn mark_at(&mut self, index: u64, symbol: char) {
        let m = Mark { index, symbol };
        if self.marks.back() != Some(&m) {
            self.marks.push_back(m);
            // Marks are kept for the whole run, up to a bound (several share a column at a million epochs).
            if self.marks.len() > 4 * HISTORY_CAP {
                self.marks.pop_front();
            }
        }
    }
}

/// The run's facts with every name made safe to draw: a class folder named `$'\e[31mred'` shows as `\x1b[31mred`.
fn printable_info(info: Arc<RunInfo>) -> Arc<RunInfo> {
    use crate::terminal::printable;
    let bad = |s: &String| printable(s).len() != s.len();
    let val_bad = info.val_data.as_ref().is_some_and(bad);
    if !(info.classes.iter().any(bad) || info.images.iter().any(bad) || bad(&info.data) || val_bad) {
        return info;
    }
    let mut i = (*info).clone();
    for s in i
        .classes
        .iter_mut()
        .chain(i.images.iter_mut())
        .chain(std::iter::once(&mut i.data))
        .chain(i.val_data.as_mut())
    {
        *s = printable(s).into_owned();
    }
    Arc::new(i)
}

/// The trainer's life as the UI sees it.
#[derive(Clone, Debug, PartialEq)]
pub enum Phase {
    /// Waiting for `Started`.
    Starting,
    Running,
    /// The trainer sent `Finished` by itself.
    Finished {
        epochs: usize,
        reason: EndReason,
        checkpoint: Option<String>,
    },
}

/// What the trainer has told the UI.
pub struct Store {
    bn_slot: BnSlot,
    pub info: Option<Arc<RunInfo>>,
    pub latest: Option<Box<Shown>>,
    pub history: History,
    /// A log of several ranks: how far their running means are apart at the shown epoch (see
    /// `Timeline::rank_spread`).
    pub rank_spread: Option<(u64, Vec<(f64, String)>)>,
    pub bn: Option<Arc<BnSnapshot>>,
    /// Per layer of `bn`: its mean gap, its variance gap are not in the log (a replay; a live snapshot has them
    /// all). A layer without per-channel arrays has empty ones.
    pub bn_gaps_missing: Vec<(bool, bool)>,
    pub phase: Phase,
    /// `(epoch, loss, why)` of a divergence since the last (re)start.
    pub diverged: Option<(usize, f32, String)>,
    /// How far the running statistics are from their start: from the newest epoch or snapshot, whichever came
    /// last (a reset or a recalibration while paused sends a snapshot without an epoch). `None`: not in this log.
    pub age: Option<StatsAge>,
    /// The data comes from a log (`bnscope replay`/`watch`): there is no trainer to command.
    pub from_log: bool,
    /// Warnings since the last (re)start, newest last.
    pub warnings: Vec<(EventKind, String)>,
    /// The trainer's first error (the cause; shown on screen).
    pub error: Option<String>,
    /// Every error the trainer reported, in order (printed on stderr once the terminal is restored).
    pub errors: Vec<String>,
    /// The event channel closed.
    pub disconnected: bool,
    /// `--weights`: the imported model on the data before any step.
    pub inspection: Option<Arc<Inspection>>,
}

impl Store {
    /// An empty store; `bn` is the slot `Event::BnReady` refers to.
    pub fn new(bn: BnSlot) -> Self {
        Store {
            bn_slot: bn,
            info: None,
            latest: None,
            history: History::default(),
            rank_spread: None,
            bn: None,
            bn_gaps_missing: Vec::new(),
            phase: Phase::Starting,
            diverged: None,
            age: Some(StatsAge::START),
            from_log: false,
            warnings: Vec::new(),
            error: None,
            errors: Vec::new(),
            disconnected: false,
            inspection: None,
        }
    }

    /// Takes in one trainer event.
    pub fn ingest(&mut self, ev: Event) {
        match ev {
            Event::Inspected(r) => {
                self.age = Some(r.age);
                self.inspection = Some(r);
            }
            Event::Started(info) => {
                let info = printable_info(info);
                if self.info.is_some() {
                    // A restart: a new run with new weights from epoch 0. Its curves start afresh (the old run's
                    // would sit under an axis that starts again at 1).
                    self.bn = None;
                    self.diverged = None;
                    self.warnings.clear();
                    self.latest = None;
                    self.history = History::default();
                }
                self.age = Some(StatsAge::START);
                self.info = Some(info);
                if self.phase == Phase::Starting {
                    self.phase = Phase::Running;
                }
            }
            Event::Epoch(m) => {
                self.history.push(Point {
                    epoch: m.epoch,
                    train: m.train.into(),
                    running: m.eval_running.into(),
                    batch: m.eval_batch.into(),
                });
                if self.phase == Phase::Starting {
                    self.phase = Phase::Running;
                }
                self.age = Some(m.age);
                self.latest = Some(Box::new(Shown::from(&*m)));
            }
            Event::BnReady => {
                if let Some(snap) = self.bn_slot.take() {
                    self.age = Some(snap.age);
                    self.bn_gaps_missing.clear();
                    self.bn = Some(snap);
                }
            }
            Event::Applied { .. } | Event::Progress(_) => {}
            Event::Refreshed(r) => self.refresh(*r),
            Event::Diverged { epoch, loss, what } => {
                self.diverged = Some((epoch, loss, what));
                self.history.mark('!');
            }
            Event::Warning { what, text, .. } => {
                if !self.warnings.iter().any(|(_, t)| *t == text) {
                    self.warnings.push((what, text));
                }
            }
            Event::Error(msg) => {
                let msg = crate::terminal::printable(&msg).into_owned();
                self.error.get_or_insert_with(|| msg.clone());
                self.errors.push(msg);
            }
            Event::Finished {
                epochs,
                reason,
                checkpoint,
            } => {
                self.phase = Phase::Finished {
                    epochs,
                    reason,
                    checkpoint,
                };
            }
        }
    }

    /// A re-evaluation after a command: the newest figures become these. After a restart (epoch 0) there is no
    /// training pass yet; its row shows the batch-statistics pass, which is what a training step computes.
    fn refresh(&mut self, r: Refresh) {
        self.age = Some(r.age);
        match self.latest.as_mut() {
            Some(m) if r.epoch > 0 => {
                m.eval_running = r.eval_running.into();
                m.eval_batch = r.eval_batch.into();
                m.predictions_running = Some(r.predictions_running);
                m.predictions_batch = Some(r.predictions_batch);
                m.eval_ema = r.eval_ema;
                let (running, batch) = (r.eval_running.into(), r.eval_batch.into());
                self.history.set_last(|p| {
                    p.running = running;
                    p.batch = batch;
                });
            }
            _ => {
                let info = self.info.as_deref();
                self.latest = Some(Box::new(Shown {
                    epoch: r.epoch,
                    step: Some(0),
                    momentum: Some(info.map_or(0.99, |i| i.momentum)),
                    cumulative: info.is_some_and(|i| i.cumulative),
                    train: r.eval_batch.into(),
                    eval_running: r.eval_running.into(),
                    eval_batch: r.eval_batch.into(),
                    predictions_running: Some(r.predictions_running),
                    predictions_batch: Some(r.predictions_batch),
                    step_ms: Some(0.0),
                    eval_ema: r.eval_ema,
                }));
            }
        }
    }

    /// True while a trainer is there to take commands (never for a log).
    pub fn trainer_alive(&self) -> bool {
        !self.from_log && !self.disconnected && !self.finished()
    }

    pub fn finished(&self) -> bool {
        matches!(self.phase, Phase::Finished { .. })
    }

    /// The number of BatchNorm layers known (from the snapshot, else from the run info).
    pub fn layer_count(&self) -> usize {
        match (&self.bn, &self.info) {
            (Some(bn), _) => bn.layers.len(),
            (None, Some(info)) => info.bn_layers.len(),
            _ => 0,
        }
    }

    /// Updates since the last reset, as of the newest epoch or snapshot (`None`: not in this log).
    pub fn t(&self) -> Option<u64> {
        self.age.map(|a| a.t)
    }

    /// The run has running statistics but has not seen a training batch yet (just after a restart, `R R`): the
    /// batch side of every comparison is empty, not NaN.
    pub fn no_batch_yet(&self) -> bool {
        let Some(bn) = &self.bn else { return false };
        self.latest.as_ref().is_none_or(|m| m.step.unwrap_or(0) == 0)
            && !bn.layers.is_empty()
            && bn
                .layers
                .iter()
                .all(|l| !l.batch_mean.is_empty() && l.batch_mean.iter().all(|v| !v.is_finite()))
    }

    /// `--norm group` / `layer` (the groupnorm lesson): the layers have no running statistics at all.
    pub fn norm_without_running(&self) -> Option<&'static str> {
        match self.info.as_ref()?.norm.as_str() {
            "group" => Some("GroupNorm"),
            "layer" => Some("LayerNorm"),
            _ => None,
        }
    }

    /// `--frozen-bn inference` / `train-frozen-stats`: the running statistics never move in training (only `c`
    /// re-estimates them).
    pub fn frozen_stats(&self) -> Option<&str> {
        self.info
            .as_ref()?
            .frozen_bn
            .as_deref()
            .filter(|f| matches!(*f, "inference" | "train-frozen-stats"))
    }

    /// Layer `i`'s mean gap: `None` without a snapshot, `Some(None)` when the log lacks it.
    pub fn mean_gap(&self, i: usize) -> Option<Option<f32>> {
        let l = self.bn.as_ref()?.layers.get(i)?;
        Some((!self.bn_gaps_missing.get(i).is_some_and(|m| m.0)).then_some(l.mean_gap))
    }

    /// Layer `i`'s variance gap, likewise.
    pub fn var_gap(&self, i: usize) -> Option<Option<f32>> {
        let l = self.bn.as_ref()?.layers.get(i)?;
        Some((!self.bn_gaps_missing.get(i).is_some_and(|m| m.1)).then_some(l.var_gap))
    }
}
