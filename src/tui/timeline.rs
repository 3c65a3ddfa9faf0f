//! A log as the TUI shows it (`bnscope replay`/`watch`): every epoch of the first log with what it lacks as
//! `None`, its events, the other logs' running means (ranks of a distributed run), and the cursor, the epoch
//! every panel shows. [`Timeline::take`] takes the records as they come (all at once for a replay, as the file
//! grows for a watch); [`Timeline::show`] writes the cursor's epoch into the [`Store`] the panels read, as the
//! trainer's events would have left it at that epoch.
use std::sync::Arc;

use crate::logfile::{self as replay, Record, Span};
use crate::protocol::{BnLayerInfo, BnLayerSnapshot, BnSnapshot, RunInfo, StatsAge};

use super::store::{History, Point, Series, Shown, Store, Val};

/// One epoch of the shown log, packed (128 bytes: a million-epoch log keeps 128 MB of them, against the ~350 of
/// a [`Shown`] with its `Option`s and vectors; `tests/tui_replay.rs` pins the size). Its figures are exact; its
/// `bn` record and predictions are read again from the file by span when the cursor comes here (or, for records
/// read with their arrays, kept in `full`).
#[derive(Clone, Debug)]
pub struct Entry {
    /// 1-based epoch number.
    pub epoch: u64,
    /// Index into [`Timeline::runs`].
    pub run: u32,
    /// Which optional fields are present (`HAS_*`), and `cumulative`.
    flags: u16,
    step: u64,
    momentum: f64,
    step_ms: f64,
    /// acc, loss of train, eval running, eval batch.
    figures: [f32; 6],
    ema: [f32; 2],
    /// The running statistics' age: `t`, `init_weight`, `constant_momentum`.
    age_t: u64,
    age_w: f64,
    age_m: f64,
    /// The `bn` record's and the epoch record's (its predictions') place in the file.
    bn_at: u64,
    pred_at: u64,
    bn_len: u32,
    pred_len: u32,
    /// A `bn` record and predictions read with their arrays (no file to read them again from).
    full: Option<Box<Full>>,
}

/// What a record read with its arrays adds to an [`Entry`].
#[derive(Clone, Debug, Default)]
struct Full {
    bn: Option<Arc<BnSnapshot>>,
    gaps_missing: Vec<(bool, bool)>,
    predictions_running: Option<Vec<Vec<f32>>>,
    predictions_batch: Option<Vec<Vec<f32>>>,
}

const HAS_STEP: u16 = 1 << 6;
const HAS_MOMENTUM: u16 = 1 << 7;
const HAS_STEP_MS: u16 = 1 << 8;
const HAS_EMA: u16 = 1 << 9;
const CUMULATIVE: u16 = 1 << 10;
const HAS_AGE: u16 = 1 << 11;
const HAS_AGE_M: u16 = 1 << 12;
const HAS_BN_SPAN: u16 = 1 << 13;
const HAS_PRED_SPAN: u16 = 1 << 14;

impl Entry {
    fn new(run: usize, s: Shown, age: Option<StatsAge>, predictions_at: Option<Span>) -> Entry {
        let mut flags = 0u16;
        let mut figures = [0f32; 6];
        for (i, v) in [s.train, s.eval_running, s.eval_batch].iter().enumerate() {
            for (j, x) in [v.acc, v.loss].into_iter().enumerate() {
                if let Some(x) = x {
                    figures[2 * i + j] = x;
                    flags |= 1 << (2 * i + j);
                }
            }
        }
        let mut set = |bit: u16, on: bool| {
            if on {
                flags |= bit
            }
        };
        set(HAS_STEP, s.step.is_some());
        set(HAS_MOMENTUM, s.momentum.is_some());
        set(HAS_STEP_MS, s.step_ms.is_some());
        set(HAS_EMA, s.eval_ema.is_some());
        set(CUMULATIVE, s.cumulative);
        set(HAS_AGE, age.is_some());
        set(HAS_AGE_M, age.is_some_and(|a| a.constant_momentum.is_some()));
        set(HAS_PRED_SPAN, predictions_at.is_some());
        let full = (s.predictions_running.is_some() || s.predictions_batch.is_some()).then(|| {
            Box::new(Full {
                predictions_running: s.predictions_running,
                predictions_batch: s.predictions_batch,
                ..Full::default()
            })
        });
        let ema = s.eval_ema.map_or([0.0; 2], |m| [m.loss, m.acc]);
        let pred = predictions_at.unwrap_or(Span { offset: 0, len: 0 });
        Entry {
            epoch: s.epoch as u64,
            run: run as u32,
            flags,
            step: s.step.unwrap_or(0) as u64,
            momentum: s.momentum.unwrap_or(0.0),
            step_ms: s.step_ms.unwrap_or(0.0),
            figures,
            ema,
            age_t: age.map_or(0, |a| a.t),
            age_w: age.map_or(0.0, |a| a.init_weight),
            age_m: age.and_then(|a| a.constant_momentum).unwrap_or(0.0),
            bn_at: 0,
            pred_at: pred.offset,
            bn_len: 0,
            pred_len: pred.len,
            full,
        }
    }

