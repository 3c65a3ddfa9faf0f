//! The UI state and its event handling: `handle_*` are the only places where state changes; rendering (in
//! `render/`) only reads it, and the derived words live in `diagnosis.rs`.
use crossterm::event::KeyEvent;

use crate::outcome::{abandoned_message, diverged_message, Outcome};
use crate::protocol::{BnSlot, Command, EndReason, EvalMode, Event, EventKind};

use super::keys::{self, Action};
use super::store::{Phase, Store};
use super::theme::{Theme, Tone};
use super::TuiOptions;

/// The momentum ladder, Keras convention.
pub const LADDER: &[f64] = &[0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999, 0.9999];
/// The pace ladder in epochs a second, slow to fast; past the top is full speed (`None`).
pub const PACES: &[f64] = &[1.0, 2.0, 4.0, 7.0, 10.0, 20.0, 50.0, 100.0];

/// The next value of an ascending `ladder` above (`up`) or below `v`, if any.
fn ladder_step(ladder: &[f64], v: f64, up: bool) -> Option<f64> {
    if up {
        ladder.iter().copied().find(|&m| m > v + 1e-9)
    } else {
        ladder.iter().rev().copied().find(|&m| m < v - 1e-9)
    }
}

/// Which list the arrow keys and the wheel move.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Focus {
    Layers,
    Channels,
}

/// The charts' time windows `z` cycles through (`None`: the whole history).
pub const ZOOMS: &[Option<u64>] = &[None, Some(100), Some(20)];

/// Everything the UI thread reacts to, as one enum.
#[derive(Debug)]
pub enum AppEvent {
    Key(KeyEvent),
    /// A click or the wheel, at a position on the screen.
    Mouse(crossterm::event::MouseEvent),
    Trainer(Event),
    /// The trainer's event channel disconnected.
    Disconnected,
    /// A SIGINT/SIGTERM/SIGHUP number.
    Signal(i32),
    /// The terminal's size, at start and whenever it changes.
    Resize(u16, u16),
}

/// The UI state: the trainer's data ([`Store`]) and the view over it. It changes only in `handle_*`; rendering
/// (in `render/`) only reads it.
pub struct App {
    pub(crate) theme: Theme,
    pub(crate) data_label: String,
    /// What the trainer has said.
    pub(crate) store: Store,
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
    /// An `n` step is on its way.
    stepping: bool,
    /// `R` was pressed once: a second `R` restarts.
    confirm_restart: bool,
    /// The trainer paused by itself at this epoch for the opening explanation (`--pause-at`), and the user has
    /// not yet touched the run.
    pub(crate) intro: Option<usize>,
    /// Quitting: waiting for the trainer's `Finished`.
    pub(crate) shutdown: Option<EndReason>,
    exit: Option<EndReason>,
    /// The user stopped waiting for the trainer (a second `q`).
    abandoned: bool,
    /// The first signal received.
    signal: Option<i32>,
    /// `--checkpoint`, to say whether a quit will write one (and, if the user stops waiting, that it did not).
    checkpoint: Option<String>,
    pub(crate) selected: usize,
    /// Which list the arrows move.
    pub(crate) focus: Focus,
    /// The first channel shown in the channel list.
    pub(crate) channel_offset: usize,
    /// The charts' time window (last N epochs; `None`: all).
    pub(crate) zoom: Option<u64>,
    /// The screen's size as last reported (for the mouse).
    screen: ratatui::layout::Rect,
    pub(crate) show_help: bool,
    pub(crate) status: Option<(Tone, String)>,
    /// When the status line was set (it clears itself after [`STATUS_TTL`], errors excepted).
    status_at: Option<std::time::Instant>,
    dirty: bool,
}

/// How long a status message stays (warnings and errors about the run stay until replaced).
pub const STATUS_TTL: std::time::Duration = std::time::Duration::from_secs(8);

