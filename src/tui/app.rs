//! The UI state. It changes only in `handle_*`; rendering (in `render/`) only reads it.
use std::collections::VecDeque;
use std::sync::Arc;

use crossterm::event::KeyEvent;

use crate::protocol::{
    steps_to_one_percent, travelled, BnSlot, BnSnapshot, Command, EndReason, EpochMetrics, EvalMode, Event, EventKind,
    Metric, RunInfo,
};

use super::keys::{self, Action};
use super::theme::{Theme, Tone};
use super::TuiOptions;

/// How many epochs the history keeps.
pub const HISTORY_CAP: usize = 1000;

/// The status while an `n` step is on its way.
const STEPPING: &str = "one epoch…";

/// The momentum ladder, Keras convention.
pub const LADDER: &[f64] = &[0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999, 0.9999];
/// The pace ladder in epochs a second, slow to fast; past the top is full speed (`None`).
pub const PACES: &[f64] = &[1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0];

/// The next value of an ascending `ladder` above (`up`) or below `v`, if any.
fn ladder_step(ladder: &[f64], v: f64, up: bool) -> Option<f64> {
    if up {
        ladder.iter().copied().find(|&m| m > v + 1e-9)
    } else {
        ladder.iter().rev().copied().find(|&m| m < v - 1e-9)
    }
}

/// Everything the UI thread reacts to, as one enum.
#[derive(Debug)]
pub enum AppEvent {
    Key(KeyEvent),
    Trainer(Event),
    /// The trainer's event channel disconnected.
    Disconnected,
    /// A SIGINT/SIGTERM/SIGHUP number.
    Signal(i32),
    /// The terminal changed size.
    Resize,
}

/// One epoch in the history.
#[derive(Clone, Copy, Debug)]
pub struct Point {
    pub epoch: usize,
    pub train: Metric,
    pub running: Metric,
    pub batch: Metric,
}

/// A key press (or trainer event) marked on the time axis.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mark {
    /// Absolute index of the first point recorded after the event.
    pub index: u64,
    pub symbol: char,
}

/// Bounded epoch history plus event marks, indexed by absolute point number.
#[derive(Clone, Debug, Default)]
pub struct History {
    pub points: VecDeque<Point>,
    /// Absolute index of `points[0]`.
    pub first: u64,
    pub marks: VecDeque<Mark>,
}

impl History {
    /// Absolute index the next point will get.
    pub fn next_index(&self) -> u64 {
        self.first + self.points.len() as u64
    }

    fn push(&mut self, p: Point) {
        if self.points.len() == HISTORY_CAP {
            self.points.pop_front();
            self.first += 1;
            while self.marks.front().is_some_and(|m| m.index < self.first) {
                self.marks.pop_front();
            }
        }
        self.points.push_back(p);
    }