    fn has(&self, bit: u16) -> bool {
        self.flags & bit != 0
    }

    fn val(&self, i: usize) -> Val {
        let f = |j: usize| self.has(1 << (2 * i + j)).then_some(self.figures[2 * i + j]);
        Val { acc: f(0), loss: f(1) }
    }

    /// The epoch as the screen shows it (the predictions only where read with their arrays).
    pub fn shown(&self) -> Shown {
        let full = self.full.as_deref();
        Shown {
            epoch: self.epoch as usize,
            step: self.has(HAS_STEP).then_some(self.step as usize),
            momentum: self.has(HAS_MOMENTUM).then_some(self.momentum),
            cumulative: self.has(CUMULATIVE),
            train: self.val(0),
            eval_running: self.val(1),
            eval_batch: self.val(2),
            predictions_running: full.and_then(|f| f.predictions_running.clone()),
            predictions_batch: full.and_then(|f| f.predictions_batch.clone()),
            step_ms: self.has(HAS_STEP_MS).then_some(self.step_ms),
            eval_ema: self.has(HAS_EMA).then_some(crate::protocol::Metric {
                loss: self.ema[0],
                acc: self.ema[1],
            }),
        }
    }

    /// The epoch as a point of the charts.
    pub fn point(&self) -> Point {
        Point {
            epoch: self.epoch as usize,
            train: self.val(0),
            running: self.val(1),
            batch: self.val(2),
        }
    }

    /// How far the running statistics have moved (`None`: the log has neither `t` nor a momentum to tell).
    pub fn age(&self) -> Option<StatsAge> {
        self.has(HAS_AGE).then_some(StatsAge {
            t: self.age_t,
            init_weight: self.age_w,
            constant_momentum: self.has(HAS_AGE_M).then_some(self.age_m),
        })
    }

    /// This epoch's `bn` record, read with its arrays.
    pub fn bn(&self) -> Option<&Arc<BnSnapshot>> {
        self.full.as_ref()?.bn.as_ref()
    }

    /// Per layer of [`Entry::bn`]: the log has no mean gap, no variance gap.
    pub fn gaps_missing(&self) -> &[(bool, bool)] {
        self.full.as_ref().map_or(&[], |f| &f.gaps_missing)
    }

    /// Where this epoch's `bn` record is in the file (a lite record).
    pub fn bn_span(&self) -> Option<Span> {
        self.has(HAS_BN_SPAN).then_some(Span {
            offset: self.bn_at,
            len: self.bn_len,
        })
    }

    /// Where this epoch's record is, to read its predictions again (a lite record).
    pub fn predictions_at(&self) -> Option<Span> {
        self.has(HAS_PRED_SPAN).then_some(Span {
            offset: self.pred_at,
            len: self.pred_len,
        })
    }

    fn has_bn(&self) -> bool {
        self.bn().is_some() || self.has(HAS_BN_SPAN)
    }

    fn set_bn(&mut self, bn: Arc<BnSnapshot>, gaps_missing: Vec<(bool, bool)>) {
        let full = self.full.get_or_insert_with(Default::default);
        full.bn = Some(bn);
        full.gaps_missing = gaps_missing;
    }

