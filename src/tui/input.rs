//! Keys and the mouse: what each action does to the app (the other half of `App::handle_*`, kept apart from the
//! trainer-event handling in `app.rs`). The keys come from the one binding table in `keys.rs`.
use crossterm::event::KeyEvent;

use crate::protocol::{Command, EndReason, EvalMode};

use super::app::{ladder_step, App, Focus, LADDER, PACES, ZOOMS};
use super::keys::{self, Action};
use super::theme::Tone;

impl App {
    /// Handles a key press; returns the commands to send.
    pub fn handle_key(&mut self, key: KeyEvent) -> Vec<Command> {
        if self.lessons.is_some() {
            return self.handle_lesson_key(key);
        }
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
            // Reading the help paused the run: closing it runs it again.
            if std::mem::take(&mut self.help_paused) && self.store.trainer_alive() && self.shutdown.is_none() {
                self.paused = false;
                return vec![Command::Resume];
            }
            return Vec::new();
        }
        if self.show_help {
            // The help owns the keys while it is open: the arrows scroll it (not the layers behind it), q quits,
            // anything else waits until it is closed.
            let max = super::render::help::max_scroll(self, self.screen);
            let page = self.screen.height.saturating_sub(6).max(1) as usize;
            let next = match action {
                Action::Up => Some(self.help_scroll.saturating_sub(1)),
                Action::Down => Some(self.help_scroll + 1),
                Action::PageUp => Some(self.help_scroll.saturating_sub(page)),
                Action::PageDown => Some(self.help_scroll + page),
                Action::Home => Some(0),
                Action::End => Some(max),
                Action::Quit => None,
                _ => {
                    self.set_status(Tone::Info, "the help is open: ? or Esc closes it");
                    return Vec::new();
                }
            };
            if let Some(n) = next {
                self.help_scroll = n.min(max);
                return Vec::new();
            }
        }
        if self.shutdown.is_some() {
            if action == Action::Quit {
                // A second quit while waiting: stop waiting (and say on stderr what was not written).
                self.abandoned = true;
                self.exit = self.shutdown;
            }
            return Vec::new();
        }
        if action == Action::Export {
            self.export_screen();
            return Vec::new();
        }
        if self.store.from_log {
            if let Some(cmds) = self.handle_log_key(action) {
                return cmds;
            }
        } else if binding.log_only {
            self.set_status(
                Tone::Info,
                format!("{}: only in a replay (bnscope replay/watch)", binding.keys_label()),
            );
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
                    Tone::Info,
                    format!("recalibrating…{sep}one pass over the data, then both evaluations"),
                );
                // Confirmed when the trainer's evaluations with the new statistics arrive (`Refreshed`).
                self.confirm_on_refresh = Some("running stats re-estimated from the data".into());
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
                    self.marked_channel = Some((self.selected, c));
                    let mark = self.theme.pointer();
                    self.set_status(
                        Tone::Info,
                        format!("channel {c} ({mark}): the furthest from its batch mean"),
                    );
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
            Action::Lessons => {
                let current = self.store.info.as_ref().and_then(|i| i.lesson.clone());
                let at = crate::lesson::LESSONS
                    .iter()
                    .position(|l| Some(l.scenario.name()) == current.as_deref());
                self.lessons = Some(at.unwrap_or(0));
                Vec::new()
            }
            Action::Help => {
                self.show_help = true;
                self.help_scroll = 0;
                // The run waits while the help is read (and goes on when it closes).
                if !self.paused && self.store.trainer_alive() {
                    self.paused = true;
                    self.help_paused = true;
                    return vec![Command::Pause];
                }
                Vec::new()
            }
            _ => Vec::new(),
        }
    }

    /// A key while the lesson list (`L`) is open: arrows choose, a digit or Enter starts one (this run ends and
    /// bnscope starts again with `--scenario`), Esc or `L` closes the list.
    fn handle_lesson_key(&mut self, key: KeyEvent) -> Vec<Command> {
        use crossterm::event::{KeyCode, KeyEventKind};
        let (Some(sel), true) = (self.lessons, key.kind == KeyEventKind::Press) else {
            return Vec::new();
        };
        self.dirty = true;
        let n = crate::lesson::LESSONS.len();
        let chosen = match key.code {
            KeyCode::Esc | KeyCode::Char('L') | KeyCode::Char('q') => {
                self.lessons = None;
                None
            }
            KeyCode::Up | KeyCode::Char('k') => {
                self.lessons = Some(sel.saturating_sub(1));
                None
            }
            KeyCode::Down | KeyCode::Char('j') => {
                self.lessons = Some((sel + 1).min(n - 1));
                None
            }
            KeyCode::Enter => Some(sel),
            KeyCode::Char(c @ '1'..='9') => Some(c as usize - '1' as usize).filter(|&i| i < n),
            _ => None,
        };
        let Some(i) = chosen else {
            return Vec::new();
        };
        self.lessons = None;
        let lesson = &crate::lesson::LESSONS[i];
        self.relaunch = Some(lesson.scenario);
        self.set_status(Tone::Info, format!("starting the lesson: {}", lesson.title));
        self.begin_shutdown(EndReason::Quit)
    }

    /// A key over a log (`bnscope replay`/`watch`): the epoch cursor, playback, and a refusal for the keys that
    /// would change a run. `None`: the key does what it does in a live run (layers, eval mode, help, quit).
    fn handle_log_key(&mut self, action: Action) -> Option<Vec<Command>> {
        if self.steer_can(action).is_some() {
            return Some(self.steer_key(action));
        }
        let tl = self.log.as_mut()?;
        let sep = self.theme.sep();
        let moved = match action {
            Action::EpochBack => tl.step(-1),
            Action::EpochOn => tl.step(1),
            Action::EpochBack10 => tl.step(-10),
            Action::EpochOn10 => tl.step(10),
            Action::Home if self.focus == Focus::Layers => tl.go(0),
            Action::End if self.focus == Focus::Layers => {
                let moved = tl.go(tl.entries.len().saturating_sub(1));
                tl.following = true;
                if tl.watch {
                    self.status = Some((Tone::Info, "following the newest epoch".into()));
                    self.status_at = Some(std::time::Instant::now());
                }
                moved
            }
            Action::NextRank => {
                let n = tl.files.len();
                if n < 2 {
                    self.set_status(Tone::Info, "one log: no other rank to show");
                    return Some(Vec::new());
                }
                tl.detail = (tl.detail + 1) % n;
                let words = format!(
                    "layers and channels: {} (log {} of {n}){sep}header and charts: {}",
                    tl.files[tl.detail].shown,
                    tl.detail + 1,
                    tl.files[0].shown
                );
                self.sync_log();
                self.set_status(Tone::Info, words);
                return Some(Vec::new());
            }
            Action::PrevEvent | Action::NextEvent => {
                let back = action == Action::PrevEvent;
                match tl.event_near(back).map(|(i, e)| (i, e.words())) {
                    Some((i, words)) => {
                        tl.go(i);
                        self.sync_log();
                        self.set_status(Tone::Info, words);
                    }
                    None => {
                        let which = if back { "before" } else { "after" };
                        self.set_status(Tone::Info, format!("no event {which} this epoch"));
                    }
                }
                return Some(Vec::new());
            }
            Action::PauseResume => {
                if tl.playing {
                    tl.playing = false;
                    self.play_at = None;
                    self.set_status(Tone::Info, "playback stopped");
                } else {
                    if tl.cursor + 1 >= tl.entries.len() && !tl.watch {
                        // At the end: play from the start.
                        tl.go(0);
                    }
                    tl.playing = true;
                    let pace = self.pace.unwrap_or(7.0);
                    self.play_at = Some(std::time::Instant::now() + std::time::Duration::from_secs_f64(1.0 / pace));
                    self.set_status(
                        Tone::Info,
                        format!("playing at {}{sep}space stops", super::fmt::pace(pace)),
                    );
                }
                self.sync_log();
                return Some(Vec::new());
            }
            Action::Slower | Action::Faster => {
                let p = self.pace.unwrap_or(7.0);
                let up = action == Action::Faster;
                let next = ladder_step(PACES, p, up).unwrap_or(p);
                self.pace = Some(next);
                self.set_status(Tone::Info, format!("playback {}", super::fmt::pace(next)));
                return Some(Vec::new());
            }
            Action::Help => {
                self.show_help = true;
                self.help_scroll = 0;
                return Some(Vec::new());
            }
            _ => {
                if keys::binding(action).changes_run || action == Action::Evaluate {
                    let words = match (&self.steer.refused, tl.watch) {
                        (Some(why), _) => format!("this run cannot be steered: {why}"),
                        (None, true) => "watch: this run is read-only (steer it by starting it with \
                                         bnscope.watch(..., control=True))"
                            .to_string(),
                        (None, false) => "replay: this log is read-only (that key changes a live run)".to_string(),
                    };
                    self.set_status(Tone::Warn, words);
                    return Some(Vec::new());
                }
                return None;
            }
        };
        if moved {
            self.sync_log();
        }
        Some(Vec::new())
    }

    /// The layer whose running statistics are furthest from the batch's: the lowest of the two gauges.
    pub(super) fn worst_layer(&self) -> Option<usize> {
        let bn = self.store.bn.as_ref()?;
        let missing = |i: usize| self.store.mean_gap(i) == Some(None);
        let score = |l: &crate::protocol::BnLayerSnapshot| {
            let mean = super::gauges::convergence(l.mean_gap);
            let var = super::gauges::var_ratio(l).map_or(1.0, |r| 1.0 - (r.max(1.0).log10() / 2.0).min(1.0));
            let s = mean.min(var);
            if s.is_nan() {
                -1.0
            } else {
                s
            }
        };
        (0..bn.layers.len())
            .filter(|&i| !missing(i))
            .min_by(|&a, &b| score(&bn.layers[a]).total_cmp(&score(&bn.layers[b])))
    }

    /// The selected layer's channel whose running mean is furthest from its batch mean.
    pub(crate) fn worst_channel(&self) -> Option<usize> {
        let l = self.store.bn.as_ref()?.layers.get(self.selected)?;
        (0..l.running_mean.len())
            .filter(|&c| l.running_mean[c].is_finite() && l.batch_mean.get(c).is_some_and(|b| b.is_finite()))
            .max_by(|&a, &b| {
                let d = |c: usize| (l.running_mean[c] - l.batch_mean[c]).abs();
                d(a).total_cmp(&d(b))
            })
    }

    /// Moves the channel list by `step` rows (clamped).
    pub(super) fn scroll_channels(&mut self, step: i64) {
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
                // In the inspect view the rows are in blame order (`gauges::layer_order`).
                let order = super::gauges::layer_order(&self.store);
                let n = order.len();
                let rows = areas.layers.height.saturating_sub(3) as usize;
                let at = order.iter().position(|&i| i == self.selected).unwrap_or(0);
                let offset = super::gauges::scroll_offset(at, n, rows);
                let row = m.row.saturating_sub(areas.layers.y + 2) as usize;
                if m.row >= areas.layers.y + 2 && offset + row < n && row < rows {
                    self.selected = order[offset + row];
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

    /// Moves the selection by rows of the layer list (in the inspect view, rows in blame order).
    pub(super) fn select(&mut self, f: impl Fn(usize, usize) -> usize) -> Vec<Command> {
        let order = super::gauges::layer_order(&self.store);
        let last = order.len().saturating_sub(1);
        let at = order.iter().position(|&i| i == self.selected).unwrap_or(0);
        let next = order.get(f(at, last).min(last)).copied().unwrap_or(0);
        self.dirty = next != self.selected;
        if next != self.selected {
            self.channel_offset = 0;
        }
        self.selected = next;
        Vec::new()
    }
}