    fn mark(&mut self, symbol: char) {
        let m = Mark {
            index: self.next_index(),
            symbol,
        };
        if self.marks.back() != Some(&m) {
            self.marks.push_back(m);
            if self.marks.len() > HISTORY_CAP {
                self.marks.pop_front();
            }
        }
    }
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

/// The UI state.
pub struct App {
    pub(crate) theme: Theme,
    bn_slot: BnSlot,
    pub(crate) data_label: String,
    pub(crate) info: Option<Arc<RunInfo>>,
    pub(crate) latest: Option<Box<EpochMetrics>>,
    pub(crate) history: History,
    pub(crate) bn: Option<Arc<BnSnapshot>>,
    pub(crate) eval_mode: EvalMode,
    /// Momentum the UI last asked for or the trainer last reported (Keras convention).
    pub(crate) momentum: f64,
    pub(crate) cumulative: bool,
    /// A momentum/cumulative command is in flight: don't let epoch reports overwrite the display.
    setting_pending: bool,
    /// Epochs a second the trainer is held to (`None`: full speed).
    pub(crate) pace: Option<f64>,
    /// Show the PyTorch/candle convention first.
    pub(crate) torch_first: bool,
    pub(crate) paused: bool,
    pub(crate) phase: Phase,
    pub(crate) diverged: Option<(usize, f32)>,
    pub(crate) error: Option<String>,
    pub(crate) disconnected: bool,
    /// Quitting: waiting for the trainer's `Finished`.
    pub(crate) shutdown: Option<EndReason>,
    exit: Option<EndReason>,
    pub(crate) selected: usize,
    pub(crate) show_help: bool,
    pub(crate) status: Option<(Tone, String)>,
    dirty: bool,
}

impl App {
    /// A fresh UI state; `bn` is the slot `Event::BnReady` refers to.
    pub fn new(opts: &TuiOptions, bn: BnSlot) -> Self {
        App {
            theme: Theme::new(opts.ascii, opts.no_color),
            bn_slot: bn,
            data_label: opts.data_label.clone(),
            info: None,
            latest: None,
            history: History::default(),
            bn: None,
            eval_mode: EvalMode::Running,
            momentum: 0.99,
            cumulative: false,
            setting_pending: false,
            pace: None,
            torch_first: false,
            paused: false,
            phase: Phase::Starting,
            diverged: None,
            error: None,
            disconnected: false,
            shutdown: None,
            exit: None,
            selected: 0,
            show_help: false,
            status: None,
            dirty: true,
        }
    }

    /// Whether anything visible changed since the last call (the caller then redraws).
    pub fn take_dirty(&mut self) -> bool {
        std::mem::take(&mut self.dirty)
    }

    /// Whether a redraw is pending.
    pub fn is_dirty(&self) -> bool {
        self.dirty
    }

    /// Set once the UI should close, with the reason `run` returns.
    pub fn exit(&self) -> Option<EndReason> {
        self.exit
    }

    /// Set while waiting for the trainer to finish after a quit or a signal.
    pub fn shutting_down(&self) -> Option<EndReason> {
        self.shutdown
    }

    /// The headline evaluation mode.
    pub fn eval_mode(&self) -> EvalMode {
        self.eval_mode
    }

    /// The selected BatchNorm layer.
    pub fn selected_layer(&self) -> usize {
        self.selected
    }

    /// The status line text, if any.
    pub fn status_text(&self) -> Option<&str> {
        self.status.as_ref().map(|(_, s)| s.as_str())
    }

    /// Dispatches any event; returns the commands to send to the trainer, in order.
    pub fn handle_event(&mut self, ev: AppEvent) -> Vec<Command> {
        match ev {
            AppEvent::Key(k) => self.handle_key(k),
            AppEvent::Trainer(e) => {
                self.handle_trainer(e);
                Vec::new()
            }
            AppEvent::Disconnected => {
                self.handle_disconnect();
                Vec::new()
            }
            AppEvent::Signal(sig) => self.handle_signal(sig),
            AppEvent::Resize => {
                self.dirty = true;
                Vec::new()
            }
        }
    }

    /// True while a trainer is there to take commands.
    fn trainer_alive(&self) -> bool {
        !self.disconnected && !matches!(self.phase, Phase::Finished { .. })
    }

    fn set_status(&mut self, tone: Tone, s: impl Into<String>) {
        self.status = Some((tone, s.into()));
        self.dirty = true;
    }

    fn layer_count(&self) -> usize {
        match (&self.bn, &self.info) {
            (Some(bn), _) => bn.layers.len(),
            (None, Some(info)) => info.bn_layers.len(),
            _ => 0,
        }
    }

    /// The reason to return when the user closes a UI whose trainer is already gone.
    fn closed_reason(&self) -> EndReason {
        if self.error.is_some() || self.disconnected {
            EndReason::Error
        } else if let Phase::Finished { reason, .. } = self.phase {
            reason
        } else {
            EndReason::Quit
        }
    }

    fn begin_shutdown(&mut self, reason: EndReason) -> Vec<Command> {
        if !self.trainer_alive() {
            self.exit = Some(if reason == EndReason::Signal {
                reason
            } else {
                self.closed_reason()
            });
            return Vec::new();
        }
        self.shutdown = Some(reason);
        self.show_help = false;
        vec![Command::Quit(reason)]
    }