    fn set_bn_span(&mut self, span: Span) {
        self.flags |= HAS_BN_SPAN;
        self.bn_at = span.offset;
        self.bn_len = span.len;
    }
}

/// One run of the shown log (a file may hold several: a restart, a second `fit`).
#[derive(Clone, Debug)]
pub struct LogRun {
    pub info: Arc<RunInfo>,
    pub run: replay::Run,
    /// Its first entry.
    pub first: usize,
    /// Its epochs downsampled, for the charts (built as they are read).
    pub series: Arc<Series>,
}

/// An event of the log, placed before the entry that followed it.
#[derive(Clone, Debug, PartialEq)]
pub struct LogEvent {
    /// Index of the first entry after the event (`entries.len()` when it came).
    pub at: usize,
    /// The epoch it happened after.
    pub epoch: u64,
    pub what: String,
    pub value: String,
    /// The control command it answers, the step it took effect at, why it was refused (docs/CONTROL.md).
    pub id: Option<String>,
    pub step: Option<u64>,
    pub reason: Option<String>,
}

impl LogEvent {
    /// The history mark of an event kind, if it gets one.
    fn symbol(&self) -> Option<char> {
        Some(match self.what.as_str() {
            "momentum" => 'm',
            "cumulative" => 'u',
            "eval_mode" => 'e',
            "reset_stats" => 'r',
            "recalibrate" => 'c',
            "restart" | "run" => 'R',
            "diverged" => '!',
            _ => return None,
        })
    }

    /// Whether `{`/`}` stop at it: what changed the running statistics or the run (pauses, the pace and the eval
    /// mode are the viewer's, not the run's).
    pub fn jumps(&self) -> bool {
        !matches!(
            self.what.as_str(),
            "pause" | "resume" | "pace" | "pause_at" | "eval_mode"
        )
    }

    /// `after epoch 12: momentum 0.9`.
    pub fn words(&self) -> String {
        let value = crate::terminal::printable(&self.value);
        match self.what.as_str() {
            "run" => format!("a new run starts after epoch {} ({value})", self.epoch),
            _ => format!("after epoch {}: {} {value}", self.epoch, self.what)
                .trim_end()
                .to_string(),
        }
    }
}

/// Where a followed (or read) file stands.
#[derive(Clone, Debug, PartialEq)]
pub enum FileState {
    /// Not read yet.
    Opening,
    /// `watch`: the file does not exist yet.
    Waiting,
    Reading,
    /// The file is not a bnscope log (or cannot be read): the message.
    Refused(String),
}

/// A log file of the timeline.
#[derive(Clone, Debug)]
pub struct LogFile {
    /// Its name as shown (control characters escaped).
    pub shown: String,
    pub state: FileState,
    /// Lines that are not JSON records, records of unknown types.
    pub skipped: (u64, u64),
    /// Epochs read from this file (all runs).
    pub epochs: usize,
    /// Where it is, to read a lite record's arrays again (`None`: the records keep their arrays).
    pub path: Option<std::path::PathBuf>,
    /// Lines too long to read.
    pub long_lines: u64,
    /// Bytes read of the file's size, while a reader is behind.
    pub progress: Option<(u64, u64)>,
}

/// The log(s) and the cursor.
#[derive(Clone, Debug)]
pub struct Timeline {
    /// The first file is shown; the others are compared with it (ranks).
    pub files: Vec<LogFile>,
    /// `bnscope watch`: the files grow.
    pub watch: bool,
    pub runs: Vec<LogRun>,
    pub entries: Vec<Entry>,
    pub events: Vec<LogEvent>,
    /// The `end` record of the last run: epochs, reason.
    pub end: Option<(u64, String)>,
    /// The entry every panel shows.
    pub cursor: usize,
    /// The cursor follows the newest epoch (a watch, until the user scrolls back; `End` returns).
    pub following: bool,
    /// Playing back (space) at the pace: the cursor moves on by itself.
    pub playing: bool,
    /// Every log's running means by epoch, for the rank spread (records read with their arrays)…
    pub means: replay::RankMeans,
    /// …or where each file's `bn` records are (lite records), by epoch.
    pub bn_spans: Vec<std::collections::BTreeMap<u64, Span>>,
    /// The running-statistics age of the run being read (w, the momentum of every update so far).
    age: Option<StatsAge>,
    /// Several rank logs: the file whose `bn` record the layers and channel panels show (`N` cycles it); the
    /// header and the charts show the first file's figures.
    pub detail: usize,
    /// An `inspect` record (a log of the Python `bnscope.inspect`): shown as the epoch 0 of imported weights.
    pub inspection: Option<(Arc<crate::protocol::Inspection>, Option<Arc<BnSnapshot>>)>,
}

