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
pub(super) fn ladder_step(ladder: &[f64], v: f64, up: bool) -> Option<f64> {
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
    /// What a look at log file `file` found (`bnscope watch`).
    Log(usize, crate::logfile::Followed),
    /// Log file `file` cannot be shown (not a bnscope log, not readable): the message.
    LogError(usize, String),
}

/// The UI state: the trainer's data ([`Store`]) and the view over it. It changes only in `handle_*`; rendering
/// (in `render/`) only reads it.
pub struct App {
    pub(crate) theme: Theme,
    /// A slow phase in progress (pre-training, an inspection): shown in the status line with a gauge.
    pub(crate) progress: Option<crate::protocol::Progress>,
    /// A reset or recalibration the trainer applied and is now evaluating with: its confirmation, said once the
    /// new evaluations (`Refreshed`) are on screen.
    pub(super) confirm_on_refresh: Option<String>,
    pub(crate) data_label: String,
    /// What the trainer has said.
    pub(crate) store: Store,
    pub(crate) eval_mode: EvalMode,
    /// Momentum the UI last asked for or the trainer last reported (Keras convention).
    pub(crate) momentum: f64,
    pub(crate) cumulative: bool,
    /// A momentum/cumulative command is in flight: don't let epoch reports overwrite the display.
    pub(super) setting_pending: bool,
    /// Epochs a second the trainer is held to (`None`: full speed).
    pub(crate) pace: Option<f64>,
    /// Show the PyTorch/candle convention first.
    pub(crate) torch_first: bool,
    pub(crate) paused: bool,
    /// An `n` step is on its way.
    pub(super) stepping: bool,
    /// `R` was pressed once: a second `R` restarts.
    pub(super) confirm_restart: bool,
    /// The trainer paused by itself at this epoch for the opening explanation (`--pause-at`), and the user has
    /// not yet touched the run.
    pub(crate) intro: Option<usize>,
    /// Quitting: waiting for the trainer's `Finished`.
    pub(crate) shutdown: Option<EndReason>,
    pub(super) exit: Option<EndReason>,
    /// The user stopped waiting for the trainer (a second `q`).
    pub(super) abandoned: bool,
    /// The first signal received.
    pub(super) signal: Option<i32>,
    /// `--checkpoint`, to say whether a quit will write one (and, if the user stops waiting, that it did not).
    pub(super) checkpoint: Option<String>,
    pub(crate) selected: usize,
    /// Which list the arrows move.
    pub(crate) focus: Focus,
    /// The first channel shown in the channel list.
    pub(crate) channel_offset: usize,
    /// The run's clock (`Started`) and the header's time and memory as of the newest epoch.
    pub(crate) timer: Option<super::clock::Timer>,
    pub(crate) clock: Option<super::clock::Clock>,
    with_clock: bool,
    /// `(layer, channel)` that `w` named in the channel list: marked there while that layer is selected.
    pub(crate) marked_channel: Option<(usize, usize)>,
    /// The charts' time window (last N epochs; `None`: all).
    pub(crate) zoom: Option<u64>,
    /// The screen's size as last reported (for the mouse).
    pub(super) screen: ratatui::layout::Rect,
    pub(crate) show_help: bool,
    /// What the run wrote that the user asked for (`--save-weights`), said on stderr once the screen is gone.
    pub(crate) notes: Vec<String>,
    /// The help's first line shown (arrows, PgUp/PgDn, Home/End scroll it while it is open).
    pub(crate) help_scroll: usize,
    /// `L`: the lesson list is open, with this one selected.
    pub(crate) lessons: Option<usize>,
    /// The lesson chosen with `L`: the run ends and bnscope starts again with it.
    pub(crate) relaunch: Option<crate::lesson::Scenario>,
    /// The help paused the run (closing it resumes).
    pub(super) help_paused: bool,
    pub(crate) status: Option<(Tone, String)>,
    /// A log instead of a trainer (`bnscope replay`/`watch`): its epochs and the cursor.
    pub(crate) log: Option<super::timeline::Timeline>,
    /// When playback moves the cursor on next.
    pub(super) play_at: Option<std::time::Instant>,
    /// The UI loop is handling a batch of log findings: the store is brought up to date once, after the batch.
    pub(super) log_batch: bool,
    pub(super) log_stale: bool,
    /// `bnscope watch` of a run with its control channel on: where commands go (docs/CONTROL.md).
    pub(crate) steer: Steering,
    /// A watch: how long the shown log has been quiet and whether its writer still runs (the header says so).
    pub(crate) writer: super::writer::WriterWatch,
    /// When the status line was set (it clears itself after [`STATUS_TTL`], errors excepted).
    pub(super) status_at: Option<std::time::Instant>,
    pub(super) dirty: bool,
}