    /// A signal: ask the trainer to stop and wait for it (the loop enforces the 5 s limit).
    pub fn handle_signal(&mut self, sig: i32) -> Vec<Command> {
        if self.shutdown.is_some() {
            self.exit = self.shutdown;
            return Vec::new();
        }
        self.set_status(Tone::Warn, format!("signal {sig}: stopping…"));
        self.begin_shutdown(EndReason::Signal)
    }

    /// Called by the loop when the trainer did not finish in time.
    pub fn shutdown_timed_out(&mut self) {
        if let Some(r) = self.shutdown {
            self.exit = Some(r);
        }
    }

    pub fn handle_disconnect(&mut self) {
        if let Some(r) = self.shutdown {
            self.exit = Some(r);
        }
        if !self.disconnected {
            self.disconnected = true;
            if !matches!(self.phase, Phase::Finished { .. }) {
                self.set_status(
                    Tone::Bad,
                    "the trainer's event channel closed unexpectedly: press q to quit",
                );
            }
            self.dirty = true;
        }
    }

    /// Handles one trainer event.
    pub fn handle_trainer(&mut self, ev: Event) {
        self.dirty = true;
        match ev {
            Event::Started(info) => {
                if self.info.is_some() {
                    // A restart: keep the history (the 'R' mark shows the cut), drop stale stats.
                    self.bn = None;
                    self.diverged = None;
                }
                self.momentum = info.momentum;
                self.cumulative = info.cumulative;
                self.pace = info.pace;
                self.setting_pending = false;
                self.info = Some(info);
                self.selected = self.selected.min(self.layer_count().saturating_sub(1));
                if self.phase == Phase::Starting {
                    self.phase = Phase::Running;
                }
            }
            Event::Epoch(m) => {
                self.history.push(Point {
                    epoch: m.epoch,
                    train: m.train,
                    running: m.eval_running,
                    batch: m.eval_batch,
                });
                if !self.setting_pending {
                    self.momentum = m.momentum;
                    self.cumulative = m.cumulative;
                }
                if self.phase == Phase::Starting {
                    self.phase = Phase::Running;
                }
                // The `n` step arrived: say so instead of leaving "one epoch…" up.
                if self.paused && self.status.as_ref().is_some_and(|(_, t)| t == STEPPING) {
                    let sep = self.theme.sep();
                    self.set_status(
                        Tone::Good,
                        format!("stepped to epoch {}{sep}n steps again, space resumes", m.epoch),
                    );
                }
                self.latest = Some(m);
            }
            Event::BnReady => {
                if let Some(snap) = self.bn_slot.take() {
                    self.bn = Some(snap);
                    self.selected = self.selected.min(self.layer_count().saturating_sub(1));
                }
            }
            Event::Applied { epoch, what, value } => {
                match what {
                    EventKind::Momentum | EventKind::Cumulative => self.setting_pending = false,
                    EventKind::Pause => self.paused = true,
                    EventKind::Resume => self.paused = false,
                    _ => {}
                }
                if self.shutdown.is_none() {
                    let text = if value.is_empty() {
                        format!("applied before epoch {}: {}", epoch + 1, what.as_str())
                    } else {
                        format!("applied before epoch {}: {} {}", epoch + 1, what.as_str(), value)
                    };
                    self.set_status(Tone::Good, text);
                }
            }
            Event::Diverged { epoch, loss } => {
                self.diverged = Some((epoch, loss));
                self.paused = true;
                self.history.mark('!');
                self.set_status(
                    Tone::Bad,
                    format!("diverged at epoch {epoch} (loss {}): paused", super::fmt::loss(loss)),
                );
            }
            Event::Error(msg) => {
                self.error = Some(msg);
                self.set_status(Tone::Bad, "trainer error: press q to quit");
            }
            Event::Finished {
                epochs,
                reason,
                checkpoint,
            } => {
                if let Some(r) = self.shutdown {
                    self.exit = Some(r);
                }
                let mut text = format!("finished after {epochs} epochs ({})", reason.as_str());
                if let Some(c) = &checkpoint {
                    text.push_str(&format!("; checkpoint {c}"));
                }
                if self.shutdown.is_none() {
                    text.push_str(": press q to quit");
                }
                self.set_status(Tone::Good, text);
                self.phase = Phase::Finished {
                    epochs,
                    reason,
                    checkpoint,
                };
            }
        }
    }