impl Timeline {
    /// An empty timeline over `files` (names as shown).
    pub fn new(files: Vec<String>, watch: bool) -> Self {
        Timeline {
            files: files
                .into_iter()
                .map(|shown| LogFile {
                    shown,
                    state: FileState::Opening,
                    skipped: (0, 0),
                    epochs: 0,
                    path: None,
                    long_lines: 0,
                    progress: None,
                })
                .collect(),
            bn_spans: Vec::new(),
            watch,
            runs: Vec::new(),
            entries: Vec::new(),
            events: Vec::new(),
            end: None,
            cursor: 0,
            following: true,
            playing: false,
            means: replay::RankMeans::new(),
            age: None,
            detail: 0,
            inspection: None,
        }
    }

    /// Whether several logs are compared (ranks).
    pub fn ranked(&self) -> bool {
        self.files.len() > 1
    }

    /// File `file` starts over (truncated or replaced): what was read from it goes.
    pub fn restart_file(&mut self, file: usize) {
        let n = self.files.len();
        for maps in self.means.values_mut() {
            if let Some(m) = maps.get_mut(file) {
                m.clear();
            }
        }
        self.means
            .retain(|_, maps| maps.iter().any(|m| !m.is_empty()) || n == 0);
        if let Some(f) = self.files.get_mut(file) {
            f.skipped = (0, 0);
            f.epochs = 0;
            f.long_lines = 0;
        }
        if let Some(spans) = self.bn_spans.get_mut(file) {
            spans.clear();
        }
        if file == 0 {
            self.runs.clear();
            self.entries.clear();
            self.events.clear();
            self.end = None;
            self.cursor = 0;
            self.age = None;
            self.following = true;
            self.inspection = None;
        }
    }