/// Where the run stands, as the header shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunState {
    /// Waiting for the trainer's `Started`.
    Starting,
    Running,
    Paused,
    /// Paused, with an `n` step on its way.
    Stepping,
    /// Paused by the trainer after the loss diverged.
    Diverged,
    /// The trainer finished by itself.
    Finished,
    /// The trainer reported an error or panicked.
    Error,
    /// The trainer's channel closed without `Finished`.
    Disconnected,
    /// Quit: waiting for the trainer to write its checkpoint.
    Saving,
    /// A signal: waiting for the trainer to stop.
    Stopping,
}

impl RunState {
    /// The header's word and its tone.
    pub fn word(self) -> (Tone, &'static str) {
        match self {
            RunState::Error => (Tone::Bad, "error"),
            RunState::Stopping => (Tone::Warn, "stopping…"),
            RunState::Saving => (Tone::Warn, "saving…"),
            RunState::Finished => (Tone::Good, "finished"),
            RunState::Disconnected => (Tone::Bad, "disconnected"),
            RunState::Starting => (Tone::Info, "starting"),
            RunState::Diverged => (Tone::Bad, "diverged"),
            RunState::Paused | RunState::Stepping => (Tone::Warn, "paused"),
            RunState::Running => (Tone::Good, "running"),
        }
    }

    /// Whether the trainer is held (paused, stepping or diverged): the header shows the pause icon.
    pub fn held(self) -> bool {
        matches!(self, RunState::Paused | RunState::Stepping | RunState::Diverged)
    }
}