    /// Handles a key press; returns the commands to send.
    pub fn handle_key(&mut self, key: KeyEvent) -> Vec<Command> {
        let Some(binding) = keys::lookup(&key) else {
            return Vec::new();
        };
        let action = binding.action;
        self.dirty = true;
        if self.show_help && (action == Action::Help || key.code == crossterm::event::KeyCode::Esc) {
            self.show_help = false;
            return Vec::new();
        }
        if self.shutdown.is_some() {
            if action == Action::Quit {
                // A second quit while waiting: stop waiting.
                self.exit = self.shutdown;
            }
            return Vec::new();
        }
        if binding.changes_run && !self.trainer_alive() {
            self.set_status(Tone::Warn, "the trainer has stopped: press q to quit");
            return Vec::new();
        }
        let sep = self.theme.sep();
        match action {
            Action::Quit => {
                // After a trainer error the run failed, whoever closes the window.
                let reason = if self.error.is_some() {
                    EndReason::Error
                } else {
                    EndReason::Quit
                };
                let cmds = self.begin_shutdown(reason);
                if !cmds.is_empty() {
                    self.set_status(Tone::Warn, "saving… waiting for the trainer to write its checkpoint");
                }
                cmds
            }
            Action::ToggleEval => {
                self.eval_mode = self.eval_mode.toggled();
                self.history.mark('e');
                let words = match self.eval_mode {
                    EvalMode::Running => "running stats (model.evaluate, PyTorch eval())",
                    EvalMode::Batch => "batch stats (Keras learning_phase=1)",
                };
                self.set_status(Tone::Good, format!("eval mode {} {words}", self.theme.arrow()));
                if self.trainer_alive() {
                    vec![Command::NoteEvalMode(self.eval_mode)]
                } else {
                    Vec::new()
                }
            }
            Action::MomentumUp | Action::MomentumDown => {
                let up = action == Action::MomentumUp;
                let next = ladder_step(LADDER, self.momentum, up);
                match next {
                    Some(m) => {
                        self.momentum = m;
                        self.cumulative = false;
                        self.setting_pending = true;
                        self.history.mark('m');
                        self.set_status(
                            Tone::Good,
                            format!("momentum {} {}{sep}sent", self.theme.arrow(), self.momentum_words()),
                        );
                        vec![Command::SetMomentum(m)]
                    }
                    None => {
                        let end = if up { "top" } else { "bottom" };
                        self.set_status(
                            Tone::Warn,
                            format!(
                                "momentum {} is the {end} of the ladder",
                                super::fmt::momentum(self.momentum)
                            ),
                        );
                        Vec::new()
                    }
                }
            }
            Action::ToggleConvention => {
                self.torch_first = !self.torch_first;
                let first = if self.torch_first { "PyTorch/candle" } else { "Keras" };
                self.set_status(Tone::Info, format!("showing the {first} convention first"));
                Vec::new()
            }
            Action::ToggleCumulative => {
                self.cumulative = !self.cumulative;
                self.setting_pending = true;
                self.history.mark('u');
                let s = if self.cumulative {
                    "cumulative averaging on (PyTorch momentum=None)"
                } else {
                    "cumulative averaging off"
                };
                self.set_status(Tone::Good, format!("{s}{sep}sent"));
                vec![Command::SetCumulative(self.cumulative)]
            }
            Action::Slower | Action::Faster => {
                let next = match (action, self.pace) {
                    (Action::Slower, None) => PACES.last().copied(),
                    (Action::Slower, Some(p)) => Some(ladder_step(PACES, p, false).unwrap_or(p)),
                    (_, None) => None,
                    (_, Some(p)) => ladder_step(PACES, p, true),
                };
                self.pace = next;
                let words = match next {
                    Some(p) => super::fmt::pace(p),
                    None => "full speed".to_string(),
                };
                self.set_status(Tone::Good, format!("{words}{sep}sent"));
                vec![Command::SetPace(next)]
            }
            Action::PauseResume => {
                self.paused = !self.paused;
                if self.paused {
                    self.set_status(Tone::Good, "pausing… (n steps one epoch, space resumes)");
                    vec![Command::Pause]
                } else {
                    self.set_status(Tone::Good, "resuming…");
                    vec![Command::Resume]
                }
            }
            Action::Step => {
                if self.paused {
                    self.set_status(Tone::Good, STEPPING);
                    vec![Command::Step]
                } else {
                    self.set_status(Tone::Warn, "n steps only while paused (space pauses)");
                    Vec::new()
                }
            }
            Action::ResetStats => {
                self.history.mark('r');
                self.set_status(
                    Tone::Good,
                    "reset running stats to mean 0 / var 1, t = 0 · sent".replace(" · ", sep),
                );
                vec![Command::ResetStats]
            }
            Action::Recalibrate => {
                self.history.mark('c');
                self.set_status(
                    Tone::Good,
                    format!("recalibrating running stats from one pass over the data{sep}sent"),
                );
                vec![Command::Recalibrate]
            }
            Action::Restart => {
                self.history.mark('R');
                self.set_status(Tone::Good, format!("restarting with new weights{sep}sent"));
                vec![Command::Restart]
            }
            Action::Up => self.select(|s, _| s.saturating_sub(1)),
            Action::Down => self.select(|s, _| s + 1),
            Action::PageUp => self.select(|s, _| s.saturating_sub(10)),
            Action::PageDown => self.select(|s, _| s + 10),
            Action::Home => self.select(|_, _| 0),
            Action::End => self.select(|_, n| n),
            Action::Help => {
                self.show_help = !self.show_help;
                Vec::new()
            }
        }
    }