    /// Takes records of file `file`. Returns whether the shown log got a new epoch.
    pub fn take(&mut self, file: usize, records: Vec<Record>) -> bool {
        let files = self.files.len();
        let mut grew = false;
        for rec in records {
            match &rec {
                Record::Bn {
                    epoch,
                    layers: Some(layers),
                    ..
                } => replay::add_means(&mut self.means, file, files, *epoch, layers),
                // Only a ranked view compares `bn` records across files (the shown file's are in its entries).
                Record::Bn {
                    epoch,
                    layers: None,
                    span,
                } if files > 1 => {
                    if self.bn_spans.len() < files {
                        self.bn_spans.resize(files, Default::default());
                    }
                    self.bn_spans[file].insert(*epoch, *span);
                }
                _ => {}
            }
            if let (Record::Epoch(_), Some(f)) = (&rec, self.files.get_mut(file)) {
                f.epochs += 1;
            }
            if file != 0 {
                continue;
            }
            match rec {
                Record::Run(run) => {
                    if !self.runs.is_empty() {
                        let epoch = self.entries.last().map_or(0, |e| e.epoch);
                        self.events.push(LogEvent {
                            at: self.entries.len(),
                            epoch,
                            what: "run".into(),
                            value: run.model.clone().unwrap_or_else(|| run.source.clone()),
                            id: None,
                            step: None,
                            reason: None,
                        });
                    }
                    self.end = None;
                    self.age = None;
                    self.runs.push(LogRun {
                        info: Arc::new(run_info(&run)),
                        run: *run,
                        first: self.entries.len(),
                        series: Default::default(),
                    });
                }
                Record::Epoch(e) => {
                    let Some(r) = self.runs.len().checked_sub(1) else {
                        continue;
                    };
                    let run = &self.runs[r].run;
                    let shown = shown(&e, run);
                    self.age = replay::next_age(self.age, &e, run);
                    let at = (e.has_predictions && e.predictions_running.is_none()).then_some(e.span);
                    let entry = Entry::new(r, shown, self.age, at);
                    Arc::make_mut(&mut self.runs[r].series).push(entry.point());
                    self.entries.push(entry);
                    grew = true;
                }
                Record::Bn { epoch, layers, span } => {
                    // The `bn` record follows its `epoch` record.
                    if let Some(last) = self.entries.last_mut() {
                        if last.epoch == epoch && !last.has_bn() {
                            match layers {
                                Some(layers) => {
                                    let (snap, missing) = snapshot(epoch, last.age(), &layers);
                                    last.set_bn(Arc::new(snap), missing);
                                }
                                None => last.set_bn_span(span),
                            }
                        }
                    }
                }
                Record::Event(ev) if matches!(ev.what.as_str(), "recalibrate" | "reset_stats") => {
                    // A log without `init_weight` (the Python writers): the next epoch's age starts from what the
                    // event did, not from a fall of `t` that looks like a reset. A recalibration leaves no weight
                    // on the (0, 1) start: travelled 100 %.
                    self.age = replay::age_after_event(&ev.what);
                    self.events.push(LogEvent {
                        at: self.entries.len(),
                        epoch: ev.epoch,
                        value: ev.value,
                        what: ev.what,
                        id: ev.id,
                        step: ev.step,
                        reason: ev.reason,
                    })
                }
                Record::Event(ev) => self.events.push(LogEvent {
                    at: self.entries.len(),
                    epoch: ev.epoch,
                    value: if ev.value.is_empty() {
                        evaluations(&ev)
                    } else {
                        ev.value
                    },
                    what: ev.what,
                    id: ev.id,
                    step: ev.step,
                    reason: ev.reason,
                }),
                Record::End { epochs, reason } => self.end = Some((epochs, reason)),
                Record::Inspect(replay::schema::Inspected { report, snapshot }) => {
                    let mut r = *report;
                    if let Some(run) = self.runs.last() {
                        if r.classes.is_empty() {
                            r.classes = run.run.classes.clone();
                        }
                    }
                    self.inspection = Some((Arc::new(r), snapshot.map(|s| Arc::new(*s))));
                }
            }
        }
        if grew && self.following {
            self.cursor = self.entries.len() - 1;
        }
        grew
    }

    /// The entry under the cursor.
    pub fn current(&self) -> Option<&Entry> {
        self.entries.get(self.cursor)
    }

    /// Moves the cursor by `step` entries (clamped); moving back stops following, reaching the newest follows again.
    pub fn step(&mut self, step: i64) -> bool {
        let Some(last) = self.entries.len().checked_sub(1) else {
            return false;
        };
        let next = (self.cursor as i64 + step).clamp(0, last as i64) as usize;
        let moved = next != self.cursor;
        self.cursor = next;
        self.following = self.cursor == last;
        moved
    }

    /// Moves the cursor to `entry` (clamped).
    pub fn go(&mut self, entry: usize) -> bool {
        self.step(entry as i64 - self.cursor as i64)
    }

    /// The entry the previous (`back`) or next event took place after, and the event.
    pub fn event_near(&self, back: bool) -> Option<(usize, &LogEvent)> {
        // An event at `at` happened after entry `at - 1`: the cursor there shows the state the event changed.
        let target = |e: &LogEvent| e.at.saturating_sub(1);
        let mut evs = self.events.iter().filter(|e| e.jumps() && e.at > 0);
        if back {
            evs.rfind(|e| target(e) < self.cursor).map(|e| (target(e), e))
        } else {
            evs.find(|e| target(e) > self.cursor).map(|e| (target(e), e))
        }
    }