impl App {
    /// A fresh UI state; `bn` is the slot `Event::BnReady` refers to.
    pub fn new(opts: &TuiOptions, bn: BnSlot) -> Self {
        App {
            theme: Theme::new(opts.ascii, opts.no_color),
            data_label: opts.data_label.clone(),
            store: Store::new(bn),
            eval_mode: EvalMode::Running,
            momentum: 0.99,
            cumulative: false,
            setting_pending: false,
            pace: None,
            torch_first: false,
            paused: false,
            stepping: false,
            confirm_restart: false,
            intro: None,
            shutdown: None,
            exit: None,
            abandoned: false,
            signal: None,
            checkpoint: opts.checkpoint.clone(),
            selected: 0,
            focus: Focus::Layers,
            channel_offset: 0,
            zoom: None,
            screen: ratatui::layout::Rect::new(0, 0, 120, 40),
            show_help: false,
            status: None,
            status_at: None,
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

    /// How the run ended, once [`App::exit`] is set: the reason (the trainer's own when it said goodbye), the
    /// signal, and the `bnscope: error:` lines to print after the terminal is restored.
    pub fn outcome(&self) -> Option<Outcome> {
        let exit = self.exit?;
        let finished = match self.store.phase {
            Phase::Finished { reason, .. } => Some(reason),
            _ => None,
        };
        let mut o = Outcome::new(finished.unwrap_or(exit));
        o.signal = self.signal;
        o.messages = self.store.errors.clone();
        if o.reason == EndReason::Diverged {
            if let Some((epoch, loss, what)) = &self.store.diverged {
                o.messages.push(diverged_message(*epoch, *loss, what));
            }
        }
        if finished.is_none() {
            if self.abandoned {
                o.messages.extend(abandoned_message(self.checkpoint.as_deref()));
            } else if self.store.disconnected && self.store.errors.is_empty() {
                o.messages.push("the trainer stopped without finishing the run".into());
            }
        }
        o.failed = !o.messages.is_empty();
        Some(o)
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
            AppEvent::Resize(w, h) => {
                self.screen = ratatui::layout::Rect::new(0, 0, w, h);
                self.dirty = true;
                Vec::new()
            }
            AppEvent::Mouse(m) => {
                self.handle_mouse(m);
                Vec::new()
            }
        }
    }

    fn set_status(&mut self, tone: Tone, s: impl Into<String>) {
        self.status = Some((tone, s.into()));
        self.status_at = (tone != Tone::Bad).then(std::time::Instant::now);
        self.dirty = true;
    }

    /// When the status line will clear itself, if it will.
    pub fn status_deadline(&self) -> Option<std::time::Instant> {
        self.status_at.map(|t| t + STATUS_TTL)
    }

    /// Clears a status line older than [`STATUS_TTL`] (the UI loop calls this when the deadline passes). A
    /// pending `R` confirmation lapses with it.
    pub fn expire_status(&mut self, now: std::time::Instant) {
        if self.status_deadline().is_some_and(|d| now >= d) && self.shutdown.is_none() {
            self.status = None;
            self.status_at = None;
            self.confirm_restart = false;
            self.dirty = true;
        }
    }

    /// The reason to return when the user closes a UI whose trainer is already gone.
    fn closed_reason(&self) -> EndReason {
        if let Phase::Finished { reason, .. } = self.store.phase {
            // The channel closing after `Finished` is the normal end, not an error.
            reason
        } else if self.store.error.is_some() || self.store.disconnected {
            EndReason::Error
        } else {
            EndReason::Quit
        }
    }

    /// What the status line says while waiting for the trainer.
    fn waiting_words(&self) -> String {
        match &self.checkpoint {
            Some(_) => "finishing the step in flight, then writing the checkpoint…".into(),
            None => "finishing the step in flight…".into(),
        }
    }

    fn begin_shutdown(&mut self, reason: EndReason) -> Vec<Command> {
        if !self.store.trainer_alive() {
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

    /// A signal: ask the trainer to stop and wait for it, however long its step takes (a second signal exits at
    /// once, from the signal handler: `crate::signals`).
    pub fn handle_signal(&mut self, sig: i32) -> Vec<Command> {
        self.signal.get_or_insert(sig);
        let words = self.waiting_words();
        self.set_status(
            Tone::Warn,
            format!("signal {sig}: {words} (a second signal exits at once)"),
        );
        if self.shutdown.is_some() {
            // Already quitting: keep waiting for the checkpoint.
            return Vec::new();
        }
        self.begin_shutdown(EndReason::Signal)
    }

    pub fn handle_disconnect(&mut self) {
        if let Some(r) = self.shutdown {
            self.exit = Some(r);
        }
        if !self.store.disconnected {
            self.store.disconnected = true;
            if !matches!(self.store.phase, Phase::Finished { .. }) {
                self.set_status(
                    Tone::Bad,
                    "the trainer's event channel closed unexpectedly: press q to quit",
                );
            }
            self.dirty = true;
        }
    }

    /// Handles one trainer event: the store takes the data, the view follows.
    pub fn handle_trainer(&mut self, ev: Event) {
        self.dirty = true;
        match &ev {
            Event::Started(info) => {
                self.momentum = info.momentum;
                self.cumulative = info.cumulative;
                self.pace = info.pace;
                self.setting_pending = false;
            }
            Event::Epoch(m) => {
                if !self.setting_pending {
                    self.momentum = m.momentum;
                    self.cumulative = m.cumulative;
                }
                // The `n` step arrived: say so instead of leaving "one epoch…" up.
                if std::mem::take(&mut self.stepping) && self.paused {
                    let sep = self.theme.sep();
                    self.set_status(
                        Tone::Good,
                        format!("stepped to epoch {}{sep}n steps again, space resumes", m.epoch),
                    );
                }
            }
            Event::BnReady | Event::Refreshed(_) => {}
            Event::Applied { epoch, what, value } => {
                match what {
                    EventKind::Momentum | EventKind::Cumulative => self.setting_pending = false,
                    EventKind::Pause => self.paused = true,
                    EventKind::Resume => self.paused = false,
                    _ => {}
                }
                if *what == EventKind::Pause && value == "pause-at" {
                    self.intro = Some(*epoch);
                }
                if self.shutdown.is_none() {
                    let text = self.applied_words(*epoch, *what, value);
                    self.set_status(Tone::Good, text);
                }
            }
            Event::Diverged { epoch, loss, what } => {
                self.paused = true;
                let sep = self.theme.sep();
                self.set_status(
                    Tone::Bad,
                    format!(
                        "{}{sep}paused: R restarts, q quits",
                        diverged_message(*epoch, *loss, what)
                    ),
                );
            }
            Event::Warning { text, .. } => self.set_status(Tone::Warn, text.clone()),
            Event::Error(_) => self.set_status(Tone::Bad, "trainer error: press q to quit"),
            Event::Finished {
                epochs,
                reason,
                checkpoint,
            } => {
                if let Some(r) = self.shutdown {
                    self.exit = Some(r);
                }
                let mut text = format!("finished after {epochs} epochs ({})", reason.as_str());
                if let Some(c) = checkpoint {
                    text.push_str(&format!("; checkpoint {c}"));
                }
                if self.shutdown.is_none() {
                    text.push_str(": press q to quit");
                }
                self.set_status(Tone::Good, text);
            }
        }
        self.store.ingest(ev);
        self.selected = self.selected.min(self.store.layer_count().saturating_sub(1));
    }

    /// Handles a key press; returns the commands to send.
    pub fn handle_key(&mut self, key: KeyEvent) -> Vec<Command> {
        let Some(binding) = keys::lookup(&key) else {
            if let crossterm::event::KeyCode::Char(c) = key.code {
                if key.kind == crossterm::event::KeyEventKind::Press && !c.is_control() {
                    self.confirm_restart = false;
                    self.set_status(Tone::Info, format!("{c}: not a key here; ? lists the keys"));
                }
            }
            return Vec::new();
        };
        let action = binding.action;
        self.dirty = true;
        if action != Action::Restart {
            self.confirm_restart = false;
        }
        if self.show_help && (action == Action::Help || key.code == crossterm::event::KeyCode::Esc) {
            self.show_help = false;
            return Vec::new();
        }
        if self.shutdown.is_some() {
            if action == Action::Quit {
                // A second quit while waiting: stop waiting (and say on stderr what was not written).
                self.abandoned = true;
                self.exit = self.shutdown;
            }
            return Vec::new();
        }
        if binding.changes_run && !self.store.trainer_alive() {
            self.set_status(Tone::Warn, "the trainer has stopped: press q to quit");
            return Vec::new();
        }
        if binding.changes_run {
            self.intro = None;
        }
        let sep = self.theme.sep();
        match action {
            Action::Quit => {
                // After a trainer error or a divergence the run failed, whoever closes the window.
                let reason = if self.store.error.is_some() {
                    EndReason::Error
                } else if self.store.diverged.is_some() {
                    EndReason::Diverged
                } else {
                    EndReason::Quit
                };
                let cmds = self.begin_shutdown(reason);
                if !cmds.is_empty() {
                    let then = if self.checkpoint.is_some() {
                        "quit without the checkpoint"
                    } else {
                        "quit at once"
                    };
                    self.set_status(Tone::Warn, format!("{} (q again: {then})", self.waiting_words()));
                }
                cmds
            }
            Action::ToggleEval => {
                self.eval_mode = self.eval_mode.toggled();
                self.store.history.mark('e');
                let words = match self.eval_mode {
                    EvalMode::Running => "running stats (model.evaluate, PyTorch eval())",
                    EvalMode::Batch => "batch stats (Keras learning_phase=1)",
                };
                self.set_status(Tone::Good, format!("eval mode {} {words}", self.theme.arrow()));
                if self.store.trainer_alive() {
                    vec![Command::NoteEvalMode(self.eval_mode)]
                } else {
                    Vec::new()
                }
            }
            Action::MomentumUp | Action::MomentumDown => {
                // Up and down in the convention shown first: PyTorch's momentum rises as Keras' falls.
                let up = (action == Action::MomentumUp) != self.torch_first;
                let next = ladder_step(LADDER, self.momentum, up);
                match next {
                    Some(m) => {
                        self.momentum = m;
                        self.cumulative = false;
                        self.setting_pending = true;
                        self.store.history.mark('m');
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
                self.store.history.mark('u');
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
                    self.stepping = true;
                    self.set_status(Tone::Good, "one epoch…");
                    vec![Command::Step]
                } else {
                    self.set_status(Tone::Warn, "n steps only while paused (space pauses)");
                    Vec::new()
                }
            }
            Action::ResetStats => {
                self.store.history.mark('r');
                self.set_status(
                    Tone::Good,
                    "reset running stats to mean 0 / var 1, t = 0 · sent".replace(" · ", sep),
                );
                vec![Command::ResetStats]
            }
            Action::Recalibrate => {
                self.store.history.mark('c');
                self.set_status(
                    Tone::Good,
                    format!("recalibrating running stats from one pass over the data{sep}sent"),
                );
                vec![Command::Recalibrate]
            }
            Action::Restart if !self.confirm_restart => {
                self.confirm_restart = true;
                self.set_status(
                    Tone::Warn,
                    "R again restarts with new weights and a new seed (this run's curves go); any other key keeps it",
                );
                Vec::new()
            }
            Action::Restart => {
                self.set_status(Tone::Good, format!("restarting with new weights{sep}sent"));
                vec![Command::Restart]
            }
            Action::WorstLayer if self.focus == Focus::Channels => {
                if let Some(c) = self.worst_channel() {
                    self.channel_offset = c;
                    self.set_status(Tone::Info, format!("channel {c}: the furthest from its batch mean"));
                }
                Vec::new()
            }
            Action::WorstLayer => {
                if let Some(i) = self.worst_layer() {
                    self.selected = i;
                    self.channel_offset = 0;
                    self.set_status(Tone::Info, "selected the layer furthest from its batch statistics");
                }
                Vec::new()
            }
            Action::Up | Action::Down | Action::PageUp | Action::PageDown | Action::Home | Action::End
                if self.focus == Focus::Channels =>
            {
                let step: i64 = match action {
                    Action::Up => -1,
                    Action::Down => 1,
                    Action::PageUp => -10,
                    Action::PageDown => 10,
                    Action::Home => i64::MIN / 2,
                    _ => i64::MAX / 2,
                };
                self.scroll_channels(step);
                Vec::new()
            }
            Action::Focus => {
                self.focus = match self.focus {
                    Focus::Layers => Focus::Channels,
                    Focus::Channels => Focus::Layers,
                };
                let what = match self.focus {
                    Focus::Layers => "arrows select a layer",
                    Focus::Channels => "arrows scroll the channels",
                };
                self.set_status(Tone::Info, format!("{what} (Tab switches)"));
                Vec::new()
            }
            Action::Zoom => {
                let i = ZOOMS.iter().position(|z| *z == self.zoom).unwrap_or(0);
                self.zoom = ZOOMS[(i + 1) % ZOOMS.len()];
                let words = match self.zoom {
                    Some(n) => format!("charts: the last {n} epochs (z: more)"),
                    None => "charts: all epochs".to_string(),
                };
                self.set_status(Tone::Info, words);
                Vec::new()
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

    /// Whether the opening explanation is on screen: paused by `--pause-at` and untouched since.
    pub(crate) fn intro_active(&self) -> bool {
        self.paused && self.intro.is_some() && self.intro == self.store.latest.as_ref().map(|m| m.epoch)
    }

    /// What an acknowledged command did, in plain words.
    fn applied_words(&self, epoch: usize, what: EventKind, value: &str) -> String {
        let next = epoch + 1;
        match what {
            EventKind::Momentum => format!("momentum {} from epoch {next}", self.momentum_words()),
            EventKind::Cumulative if value == "true" => {
                format!("cumulative averaging on from epoch {next} (PyTorch momentum=None)")
            }
            EventKind::Cumulative => format!("cumulative averaging off: moving average from epoch {next}"),
            EventKind::Pause if value == "pause-at" => {
                format!("paused after epoch {epoch}, the seed's moment: read the screen, then space")
            }
            EventKind::Pause => format!("paused after epoch {epoch}: n runs one epoch, space resumes"),
            EventKind::Resume => format!("running from epoch {next}"),
            EventKind::ResetStats => "running stats reset to mean 0 / variance 1 (t = 0)".to_string(),
            EventKind::Recalibrate => format!("running stats re-estimated from the data ({value})"),
            EventKind::Restart => format!("restarted with new weights ({value})"),
            EventKind::Pace => format!("pace: {value}"),
            EventKind::EvalMode if value == "batch" => "headline evaluation: batch statistics".to_string(),
            EventKind::EvalMode => "headline evaluation: running statistics".to_string(),
            EventKind::Diverged | EventKind::OneValuePerChannel => format!("{} {value}", what.as_str()),
        }
    }

    /// The layer whose running statistics are furthest from the batch's: the lowest of the two gauges.
    fn worst_layer(&self) -> Option<usize> {
        let bn = self.store.bn.as_ref()?;
        let score = |l: &crate::protocol::BnLayerSnapshot| {
            let mean = super::render::layers::convergence(l.mean_gap);
            let var = super::render::layers::var_ratio(l).map_or(1.0, |r| 1.0 - (r.max(1.0).log10() / 2.0).min(1.0));
            let s = mean.min(var);
            if s.is_nan() {
                -1.0
            } else {
                s
            }
        };
        (0..bn.layers.len()).min_by(|&a, &b| score(&bn.layers[a]).total_cmp(&score(&bn.layers[b])))
    }

    /// The selected layer's channel whose running mean is furthest from its batch mean.
    fn worst_channel(&self) -> Option<usize> {
        let l = self.store.bn.as_ref()?.layers.get(self.selected)?;
        (0..l.running_mean.len())
            .filter(|&c| l.running_mean[c].is_finite() && l.batch_mean.get(c).is_some_and(|b| b.is_finite()))
            .max_by(|&a, &b| {
                let d = |c: usize| (l.running_mean[c] - l.batch_mean[c]).abs();
                d(a).total_cmp(&d(b))
            })
    }

    /// Moves the channel list by `step` rows (clamped).
    fn scroll_channels(&mut self, step: i64) {
        let n = self
            .store
            .bn
            .as_ref()
            .and_then(|b| b.layers.get(self.selected))
            .map_or(0, |l| l.running_mean.len());
        let next = (self.channel_offset as i64 + step).clamp(0, n.saturating_sub(1) as i64) as usize;
        self.dirty |= next != self.channel_offset;
        self.channel_offset = next;
    }

    /// A click selects the layer under it (or focuses the channel list); the wheel moves the list under it and
    /// zooms the charts.
    pub fn handle_mouse(&mut self, m: crossterm::event::MouseEvent) {
        use crossterm::event::{MouseButton, MouseEventKind};
        if self.show_help {
            return;
        }
        let areas = super::render::Areas::compute(self, self.screen);
        let at = ratatui::layout::Position::new(m.column, m.row);
        let in_layers = areas.layers.contains(at);
        let in_detail = areas.detail.is_some_and(|d| d.contains(at));
        let in_charts = areas.accuracy.contains(at) || areas.loss.is_some_and(|l| l.contains(at));
        match m.kind {
            MouseEventKind::Down(MouseButton::Left) if in_layers => {
                self.focus = Focus::Layers;
                // Rows: border, the heading, then the layers from the scroll offset.
                let n = self.store.layer_count();
                let rows = areas.layers.height.saturating_sub(3) as usize;
                let offset = super::render::layers::scroll_offset(self.selected, n, rows);
                let row = m.row.saturating_sub(areas.layers.y + 2) as usize;
                if m.row >= areas.layers.y + 2 && offset + row < n && row < rows {
                    self.selected = offset + row;
                    self.channel_offset = 0;
                    self.dirty = true;
                }
            }
            MouseEventKind::Down(MouseButton::Left) if in_detail => {
                self.focus = Focus::Channels;
                self.dirty = true;
            }
            MouseEventKind::ScrollUp | MouseEventKind::ScrollDown => {
                let down = matches!(m.kind, MouseEventKind::ScrollDown);
                if in_detail {
                    self.scroll_channels(if down { 3 } else { -3 });
                } else if in_layers {
                    self.select(|s, _| if down { s + 1 } else { s.saturating_sub(1) });
                } else if in_charts {
                    // Wheel up zooms in (fewer epochs), down zooms out.
                    let i = ZOOMS.iter().position(|z| *z == self.zoom).unwrap_or(0);
                    let j = if down {
                        i.saturating_sub(1)
                    } else {
                        (i + 1).min(ZOOMS.len() - 1)
                    };
                    self.dirty |= i != j;
                    self.zoom = ZOOMS[j];
                }
            }
            _ => {}
        }
    }

    /// The footer's words for a hint, where they depend on the state (`space resume` while paused).
    pub(crate) fn hint_words(&self, h: &keys::Hint) -> &'static str {
        match h.binding.action {
            Action::PauseResume if self.paused => "resume",
            Action::ToggleConvention if self.torch_first => "Keras m",
            _ => h.words,
        }
    }

    /// Whether a binding's key would do something now (the footer dims those that would not).
    pub(crate) fn can_act(&self, b: &keys::Binding) -> bool {
        if self.shutdown.is_some() {
            return b.action == Action::Quit;
        }
        if b.changes_run && !self.store.trainer_alive() {
            return false;
        }
        b.action != Action::Step || self.paused
    }

    fn select(&mut self, f: impl Fn(usize, usize) -> usize) -> Vec<Command> {
        let n = self.store.layer_count();
        let last = n.saturating_sub(1);
        let next = f(self.selected, last).min(last);
        self.dirty = next != self.selected;
        if next != self.selected {
            self.channel_offset = 0;
        }
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

    /// The predictions in a mode.
    pub(crate) fn predictions(&self, mode: EvalMode) -> Option<&[Vec<f32>]> {
        self.store.latest.as_ref().map(|m| match mode {
            EvalMode::Running => m.predictions_running.as_slice(),
            EvalMode::Batch => m.predictions_batch.as_slice(),
        })
    }

    /// `(right, total)` for a prediction matrix against the labels.
    pub(crate) fn right_count(&self, mode: EvalMode) -> Option<(usize, usize)> {
        let info = self.store.info.as_ref()?;
        let preds = self.predictions(mode)?;
        let right = preds
            .iter()
            .zip(&info.labels)
            .filter(|(row, &label)| argmax(row) == Some(label))
            .count();
        Some((right, preds.len().min(info.labels.len())))
    }

    /// Where the run stands.
    pub fn run_state(&self) -> RunState {
        let st = &self.store;
        if st.error.is_some() {
            RunState::Error
        } else if let Some(r) = self.shutdown {
            if r == EndReason::Signal {
                RunState::Stopping
            } else {
                RunState::Saving
            }
        } else if st.finished() {
            RunState::Finished
        } else if st.disconnected {
            RunState::Disconnected
        } else if st.phase == Phase::Starting {
            RunState::Starting
        } else if st.diverged.is_some() && self.paused {
            RunState::Diverged
        } else if self.paused && self.stepping {
            RunState::Stepping
        } else if self.paused {
            RunState::Paused
        } else {
            RunState::Running
        }
    }
}

/// Index of the largest finite value, if any.
pub(crate) fn argmax(row: &[f32]) -> Option<usize> {
    row.iter()
        .enumerate()
        .filter(|(_, v)| v.is_finite())
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map(|(i, _)| i)
}