    fn select(&mut self, f: impl Fn(usize, usize) -> usize) -> Vec<Command> {
        let n = self.layer_count();
        let last = n.saturating_sub(1);
        let next = f(self.selected, last).min(last);
        self.dirty = next != self.selected;
        self.selected = next;
        Vec::new()
    }

    /// `0.99 (Keras) = 0.01 (PyTorch/candle)`, in the chosen order, or `cumulative`.
    pub(crate) fn momentum_words(&self) -> String {
        if self.cumulative {
            return "cumulative (PyTorch momentum=None)".to_string();
        }
        let k = super::fmt::momentum(self.momentum);
        let t = super::fmt::momentum(crate::protocol::keras_to_torch(self.momentum));
        if self.torch_first {
            format!("{t} (PyTorch/candle) = {k} (Keras)")
        } else {
            format!("{k} (Keras) = {t} (PyTorch/candle)")
        }
    }

    /// Updates since the last reset.
    pub(crate) fn t(&self) -> u64 {
        self.latest.as_ref().map_or(0, |m| m.t)
    }

    /// The predictions in a mode.
    pub(crate) fn predictions(&self, mode: EvalMode) -> Option<&[Vec<f32>]> {
        self.latest.as_ref().map(|m| match mode {
            EvalMode::Running => m.predictions_running.as_slice(),
            EvalMode::Batch => m.predictions_batch.as_slice(),
        })
    }

    /// `(right, total)` for a prediction matrix against the labels.
    pub(crate) fn right_count(&self, mode: EvalMode) -> Option<(usize, usize)> {
        let info = self.info.as_ref()?;
        let preds = self.predictions(mode)?;
        let right = preds
            .iter()
            .zip(&info.labels)
            .filter(|(row, &label)| argmax(row) == Some(label))
            .count();
        Some((right, preds.len().min(info.labels.len())))
    }