    /// Writes the cursor's epoch into `store` as the trainer's events would have left it at that epoch: the run's
    /// facts, its history up to the cursor with the events marked, the epoch's figures and BatchNorm record.
    pub fn show(&self, store: &mut Store) {
        store.from_log = true;
        let Some(cur) = self.current() else {
            // Nothing (or nothing any more: a watched file started over) to show.
            store.info = self.runs.last().map(|r| r.info.clone());
            store.latest = None;
            store.age = None;
            store.bn = None;
            store.inspection = None;
            if let Some((r, snap)) = &self.inspection {
                // A log of `bnscope.inspect`: the inspection's numbers, as the TUI's epoch 0 with --weights.
                store.inspection = Some(r.clone());
                store.bn = snap.clone();
            }
            store.bn_gaps_missing.clear();
            store.history = Default::default();
            store.diverged = None;
            store.warnings.clear();
            return;
        };
        let run = &self.runs[cur.run as usize];
        let path = self.files.first().and_then(|f| f.path.as_deref());
        store.info = Some(run.info.clone());
        store.phase = super::store::Phase::Running;
        let mut shown = cur.shown();
        if let (Some(span), Some(path)) = (cur.predictions_at(), path) {
            // A lite record: the predictions of the epoch on screen, read again.
            if let Some(Record::Epoch(e)) = replay::reread(path, span) {
                let full = self::shown(&e, &run.run);
                shown.predictions_running = full.predictions_running;
                shown.predictions_batch = full.predictions_batch;
            }
        }
        store.latest = Some(Box::new(shown));
        store.age = cur.age();
        store.bn = cur.bn().cloned();
        store.bn_gaps_missing = cur.gaps_missing().to_vec();
        if let (Some(span), Some(path)) = (cur.bn_span(), path) {
            if let Some(Record::Bn {
                epoch,
                layers: Some(layers),
                ..
            }) = replay::reread(path, span)
            {
                let (snap, missing) = snapshot(epoch, cur.age(), &layers);
                store.bn = Some(Arc::new(snap));
                store.bn_gaps_missing = missing;
            }
        }
        if self.detail > 0 {
            // Another rank's record of this epoch (read again by its span), or nothing: never rank 0's under
            // another rank's name.
            store.bn = None;
            store.bn_gaps_missing.clear();
            let file = self.files.get(self.detail).and_then(|f| f.path.as_deref());
            let span = self.bn_spans.get(self.detail).and_then(|m| m.get(&cur.epoch));
            if let Some(Record::Bn {
                epoch,
                layers: Some(layers),
                ..
            }) = file.zip(span).and_then(|(p, s)| replay::reread(p, *s))
            {
                let (snap, missing) = snapshot(epoch, cur.age(), &layers);
                store.bn = Some(Arc::new(snap));
                store.bn_gaps_missing = missing;
            }
        }
        store.diverged = None;
        store.warnings.clear();
        store.rank_spread = self.rank_spread();
        // The charts: the cursor's whole run (downsampled as it was read, so that showing an epoch costs the same
        // at 100 or 10⁶ of them) with the cursor marked, and the newest HISTORY_CAP epochs up to the cursor
        // exactly (for `z`).
        let first = run.first;
        let end = self
            .runs
            .get(cur.run as usize + 1)
            .map_or(self.entries.len(), |r| r.first);
        let window = (self.cursor + 1).saturating_sub(super::store::HISTORY_CAP).max(first);
        let mut h = History {
            series: run.series.clone(),
            first: (window - first) as u64,
            cursor: Some((self.cursor - first) as u64),
            ..History::default()
        };
        for e in &self.entries[window..=self.cursor] {
            h.push_exact(e.point());
        }
        store.history = h;
        // Every event of the run is marked; those up to the cursor's epoch, and what happened right after it (the
        // state it changed is on screen), count (a divergence, a warning).
        let from = self.events.partition_point(|e| e.at <= first);
        for e in self.events[from..].iter().take_while(|e| e.at <= end) {
            if let Some(sym) = e.symbol() {
                store.history.mark_at((e.at - first) as u64, sym);
            }
            if e.at <= self.cursor + 1 {
                self.apply_event(e, store);
            }
        }
    }