/// The control channel of a watched run, as the TUI uses it.
#[derive(Debug, Default)]
pub struct Steering {
    /// The open command file (`None`: the run is read-only, or its channel was refused).
    pub(crate) channel: Option<crate::control::Steer>,
    /// Why the run cannot be steered, when its log offered a channel that was refused.
    pub(crate) refused: Option<String>,
    /// The writer's process, host, and what it offers.
    pub(crate) pid: Option<u64>,
    pub(crate) host: Option<String>,
    pub(crate) recalibrate: bool,
    pub(crate) evaluate: bool,
    /// Commands sent and not yet in the log: id, words, when, and whether the status already said it is late.
    pub(crate) sent: Vec<(String, String, std::time::Instant, bool)>,
    /// The first log event not yet looked at for an answer.
    pub(crate) seen: usize,
    /// The run paused itself at a command (the ledger said `pause`, not yet `resume`).
    pub(crate) paused: bool,
    /// The momentum (Keras) and cumulative mode asked for and not yet answered: the next `+`/`-`/`u` steps from
    /// them, not from the log's last epoch.
    pub(crate) momentum: Option<f64>,
    pub(crate) cumulative: Option<bool>,
}

/// How long a command may wait for its ledger event before the status says why it might not be applied.
pub const STEER_PATIENCE: std::time::Duration = std::time::Duration::from_secs(5);

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
    /// A slow phase before the run proper (pre-training, an inspection of imported weights).
    Preparing,
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
            RunState::Preparing => (Tone::Info, "preparing"),
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
            theme: Theme::new(opts.ascii, opts.no_color).colorblind(opts.colorblind),
            progress: None,
            confirm_on_refresh: None,
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
            marked_channel: None,
            timer: None,
            clock: None,
            with_clock: opts.clock,
            zoom: None,
            screen: ratatui::layout::Rect::new(0, 0, 120, 40),
            show_help: false,
            notes: Vec::new(),
            help_scroll: 0,
            lessons: None,
            relaunch: None,
            help_paused: false,
            status: None,
            status_at: None,
            log: None,
            play_at: None,
            log_batch: false,
            log_stale: false,
            steer: Steering::default(),
            writer: Default::default(),
            dirty: true,
        }
    }

    /// A UI over a log instead of a trainer (`bnscope replay`/`watch`): the panels show the epoch under the
    /// cursor; space plays the log back at `pace` epochs a second.
    pub fn over_log(opts: &TuiOptions, timeline: super::timeline::Timeline, pace: f64) -> Self {
        let mut app = App::new(opts, BnSlot::default());
        app.store.from_log = true;
        app.pace = Some(pace);
        let skipped: Vec<String> = timeline
            .files
            .iter()
            .filter(|f| f.skipped != (0, 0))
            .map(|f| {
                format!(
                    "{}: skipped {}",
                    f.shown,
                    crate::logfile::skipped_words(f.skipped.0, f.skipped.1, f.long_lines)
                )
            })
            .collect();
        app.log = Some(timeline);
        app.sync_log();
        app.update_steer();
        app.check_ledger();
        if let Some(n) = &opts.notice {
            app.set_status(Tone::Info, n.clone());
        }
        if !skipped.is_empty() {
            app.set_status(Tone::Warn, skipped.join("; "));
        }
        app
    }

    /// Log findings come in a batch (`true`), or the batch is over (`false`: the store is brought up to date once).
    pub fn batch_log(&mut self, on: bool) {
        self.log_batch = on;
        if !on && std::mem::take(&mut self.log_stale) {
            self.sync_log();
        }
    }

    /// Writes the cursor's epoch into the store (the panels read only the store) and the settings it shows.
    pub(super) fn sync_log(&mut self) {
        if self.log_batch {
            self.log_stale = true;
            self.dirty = true;
            return;
        }
        let Some(tl) = &self.log else { return };
        tl.show(&mut self.store);
        if let Some(m) = &self.store.latest {
            self.momentum = m.momentum.unwrap_or(f64::NAN);
            self.cumulative = m.cumulative;
        }
        self.selected = self.selected.min(self.store.layer_count().saturating_sub(1));
        self.dirty = true;
    }

    /// What a look at a followed log found.
    pub fn handle_log(&mut self, file: usize, ev: crate::logfile::Followed) {
        use super::timeline::FileState;
        use crate::logfile::Followed;
        let Some(tl) = self.log.as_mut() else { return };
        let Some(f) = tl.files.get_mut(file) else { return };
        let shown = f.shown.clone();
        match ev {
            Followed::Waiting => f.state = FileState::Waiting,
            Followed::Following => {
                // Said when the file appears (after a truncation the warning stays).
                let appeared = f.state == FileState::Waiting;
                f.state = FileState::Reading;
                if appeared {
                    self.set_status(Tone::Info, format!("{shown} appeared: following it"));
                }
            }
            Followed::StartingOver { replaced } => {
                tl.restart_file(file);
                if file == 0 {
                    self.writer.start_over();
                    self.steer.seen = 0;
                    self.steer.paused = false;
                }
                let how = if replaced { "replaced" } else { "truncated" };
                self.set_status(Tone::Warn, format!("{shown} was {how}: starting over"));
            }
            Followed::Records(records) => {
                f.state = FileState::Reading;
                tl.take(file, records);
                if file == 0 {
                    self.writer.saw_records(std::time::Instant::now());
                    self.update_steer();
                    self.check_ledger();
                }
            }
            Followed::Skipped {
                bad_lines,
                unknown,
                long_lines,
            } => {
                f.skipped = (bad_lines, unknown);
                f.long_lines = long_lines;
                let words = crate::logfile::skipped_words(bad_lines, unknown, long_lines);
                self.set_status(Tone::Warn, format!("{shown}: skipped {words}"));
            }
            Followed::Progress { read, size } => {
                let was = f.progress;
                f.progress = Some((read, size));
                let pct = 100 * read / size.max(1);
                if was.is_none_or(|(r, _)| 100 * r / size.max(1) != pct) {
                    self.set_status(
                        Tone::Info,
                        format!(
                            "reading {shown}: {pct}% of {:.1} MB (every key works meanwhile)",
                            size as f64 / 1e6
                        ),
                    );
                }
                return;
            }
            Followed::Refused(msg) => {
                let msg = if tl.watch {
                    format!("{msg}; waiting for it to be replaced")
                } else {
                    msg
                };
                self.handle_log_error(file, msg);
                self.sync_log();
                return;
            }
        }
        if let Some(f) = self.log.as_mut().and_then(|tl| tl.files.get_mut(file)) {
            if f.progress.take().is_some() {
                // Done catching up: the status said how far the reading was.
            }
        }
        self.sync_log();
    }

    /// A log file that cannot be shown: said on screen (a watch keeps waiting for the file to be replaced).
    pub fn handle_log_error(&mut self, file: usize, msg: String) {
        if let Some(f) = self.log.as_mut().and_then(|tl| tl.files.get_mut(file)) {
            f.state = super::timeline::FileState::Refused(msg.clone());
        }
        self.set_status(Tone::Bad, msg);
    }

    /// When playback moves on next, if it is playing.
    pub fn play_deadline(&self) -> Option<std::time::Instant> {
        self.play_at
    }

    /// Time passed: playback moves the cursor on by the epochs due (at the end it stops; a watch follows).
    pub fn handle_tick(&mut self, now: std::time::Instant) {
        let (Some(at), Some(pace)) = (self.play_at, self.pace) else {
            return;
        };
        if now < at {
            return;
        }
        let Some(tl) = self.log.as_mut() else { return };
        let gap = std::time::Duration::from_secs_f64(1.0 / pace.max(0.01));
        let due = 1 + (now.duration_since(at).as_secs_f64() * pace) as i64;
        tl.step(due);
        let last = tl.cursor + 1 >= tl.entries.len();
        if last {
            tl.playing = false;
            self.play_at = None;
            let words = if tl.watch {
                "played to the newest epoch: following the log"
            } else {
                "played to the end of the log (space plays again from the start)"
            };
            self.set_status(Tone::Info, words);
        } else {
            self.play_at = Some(at + gap.mul_f64(due as f64));
            if self.play_at.is_some_and(|t| t <= now) {
                self.play_at = Some(now + gap);
            }
        }
        self.sync_log();
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
        o.relaunch = self.relaunch.map(|s| s.name().to_string());
        o.messages = self.store.errors.clone();
        o.notes = self.notes.clone();
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
            AppEvent::Log(file, ev) => {
                self.handle_log(file, ev);
                Vec::new()
            }
            AppEvent::LogError(file, msg) => {
                self.handle_log_error(file, msg);
                Vec::new()
            }
        }
    }

    pub(super) fn set_status(&mut self, tone: Tone, s: impl Into<String>) {
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
        // "recalibrating…" stays until the new numbers are on screen, however long that takes.
        let waiting = self.confirm_on_refresh.is_some();
        if self.status_deadline().is_some_and(|d| now >= d) && self.shutdown.is_none() && !waiting {
            self.status = None;
            self.status_at = None;
            self.confirm_restart = false;
            self.dirty = true;
        }
    }

    /// The reason to return when the user closes a UI whose trainer is already gone.
    pub(super) fn closed_reason(&self) -> EndReason {
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
    pub(super) fn waiting_words(&self) -> String {
        match &self.checkpoint {
            Some(_) => "finishing the step in flight, then writing the checkpoint…".into(),
            None => "finishing the step in flight…".into(),
        }
    }

    pub(super) fn begin_shutdown(&mut self, reason: EndReason) -> Vec<Command> {
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
        // A slow phase ends with the next news from the trainer.
        match &ev {
            Event::Progress(p) if p.done < p.total || p.total <= 1 => self.progress = Some(p.clone()),
            Event::BnReady | Event::Warning { .. } | Event::Started(_) => {}
            _ => self.progress = None,
        }
        match &ev {
            Event::Started(info) => {
                self.timer = self
                    .with_clock
                    .then(|| super::clock::Timer::new(std::time::Instant::now()));
                self.clock = None;
                self.momentum = info.momentum;
                self.cumulative = info.cumulative;
                self.pace = info.pace;
                self.setting_pending = false;
            }
            Event::Epoch(m) => {
                let epochs = self.store.info.as_ref().and_then(|i| i.epochs);
                if let Some(t) = self.timer.as_mut() {
                    self.clock = Some(t.at(std::time::Instant::now(), m.epoch, epochs));
                }
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
            Event::Refreshed(_) => {
                if let Some(text) = self.confirm_on_refresh.take() {
                    if self.shutdown.is_none() {
                        self.set_status(Tone::Good, text);
                    }
                }
            }
            Event::BnReady | Event::Inspected(_) | Event::Progress(_) => {}
            Event::Applied { epoch, what, value } => {
                match what {
                    EventKind::Momentum | EventKind::Cumulative => self.setting_pending = false,
                    EventKind::Pause | EventKind::PauseAt => self.paused = true,
                    EventKind::Resume => self.paused = false,
                    EventKind::SaveWeights => self
                        .notes
                        .push(format!("weights written to {value} (a PyTorch state_dict)")),
                    _ => {}
                }
                if *what == EventKind::PauseAt {
                    self.intro = Some(*epoch);
                }
                if self.shutdown.is_none() {
                    let text = self.applied_words(*epoch, *what, value);
                    if matches!(what, EventKind::Recalibrate | EventKind::ResetStats) {
                        // Both evaluations follow (`Refreshed`): confirm when the numbers on screen are the new
                        // ones; until then say what is being done.
                        let doing = match what {
                            EventKind::Recalibrate => "recalibrating…: new statistics estimated",
                            _ => "resetting…: running stats at mean 0 / variance 1",
                        };
                        self.set_status(Tone::Info, format!("{doing}, evaluating with them"));
                        self.confirm_on_refresh = Some(text);
                    } else {
                        self.set_status(Tone::Good, text);
                    }
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

    /// Whether the opening explanation is on screen: paused by `--pause-at` and untouched since.
    pub(crate) fn intro_active(&self) -> bool {
        self.paused && self.intro.is_some() && self.intro == self.store.latest.as_ref().map(|m| m.epoch)
    }

    /// What an acknowledged command did, in plain words.
    pub(super) fn applied_words(&self, epoch: usize, what: EventKind, value: &str) -> String {
        let next = epoch + 1;
        match what {
            EventKind::Momentum => format!("momentum {} from epoch {next}", self.momentum_words()),
            EventKind::Cumulative if value == "true" => {
                format!("cumulative averaging on from epoch {next} (PyTorch momentum=None)")
            }
            EventKind::Cumulative => format!("cumulative averaging off: moving average from epoch {next}"),
            EventKind::PauseAt
                if self
                    .lesson()
                    .is_some_and(|l| l.scenario != crate::lesson::Scenario::Seed) =>
            {
                format!("paused after epoch {epoch}: read the lesson, then space (L: the other lessons)")
            }
            EventKind::PauseAt => {
                format!("paused after epoch {epoch}, the seed's moment: read the screen, then space")
            }
            EventKind::Pause => format!("paused after epoch {epoch}: n runs one epoch, space resumes"),
            EventKind::Resume => format!("running from epoch {next}"),
            EventKind::ResetStats => "running stats reset to mean 0 / variance 1 (t = 0)".to_string(),
            EventKind::Recalibrate => format!("running stats re-estimated from the data ({value})"),
            EventKind::Restart => format!("restarted with new weights ({value})"),
            EventKind::Pace => format!("pace: {value}"),
            EventKind::SaveWeights => format!("weights written to {value} (PyTorch state_dict)"),
            EventKind::EvalMode if value == "batch" => "headline evaluation: batch statistics".to_string(),
            EventKind::EvalMode => "headline evaluation: running statistics".to_string(),
            // Diverged, one value per channel, and any command added later: its name and value.
            _ => format!("{} {value}", what.as_str()).trim_end().to_string(),
        }
    }

    /// The footer's words for a hint, where they depend on the state (`space resume` while paused).
    pub(crate) fn hint_words(&self, h: &keys::Hint) -> &'static str {
        match h.binding.action {
            Action::PauseResume if self.steering() && self.steer.paused => "resume run",
            Action::PauseResume if self.steering() => "pause run",
            Action::PauseResume if self.log.as_ref().is_some_and(|l| l.playing) => "stop",
            Action::PauseResume if self.log.is_some() => "play",
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
        if let Some(can) = self.steer_can(b.action) {
            return can;
        }
        if self.store.from_log {
            // A log is read-only: space plays it back, < and > set the playback's pace.
            return !b.changes_run || matches!(b.action, Action::PauseResume | Action::Slower | Action::Faster);
        }
        if b.log_only {
            return false;
        }
        if b.changes_run && !self.store.trainer_alive() {
            return false;
        }
        b.action != Action::Step || self.paused
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
        self.store.latest.as_ref().and_then(|m| match mode {
            EvalMode::Running => m.predictions_running.as_deref(),
            EvalMode::Batch => m.predictions_batch.as_deref(),
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

    /// How far the ranks' running means are apart at the cursor's epoch (several rank logs).
    pub(crate) fn rank_spread(&self) -> Option<(u64, Vec<(f64, String)>)> {
        self.store.rank_spread.clone()
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
        } else if self.progress.is_some() {
            RunState::Preparing
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

/// The actions that reach a steered run.
fn steers(a: Action) -> bool {
    matches!(
        a,
        Action::MomentumUp
            | Action::MomentumDown
            | Action::ToggleCumulative
            | Action::ResetStats
            | Action::Recalibrate
            | Action::PauseResume
            | Action::Step
            | Action::Evaluate
    )
}

impl App {
    /// Whether the watched run takes commands (its log named a control channel that passed every check).
    pub(crate) fn steering(&self) -> bool {
        self.steer.channel.is_some()
    }

    /// Whether a steerable key would do something now (a dimmed key's reason is [`App::steer_refusal`]).
    pub(crate) fn steer_can(&self, a: Action) -> Option<bool> {
        if !self.steering() || !steers(a) {
            return None;
        }
        Some(match a {
            Action::Recalibrate => self.steer.recalibrate,
            Action::Evaluate => self.steer.evaluate,
            Action::Step => self.steer.paused,
            _ => true,
        })
    }

    /// Looks at the watched run's newest `run` record for its control channel and opens it (once per path).
    pub(super) fn update_steer(&mut self) {
        use crate::logfile::Control;
        let Some(tl) = &self.log else { return };
        if !tl.watch {
            return;
        }
        let Some(run) = tl.runs.last().map(|r| r.run.clone()) else {
            return;
        };
        match &run.control {
            None => {
                self.steer.channel = None;
                self.steer.refused = None;
            }
            Some(Control::Refused(why)) => {
                let why = format!("the run could not open its control channel: {why}");
                if self.steer.refused.as_deref() != Some(why.as_str()) {
                    self.steer.channel = None;
                    self.set_status(Tone::Warn, why.clone());
                    self.steer.refused = Some(why);
                }
            }
            Some(Control::On {
                path,
                recalibrate,
                evaluate,
            }) => {
                self.steer.pid = run.pid;
                self.steer.host = run.host.clone();
                self.steer.recalibrate = *recalibrate;
                self.steer.evaluate = *evaluate;
                if self.steer.channel.as_ref().is_some_and(|c| c.path() == path) {
                    return;
                }
                match crate::control::Steer::open(path) {
                    Ok(c) => {
                        self.steer.channel = Some(c);
                        self.steer.refused = None;
                        self.set_status(
                            Tone::Good,
                            "steering this run: + - u r c space n E act on it at its next step",
                        );
                    }
                    Err(e) => {
                        self.steer.channel = None;
                        self.set_status(Tone::Warn, format!("read-only: {e}"));
                        self.steer.refused = Some(e);
                    }
                }
            }
        }
    }

    /// A key for the steered run: the command goes into its control file; the ledger's event confirms it.
    pub(super) fn steer_key(&mut self, action: Action) -> Vec<Command> {
        use crate::control::Verb;
        let verb = match action {
            Action::MomentumUp | Action::MomentumDown => {
                let up = (action == Action::MomentumUp) != self.torch_first;
                let from = self.steer.momentum.unwrap_or(self.momentum);
                match ladder_step(LADDER, from, up) {
                    // The control grammar takes [0, 1): the ladder's 0 is "no averaging", fine; 0.9999 is fine.
                    Some(m) => Verb::Momentum(m),
                    None => {
                        let end = if up { "top" } else { "bottom" };
                        self.set_status(
                            Tone::Warn,
                            format!(
                                "momentum {} is the {end} of the ladder",
                                super::fmt::momentum(self.momentum)
                            ),
                        );
                        return Vec::new();
                    }
                }
            }
            Action::ToggleCumulative => Verb::Cumulative(!self.steer.cumulative.unwrap_or(self.cumulative)),
            Action::ResetStats => Verb::Reset,
            Action::Recalibrate if !self.steer.recalibrate => {
                self.set_status(
                    Tone::Warn,
                    "c: the run gave no data to recalibrate with (watch(..., recalibrate=loader))",
                );
                return Vec::new();
            }
            Action::Recalibrate => Verb::Recalibrate,
            Action::Evaluate if !self.steer.evaluate => {
                self.set_status(
                    Tone::Warn,
                    "E: the run gave no evaluate function (watch(..., evaluate=fn))",
                );
                return Vec::new();
            }
            Action::Evaluate => Verb::Evaluate,
            Action::PauseResume if self.steer.paused => Verb::Resume,
            Action::PauseResume => Verb::Pause,
            Action::Step if !self.steer.paused => {
                self.set_status(Tone::Warn, "n steps the run only while it is paused (space pauses)");
                return Vec::new();
            }
            Action::Step => Verb::Step,
            _ => return Vec::new(),
        };
        let words = match &verb {
            Verb::Momentum(m) => {
                let t = crate::protocol::keras_to_torch(*m);
                format!(
                    "momentum {} (Keras) = {} (PyTorch)",
                    super::fmt::momentum(*m),
                    super::fmt::momentum(t)
                )
            }
            v => v.words(),
        };
        let Some(ch) = self.steer.channel.as_mut() else {
            return Vec::new();
        };
        match ch.send(&verb) {
            Ok(id) => {
                self.set_status(Tone::Info, format!("sent: {words}"));
                self.steer.sent.push((id, words, std::time::Instant::now(), false));
                match verb {
                    Verb::Momentum(m) => {
                        self.steer.momentum = Some(m);
                        self.steer.cumulative = Some(false);
                    }
                    Verb::Cumulative(on) => self.steer.cumulative = Some(on),
                    _ => {}
                }
            }
            Err(e) => self.set_status(Tone::Bad, format!("not sent: {e}")),
        }
        Vec::new()
    }

    /// New ledger events of the watched run: the answers to the commands sent, and whether it is paused.
    pub(super) fn check_ledger(&mut self) {
        let Some(tl) = &self.log else { return };
        let from = self.steer.seen.min(tl.events.len());
        let mut said: Option<(Tone, String)> = None;
        for e in &tl.events[from..] {
            match e.what.as_str() {
                "pause" | "step" if e.id.is_some() => self.steer.paused = true,
                "resume" if e.id.is_some() => self.steer.paused = false,
                _ => {}
            }
            let Some(id) = &e.id else { continue };
            let Some(i) = self.steer.sent.iter().position(|(s, ..)| s == id) else {
                continue;
            };
            let (_, words, ..) = self.steer.sent.remove(i);
            let at = e.step.map_or(String::new(), |s| format!(" at step {s}"));
            said = Some(if e.what == "refused" {
                let why = e.reason.as_deref().unwrap_or("no reason given");
                (Tone::Bad, format!("{words}: refused by the run: {why}"))
            } else {
                let value = if e.what == "evaluate" && !e.value.is_empty() {
                    format!(": {}", e.value)
                } else {
                    String::new()
                };
                (
                    Tone::Good,
                    format!("{words}: applied{at} (after epoch {}){value}", e.epoch),
                )
            });
        }
        self.steer.seen = tl.events.len();
        if self.steer.sent.is_empty() {
            // Every command is answered: the log's own epochs say the momentum again.
            self.steer.momentum = None;
            self.steer.cumulative = None;
        }
        if let Some((tone, words)) = said {
            self.set_status(tone, words);
        }
    }

    /// When a command sent will have waited too long for its answer.
    /// The header's clock follows the run's pause (the ETA leaves paused time out and is not shown while paused).
    pub fn handle_clock_tick(&mut self, now: std::time::Instant) {
        let paused = self.paused;
        if let Some(t) = self.timer.as_mut() {
            t.set_paused(now, paused);
        }
    }

    /// A watch: the quiet time and the writer's process, once a second (the header shows them).
    pub fn handle_writer_tick(&mut self, now: std::time::Instant) {
        let Some(tl) = self.log.as_ref().filter(|tl| tl.watch) else {
            return;
        };
        let run = tl.runs.last().map(|r| &r.run);
        let writer = run.and_then(|r| Some((r.pid?, r.host.as_deref()?)));
        if self.writer.tick(now, writer, super::writer::this_host()) {
            self.dirty = true;
        }
    }

    /// When the watch's header may change next (`None`: not a watch).
    pub fn writer_deadline(&self) -> Option<std::time::Instant> {
        self.log.as_ref().filter(|tl| tl.watch)?;
        self.writer.deadline()
    }

    pub fn steer_deadline(&self) -> Option<std::time::Instant> {
        self.steer
            .sent
            .iter()
            .filter(|s| !s.3)
            .map(|s| s.2 + STEER_PATIENCE)
            .min()
    }

    /// Commands unanswered for [`STEER_PATIENCE`]: the status says why they might not be applied (once each).
    pub fn handle_steer_tick(&mut self, now: std::time::Instant) {
        let mut late = Vec::new();
        for (_, words, at, warned) in self.steer.sent.iter_mut() {
            if !*warned && now.duration_since(*at) >= STEER_PATIENCE {
                // Said once; the ledger's answer, if it comes, is still said.
                *warned = true;
                late.push(words.clone());
            }
        }
        if late.is_empty() {
            return;
        }
        let pid = self.steer.pid;
        let here = self
            .steer
            .host
            .as_deref()
            .is_some_and(|h| h == crate::control::hostname());
        let ended = self.log.as_ref().is_some_and(|tl| tl.end.is_some());
        let why = match pid {
            Some(p) if here && !crate::control::process_alive(p) => {
                format!("its process (pid {p}) has exited")
            }
            _ if ended => "the run has finished (its log has an end record)".to_string(),
            _ if self.steer.paused => "the run is paused: space resumes it".to_string(),
            Some(p) => format!(
                "the run applies commands at its next training step: it may be between epochs (its data loader, \
                 its evaluation), or its process (pid {p}{}) is gone or stuck",
                self.steer.host.as_deref().map_or(String::new(), |h| format!(" on {h}"))
            ),
            None => "the run applies commands at its next training step: it may be between epochs".to_string(),
        };
        self.set_status(
            Tone::Warn,
            format!(
                "{}: not applied after {} s: {why}",
                late.join(", "),
                STEER_PATIENCE.as_secs()
            ),
        );
    }
}