    /// The "running" / "paused" / … word for the header.
    pub(crate) fn state_word(&self) -> (Tone, &'static str) {
        if self.error.is_some() {
            (Tone::Bad, "error")
        } else if let Some(r) = self.shutdown {
            if r == EndReason::Signal {
                (Tone::Warn, "stopping…")
            } else {
                (Tone::Warn, "saving…")
            }
        } else if matches!(self.phase, Phase::Finished { .. }) {
            (Tone::Good, "finished")
        } else if self.disconnected {
            (Tone::Bad, "disconnected")
        } else if self.phase == Phase::Starting {
            (Tone::Info, "starting")
        } else if self.diverged.is_some() && self.paused {
            (Tone::Bad, "diverged")
        } else if self.paused {
            (Tone::Warn, "paused")
        } else {
            (Tone::Good, "running")
        }
    }

    /// The diagnosis: what the numbers mean and which key helps.
    pub(crate) fn diagnosis(&self) -> Diagnosis {
        use super::fmt::{acc, percent};
        let th = &self.theme;
        let warn = th.warn();
        let d = |tone, long: String, short: String| Diagnosis { tone, long, short };
        if let Some(e) = &self.error {
            let first = e.lines().next().unwrap_or("");
            let t = format!("{warn} The trainer failed: {first}");
            return d(Tone::Bad, t.clone(), t);
        }
        if self.disconnected && !matches!(self.phase, Phase::Finished { .. }) {
            return d(
                Tone::Bad,
                format!("{warn} The trainer went away without saying goodbye. Press q to quit."),
                format!("{warn} The trainer went away. Press q to quit."),
            );
        }
        let Some(m) = &self.latest else {
            let t = "Waiting for the first epoch…".to_string();
            return d(Tone::Info, t.clone(), t);
        };
        let (prefix, short_prefix) = match (&self.phase, self.paused) {
            (Phase::Finished { epochs, .. }, _) => {
                (format!("Finished after {epochs} epochs. "), "Finished. ".to_string())
            }
            (_, true) if self.diverged.is_none() => (
                "Paused: n runs one epoch, space resumes. ".to_string(),
                "Paused. ".to_string(),
            ),
            _ => (String::new(), String::new()),
        };
        let (p, sp) = (prefix.as_str(), short_prefix.as_str());
        let train = m.train.acc;
        let run = m.eval_running.acc;
        let bat = m.eval_batch.acc;
        let losses = [m.train.loss, m.eval_running.loss, m.eval_batch.loss];
        if self.diverged.is_some() || losses.iter().any(|l| !l.is_finite()) {
            let paused = if self.paused { " and the trainer paused" } else { "" };
            return d(
                Tone::Bad,
                format!(
                    "{warn} {p}The loss is not finite (NaN/Inf): training diverged{paused}. \
                     Restart with new weights (R), or lower the learning rate."
                ),
                format!("{warn} {sp}Loss is NaN/Inf: training diverged{paused}. R restarts with new weights."),
            );
        }
        if self.info.as_ref().is_some_and(|i| i.batch_size == 1) {
            return d(
                Tone::Warn,
                format!(
                    "{warn} {p}Batch size 1: each batch's statistics are one image's, so train-mode BatchNorm \
                     is degenerate and the running stats chase single images. Use a larger batch."
                ),
                format!("{warn} {sp}Batch size 1: train-mode BN is degenerate; running stats chase single images."),
            );
        }
        let gap = train - run;
        let trav = travelled(self.momentum, m.t);
        if self.eval_mode == EvalMode::Batch && gap > 0.2 {
            return d(
                Tone::Warn,
                format!(
                    "{p}The headline uses batch statistics ({}), like Keras learning_phase=1. model.evaluate \
                     would use the running stats and report {}: press e to see it.",
                    acc(bat),
                    acc(run)
                ),
                format!(
                    "{sp}Headline: batch stats ({}). model.evaluate (running stats) reports {}: press e.",
                    acc(bat),
                    acc(run)
                ),
            );
        }
        if self.cumulative {
            return d(
                if gap > 0.2 { Tone::Warn } else { Tone::Info },
                format!(
                    "{p}Cumulative averaging: the running stats are the plain mean of all {} batches since the \
                     reset, so early batches (older weights) weigh as much as new ones. Eval with running stats \
                     {} vs train {}.",
                    m.t,
                    acc(run),
                    acc(train)
                ),
                format!(
                    "{sp}Cumulative: running stats = mean of {} batches. Eval running {} vs train {}.",
                    m.t,
                    acc(run),
                    acc(train)
                ),
            );
        }
        if gap > 0.2 {
            return if trav < 0.9 {
                d(
                    Tone::Warn,
                    format!(
                        "{warn} {p}Training accuracy is {} but evaluation uses moving statistics that are only {} \
                         of the way to the batch statistics: the network sees inputs it was never trained on. \
                         Lower momentum (-) or recalibrate (c).",
                        acc(train),
                        percent(trav)
                    ),
                    format!(
                        "{warn} {sp}Train acc {} but eval with running stats {}: they travelled only {}. \
                         Lower momentum (-) or recalibrate (c).",
                        acc(train),
                        acc(run),
                        percent(trav)
                    ),
                )
            } else {
                d(
                    Tone::Warn,
                    format!(
                        "{warn} {p}Training accuracy is {} but evaluation with running stats gives {}: the stats \
                         have travelled {} on paper, but the weights moved under them. Recalibrate (c) or reset (r).",
                        acc(train),
                        acc(run),
                        percent(trav)
                    ),
                    format!(
                        "{warn} {sp}Train acc {} but eval with running stats {} although they travelled {}: \
                         recalibrate (c).",
                        acc(train),
                        acc(run),
                        percent(trav)
                    ),
                )
            };
        }
        if train >= 0.99 && gap.abs() <= 0.05 {
            let check = th.check();
            return d(
                Tone::Good,
                format!(
                    "{check} {p}Converged: evaluation with running stats matches training ({} vs {}); the running \
                     stats have travelled {}.",
                    acc(run),
                    acc(train),
                    percent(trav)
                ),
                format!(
                    "{check} {sp}Converged: eval with running stats {} = train {} (travelled {}).",
                    acc(run),
                    acc(train),
                    percent(trav)
                ),
            );
        }
        let sep = th.sep();
        d(
            Tone::Info,
            format!(
                "{p}Training: train {}{sep}eval running {}{sep}eval batch {}. Running stats travelled {}.",
                acc(train),
                acc(run),
                acc(bat),
                percent(trav)
            ),
            format!(
                "{sp}Train {}{sep}eval running {}{sep}eval batch {}{sep}travelled {}.",
                acc(train),
                acc(run),
                acc(bat),
                percent(trav)
            ),
        )
    }

    /// `1 % needs 459 updates: 454 to go`, or why not.
    pub(crate) fn convergence_words(&self) -> String {
        if self.cumulative {
            return format!("cumulative: the mean of t={} batches", self.t());
        }
        match steps_to_one_percent(self.momentum) {
            None => "m = 1: the running stats never move".to_string(),
            Some(n) => {
                let t = self.t();
                if t >= n {
                    format!("within 1% after {n} updates (t={t})")
                } else {
                    format!("1% needs {n} updates: {} to go", n - t)
                }
            }
        }
    }
}

/// The header's diagnosis line, in a long and a short form (for narrow terminals).
#[derive(Clone, Debug, PartialEq)]
pub struct Diagnosis {
    pub tone: Tone,
    pub long: String,
    pub short: String,
}

/// Index of the largest finite value, if any.
pub(crate) fn argmax(row: &[f32]) -> Option<usize> {
    row.iter()
        .enumerate()
        .filter(|(_, v)| v.is_finite())
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map(|(i, _)| i)
}