    /// An event's effect on the screen.
    fn apply_event(&self, e: &LogEvent, store: &mut Store) {
        match e.what.as_str() {
            "diverged" => {
                let v: serde_json::Value = serde_json::from_str(&e.value).unwrap_or(serde_json::Value::Null);
                let loss = v.get("loss").and_then(serde_json::Value::as_f64).unwrap_or(f64::NAN) as f32;
                let what = v
                    .get("what")
                    .and_then(serde_json::Value::as_str)
                    .unwrap_or("the loss is not finite")
                    .to_string();
                store.diverged = Some((e.epoch as usize, loss, crate::terminal::printable(&what).into_owned()));
            }
            "one_value_per_channel" => store.warnings.push((
                crate::protocol::EventKind::OneValuePerChannel,
                crate::terminal::printable(&format!("one value per channel in {}: ", e.value)).into_owned(),
            )),
            _ => {}
        }
    }

    /// How far the ranks' running means are apart at the cursor's epoch (or the newest before it that every log
    /// has arrays for): `(epoch, [(spread, layer)])`, the largest first.
    pub fn rank_spread(&self) -> Option<(u64, Vec<(f64, String)>)> {
        if !self.ranked() {
            return None;
        }
        let epoch = self.current().map(|e| e.epoch);
        if let Some(found) = replay::spread_at(&self.means, epoch) {
            return Some(found);
        }
        // Lite records: the newest epochs (up to the cursor's) whose `bn` record every file has, read again.
        let spans = self.bn_spans.first()?;
        for (&e, _) in spans.range(..=epoch.unwrap_or(u64::MAX)).rev().take(64) {
            let maps: Option<Vec<_>> = self
                .files
                .iter()
                .zip(&self.bn_spans)
                .map(
                    |(f, spans)| match replay::reread(f.path.as_deref()?, *spans.get(&e)?)? {
                        Record::Bn { layers: Some(l), .. } => Some(replay::ranks::means_of(&l)),
                        _ => None,
                    },
                )
                .collect();
            if let Some(spread) = maps.as_deref().and_then(replay::ranks::spread_of) {
                return Some((e, spread));
            }
        }
        None
    }
}

/// A log's epoch as the screen shows it.
fn shown(e: &replay::Epoch, run: &replay::Run) -> Shown {
    let val = |m: Option<replay::Metric>| Val {
        loss: m.and_then(|m| m.loss).map(|x| x as f32),
        acc: m.and_then(|m| m.acc).map(|x| x as f32),
    };
    let preds = |p: &Option<Vec<Vec<f64>>>| {
        p.as_ref()
            .map(|rows| rows.iter().map(|r| r.iter().map(|&x| x as f32).collect()).collect())
    };
    Shown {
        epoch: e.epoch as usize,
        step: e.step.map(|s| s as usize),
        momentum: e.momentum.or(run.momentum),
        cumulative: e.cumulative || run.cumulative,
        train: val(e.train),
        eval_running: val(e.eval_running),
        eval_batch: val(e.eval_batch),
        predictions_running: preds(&e.predictions_running),
        predictions_batch: preds(&e.predictions_batch),
        step_ms: e.step_ms,
        eval_ema: e.eval_ema.and_then(|m| {
            Some(crate::protocol::Metric {
                loss: m.loss? as f32,
                acc: m.acc? as f32,
            })
        }),
    }
}

/// A `bn` record as a snapshot: arrays the log lacks are empty, gaps it lacks are computed from the arrays where
/// it has them; the second value says, per layer, that the mean gap is not in the log at all.
fn snapshot(epoch: u64, age: Option<StatsAge>, layers: &[replay::BnLayer]) -> (BnSnapshot, Vec<(bool, bool)>) {
    let f32s = |v: &Option<Vec<f64>>| -> Vec<f32> {
        v.as_ref()
            .map(|v| v.iter().map(|&x| x as f32).collect())
            .unwrap_or_default()
    };
    let gap = |r: &Option<Vec<f64>>, b: &Option<Vec<f64>>| -> Option<f64> {
        let (r, b) = (r.as_ref()?, b.as_ref()?);
        (r.len() == b.len() && !r.is_empty()).then(|| {
            let d = r.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum::<f64>().sqrt();
            d / (b.iter().map(|y| y * y).sum::<f64>().sqrt() + 1e-8)
        })
    };
    let mut missing = Vec::new();
    let layers = layers
        .iter()
        .map(|l| {
            let mean_gap = l.mean_gap.or_else(|| gap(&l.running_mean, &l.batch_mean));
            let var_gap = l.var_gap.or_else(|| gap(&l.running_var, &l.batch_var));
            missing.push((mean_gap.is_none(), var_gap.is_none()));
            BnLayerSnapshot {
                name: crate::terminal::printable(&l.name).into_owned(),
                n: l.n.unwrap_or(0) as usize,
                mean_gap: mean_gap.unwrap_or(f64::NAN) as f32,
                var_gap: var_gap.unwrap_or(f64::NAN) as f32,
                running_mean: f32s(&l.running_mean),
                running_var: f32s(&l.running_var),
                batch_mean: f32s(&l.batch_mean),
                batch_var: f32s(&l.batch_var),
            }
        })
        .collect();
    let age = age.unwrap_or(StatsAge::START);
    (
        BnSnapshot {
            epoch: epoch as usize,
            t: age.t,
            age,
            layers,
        },
        missing,
    )
}

/// The run facts the panels read, from a `run` record. What the log lacks is empty or 0 here; the panels that
/// show those facts ask the [`replay::Run`] itself (see `App::run_facts`).
fn run_info(run: &replay::Run) -> RunInfo {
    let p = |s: &str| crate::terminal::printable(s).into_owned();
    let images: Vec<String> = if run.image_names.is_empty() {
        (1..=run.labels.len()).map(|i| format!("image {i}")).collect()
    } else {
        run.image_names.iter().map(|s| p(s)).collect()
    };
    RunInfo {
        model: p(run.model.as_deref().unwrap_or("")),
        image_size: run.image_size.unwrap_or(0) as usize,
        batch_size: run.batch_size.unwrap_or(0) as usize,
        classes: run.classes.iter().map(|s| p(s)).collect(),
        labels: run.labels.clone(),
        train_images: run.train_images.map_or(images.len(), |n| n as usize),
        eval_on: run.eval_on(),
        val_data: run.val_data.as_deref().map(p),
        eval_batch_size: run.eval_batch_size.or(run.batch_size).unwrap_or(0) as usize,
        val_transform: p(run.val_transform.as_deref().unwrap_or("none")),
        images,
        data: String::new(),
        device: p(run.device.as_deref().unwrap_or("")),
        seed: run.seed.unwrap_or(0),
        momentum: run.momentum.unwrap_or(f64::NAN),
        cumulative: run.cumulative,
        lr: run.lr.unwrap_or(f64::NAN),
        optimizer: p(run.optimizer.as_deref().unwrap_or("")),
        epochs: None,
        framework: p(run.framework.as_deref().unwrap_or(&run.source)),
        bn_eps: run.bn_eps.unwrap_or(f64::NAN),
        bn_variance: p(run.bn_variance.as_deref().unwrap_or("unbiased")),
        adam_eps: f64::NAN,
        resumed_from: run.resumed_from.as_deref().map(p),
        weights: run.weights.as_deref().map(p),
        frozen_bn: run.frozen_bn.as_deref().map(p),
        norm: p(run.norm.as_deref().unwrap_or("batch")),
        ema: run.ema,
        pretrain: run.pretrain.as_deref().map(p),
        lesson: run.lesson.as_deref().map(p),
        normalize: p(run.normalize.as_deref().unwrap_or("none")),
        params: run.params.unwrap_or(0) as usize,
        bn_layers: run
            .layers
            .iter()
            .map(|(name, c)| BnLayerInfo {
                name: p(name),
                channels: c.unwrap_or(0) as usize,
            })
            .collect(),
        start_epoch: run.start_epoch as usize,
        pace: None,
    }
}

/// An `evaluate` event's two figures as words (empty when it has none).
fn evaluations(ev: &replay::Event) -> String {
    let one = |name: &str, m: Option<replay::Metric>| {
        m.map(|m| {
            let acc = m.acc.map_or("–".to_string(), |a| format!("{a:.3}"));
            let loss = m.loss.map_or("–".to_string(), |l| crate::format::line_loss(l as f32));
            format!("{name} acc {acc} loss {loss}")
        })
    };
    [one("eval running", ev.eval_running), one("eval batch", ev.eval_batch)]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" · ")
}
