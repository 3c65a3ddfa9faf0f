//! The terminal UI: one thread owns the terminal and the [`App`]; keys, trainer events, signals and
//! redraw ticks arrive through one crossbeam `select!`; all pending events are drained before one draw;
//! redraws happen only when something changed, at most `fps` times a second.
//!
//! * `store.rs`: the trainer's data as received (`Store::ingest`); `app.rs`: the view state and `App::handle_*`,
//!   the only places where state changes; `diagnosis.rs`: the derived words.
//! * `keys.rs`: the one binding table (dispatch, footer, help).
//! * `render/`: pure rendering, one file per panel (`impl Widget for &App`).
use std::io::{self, BufWriter, Stdout, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use crossbeam_channel::{after, never, select, unbounded, Receiver, Sender};
use crossterm::event::{self as ct, Event as CtEvent};
use crossterm::terminal;
use ratatui::backend::CrosstermBackend;
use ratatui::Terminal;

use crate::outcome::Outcome;
use crate::protocol::{Command, EndReason, Event, Link};

pub mod app;
pub mod clock;
pub mod compare;
pub mod diagnosis;
#[doc(hidden)]
pub mod fixtures;
// The number formats live below every front end (`crate::format`); the panels name them `fmt`.
use crate::format as fmt;
pub mod gauges;
pub mod input;
pub mod keys;
pub mod render;
pub mod snapshot;
pub mod store;
pub mod theme;
pub mod timeline;
pub mod wire;
pub mod writer;

pub use app::{App, AppEvent};

/// How the UI looks and how often it may redraw.
#[derive(Clone, Debug)]
pub struct TuiOptions {
    /// Most redraws per second for trainer events (keys, signals and resizes redraw at once; default 5).
    pub fps: u32,
    /// No braille or block characters.
    pub ascii: bool,
    /// No colours (`NO_COLOR`).
    pub no_color: bool,
    /// Where the data came from, shown until the trainer's `Started` says it.
    pub data_label: String,
    /// `--checkpoint`: a quit waits for it, and says so.
    pub checkpoint: Option<String>,
    /// Report clicks and the wheel (`--no-mouse` turns it off, so that the terminal's own selection works).
    pub mouse: bool,
    /// The colour-blind-safe palette (config `theme = "colorblind"`).
    pub colorblind: bool,
    /// Said once in the status line at start (the locale turned `--ascii` on).
    pub notice: Option<String>,
    /// The header's elapsed time, ETA and RSS (a live run; off in the scripted tests, whose screens are compared
    /// cell for cell).
    pub clock: bool,
}

impl Default for TuiOptions {
    fn default() -> Self {
        TuiOptions {
            fps: 5,
            ascii: false,
            no_color: false,
            data_label: String::new(),
            checkpoint: None,
            mouse: true,
            colorblind: false,
            notice: None,
            clock: false,
        }
    }
}

/// The name of the thread that owns the terminal (measured by `scripts/tui-measure.sh`).
pub const UI_THREAD: &str = "bnscope-ui";
/// Unread trainer events after which the trainer holds back epoch metrics for the TUI
/// (`TrainConfig::event_backlog`): the TUI draws the newest state and keeps a bounded history.
pub const EVENT_BACKLOG: usize = 1024;

type Term = Terminal<wire::Coalescing<CrosstermBackend<BufWriter<Stdout>>>>;

fn init_terminal(mouse: bool) -> anyhow::Result<Term> {
    crate::terminal::install_panic_hook();
    crate::terminal::enter(mouse).context("entering raw mode and the alternate screen")?;
    let backend = wire::Coalescing::new(CrosstermBackend::new(BufWriter::with_capacity(1 << 16, io::stdout())));
    match Terminal::new(backend) {
        Ok(t) => Ok(t),
        Err(e) => {
            crate::terminal::restore();
            Err(e).context("creating the terminal")
        }
    }
}

/// Reads terminal events on its own thread and forwards keys and resizes; stops when `stop` is set or
/// the receiver is gone.
fn spawn_input_reader(tx: Sender<AppEvent>, stop: Arc<AtomicBool>) -> io::Result<()> {
    thread::Builder::new()
        .name("bnscope-keys".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match ct::poll(Duration::from_millis(200)) {
                    Ok(true) => {}
                    Ok(false) => continue,
                    Err(_) => break,
                }
                let ev = match ct::read() {
                    Ok(CtEvent::Key(k)) => AppEvent::Key(k),
                    Ok(CtEvent::Resize(w, h)) => AppEvent::Resize(w, h),
                    Ok(CtEvent::Mouse(m)) => AppEvent::Mouse(m),
                    Ok(_) => continue,
                    Err(_) => break,
                };
                if tx.send(ev).is_err() {
                    break;
                }
            }
        })
        .map(|_| ())
}

/// Takes over the terminal, runs until quit, signal or (after the trainer finished) `q`, always restores
/// the terminal, and returns how the run ended. A quit or a signal waits for the trainer's `Finished` however long
/// its step in flight takes (a second `q` or signal stops waiting), so the checkpoint is written or the outcome
/// says it was not.
pub fn run(link: Link, signals: Receiver<i32>, opts: TuiOptions) -> anyhow::Result<Outcome> {
    let commands = link.commands.clone();
    let events = link.events.clone();
    let handle = thread::Builder::new()
        .name(UI_THREAD.into())
        .spawn(move || -> anyhow::Result<Outcome> {
            let mut term = init_terminal(opts.mouse)?;
            let (key_tx, key_rx) = unbounded();
            let stop = Arc::new(AtomicBool::new(false));
            let result = spawn_input_reader(key_tx, stop.clone())
                .context("starting the key reader")
                .and_then(|()| {
                    let mut app = App::new(&opts, link.bn.clone());
                    if let Some(n) = &opts.notice {
                        app.set_status(theme::Tone::Info, n.clone());
                    }
                    let trainer = TrainerSide {
                        events: link.events.clone(),
                        commands: Some(link.commands.clone()),
                    };
                    event_loop(&mut term, app, trainer, key_rx, never(), signals, &opts)
                });
            stop.store(true, Ordering::Relaxed);
            if result.is_err() {
                // The UI failed (e.g. the terminal went away): stop the trainer cleanly anyway.
                let _ = link.commands.send(Command::Quit(EndReason::Error));
                wait_finished(&link.events);
            }
            let _ = term.show_cursor();
            drop(term);
            crate::terminal::restore();
            result
        })
        .context("starting the UI thread")?;
    match handle.join() {
        Ok(r) => r,
        Err(_) => {
            // The panic hook already restored the terminal; stop the trainer too, and let it write its checkpoint.
            crate::terminal::restore();
            let _ = commands.send(Command::Quit(EndReason::Error));
            wait_finished(&events);
            Err(anyhow!("the UI thread panicked"))
        }
    }
}

/// Waits until the trainer says `Finished` or its channel closes.
fn wait_finished(events: &Receiver<Event>) {
    loop {
        match events.recv() {
            Ok(Event::Finished { .. }) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

fn draw(term: &mut Term, app: &App) -> anyhow::Result<()> {
    let out = term.backend_mut().inner_mut();
    let _ = crossterm::queue!(out, terminal::BeginSynchronizedUpdate);
    term.draw(|f| f.render_widget(app, f.area())).context("drawing")?;
    let out = term.backend_mut().inner_mut();
    let _ = crossterm::queue!(out, terminal::EndSynchronizedUpdate);
    out.flush().context("flushing the terminal")?;
    Ok(())
}

/// A log for the TUI (`bnscope replay`/`watch`): what was read before the screen opened, and for a watch the
/// followers that read on.
pub struct LogSource {
    pub timeline: timeline::Timeline,
    /// One per file, in the timeline's order (empty for a replay).
    pub followers: Vec<crate::logfile::Follower>,
    /// Playback's epochs a second (space).
    pub pace: f64,
    /// A replay: the followers read to the end of their files and stop.
    pub once: bool,
}

/// Reads a log file on its own thread, in bounded pieces: each poll's findings go to the UI as one enum with the
/// keys, through a bounded channel (a UI that falls behind holds the reader back instead of queueing the file in
/// memory). While behind, it polls again at once; else it blocks on `stop` for [`crate::logfile::WATCH_POLL`] (no
/// spinning). `once` (a replay): it stops at the end of the file. It ends when the UI drops `stop` or its channel.
fn spawn_follower(
    file: usize,
    mut follower: crate::logfile::Follower,
    once: bool,
    tx: Sender<AppEvent>,
    stop: Receiver<()>,
) -> io::Result<()> {
    thread::Builder::new()
        .name(format!("bnscope-follow-{file}"))
        .spawn(move || loop {
            let found = follower.poll();
            if !found.into_iter().all(|f| tx.send(AppEvent::Log(file, f)).is_ok()) {
                return;
            }
            if follower.behind() {
                if !matches!(stop.try_recv(), Err(crossbeam_channel::TryRecvError::Empty)) {
                    return;
                }
                continue;
            }
            if once {
                for f in follower.finish() {
                    let _ = tx.send(AppEvent::Log(file, f));
                }
                return;
            }
            match stop.recv_timeout(crate::logfile::WATCH_POLL) {
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
                _ => return,
            }
        })
        .map(|_| ())
}

/// The TUI over a log (`bnscope replay`/`watch` without `--headless`): the same screen as a live run, fed from the
/// log's records; keys, the followers' findings, signals and ticks arrive through one `select!`. Always restores
/// the terminal; a quit is exit 0, a signal 128 + n.
pub fn run_log(source: LogSource, signals: Receiver<i32>, opts: TuiOptions) -> anyhow::Result<Outcome> {
    let handle = thread::Builder::new()
        .name(UI_THREAD.into())
        .spawn(move || -> anyhow::Result<Outcome> {
            let mut term = init_terminal(opts.mouse)?;
            let (key_tx, key_rx) = unbounded();
            let stop = Arc::new(AtomicBool::new(false));
            // Dropping `_stop_followers` ends the followers.
            let (_stop_followers, stop_rx) = crossbeam_channel::bounded::<()>(0);
            let (log_tx, log_rx) = crossbeam_channel::bounded(16);
            let mut started = spawn_input_reader(key_tx, stop.clone()).context("starting the key reader");
            for (i, f) in source.followers.into_iter().enumerate() {
                if started.is_ok() {
                    started = spawn_follower(i, f, source.once, log_tx.clone(), stop_rx.clone())
                        .context("starting a log reader");
                }
            }
            drop(log_tx);
            let app = App::over_log(&opts, source.timeline, source.pace);
            let trainer = TrainerSide {
                events: never(),
                commands: None,
            };
            let result = started.and_then(|()| event_loop(&mut term, app, trainer, key_rx, log_rx, signals, &opts));
            stop.store(true, Ordering::Relaxed);
            let _ = term.show_cursor();
            drop(term);
            crate::terminal::restore();
            result
        })
        .context("starting the UI thread")?;
    match handle.join() {
        Ok(r) => r,
        Err(_) => {
            crate::terminal::restore();
            Err(anyhow!("the UI thread panicked"))
        }
    }
}

/// The trainer's side of the UI loop (a log has none: no events, nowhere to send commands).
struct TrainerSide {
    events: Receiver<Event>,
    commands: Option<Sender<Command>>,
}

/// The UI loop: wait for anything, drain everything, draw at most once.
fn event_loop(
    term: &mut Term,
    mut app: App,
    trainer: TrainerSide,
    keys: Receiver<AppEvent>,
    logs: Receiver<AppEvent>,
    signals: Receiver<i32>,
    opts: &TuiOptions,
) -> anyhow::Result<Outcome> {
    let frame_gap = Duration::from_secs_f64(1.0 / opts.fps.max(1) as f64);
    if let Ok(size) = term.size() {
        app.handle_event(AppEvent::Resize(size.width, size.height));
    }
    let mut events: Receiver<Event> = trainer.events.clone();
    let mut logs = logs;
    let mut keys = keys;
    let mut signals = signals;
    let mut last_draw: Option<Instant> = None;
    let mut pending: Vec<AppEvent> = Vec::new();
    // A key, signal or resize is answered at once; trainer events wait for the frame budget.
    let mut urgent = false;
    loop {
        // Redraw now if allowed; else wake up when it will be.
        let now = Instant::now();
        if app.is_dirty() {
            let ready = urgent || last_draw.is_none_or(|t| now.duration_since(t) >= frame_gap);
            if ready {
                app.take_dirty();
                urgent = false;
                if let Err(e) = draw(term, &app) {
                    // While stopping (e.g. after SIGHUP closed the terminal) a failed draw is no reason
                    // to abandon the trainer's clean shutdown.
                    if app.shutting_down().is_none() {
                        return Err(e);
                    }
                }
                last_draw = Some(Instant::now());
            }
        }
        app.expire_status(now);
        app.handle_tick(now);
        app.handle_steer_tick(now);
        app.handle_writer_tick(now);
        app.handle_clock_tick(now);
        let mut wake: Option<Instant> = app.status_deadline();
        if let Some(w) = app.writer_deadline() {
            wake = Some(wake.map_or(w, |x| x.min(w)));
        }
        if let Some(s) = app.steer_deadline() {
            wake = Some(wake.map_or(s, |w| w.min(s)));
        }
        if let Some(p) = app.play_deadline() {
            wake = Some(wake.map_or(p, |w| w.min(p)));
        }
        if app.is_dirty() {
            let at = last_draw.map_or(now, |t| t + frame_gap);
            wake = Some(wake.map_or(at, |w| w.min(at)));
        }
        let tick = match wake {
            Some(at) => after(at.saturating_duration_since(Instant::now())),
            None => never(),
        };
        // Wait for the first event…
        select! {
            recv(keys) -> k => match k {
                Ok(ev) => pending.push(ev),
                Err(_) => keys = never(),
            },
            recv(events) -> e => match e {
                Ok(ev) => pending.push(AppEvent::Trainer(ev)),
                Err(_) => {
                    events = never();
                    pending.push(AppEvent::Disconnected);
                }
            },
            recv(signals) -> s => match s {
                Ok(sig) => pending.push(AppEvent::Signal(sig)),
                Err(_) => signals = never(),
            },
            recv(logs) -> l => match l {
                Ok(ev) => pending.push(ev),
                Err(_) => logs = never(),
            },
            recv(tick) -> _ => {},
        }
        // …then drain everything already waiting (bounded, so that keys stay responsive: at most a few pieces of
        // a log a round, each bounded by `logfile::POLL_BYTES`).
        let mut log_pieces = 0;
        for _ in 0..10_000 {
            let mut got = false;
            if let Ok(ev) = signals.try_recv() {
                pending.push(AppEvent::Signal(ev));
                got = true;
            }
            if let Ok(ev) = keys.try_recv() {
                pending.push(ev);
                got = true;
            }
            if log_pieces < 8 {
                if let Ok(ev) = logs.try_recv() {
                    log_pieces += matches!(ev, AppEvent::Log(_, crate::logfile::Followed::Records(_))) as usize;
                    pending.push(ev);
                    got = true;
                }
            }
            match events.try_recv() {
                Ok(ev) => {
                    pending.push(AppEvent::Trainer(ev));
                    got = true;
                }
                Err(crossbeam_channel::TryRecvError::Disconnected) => {
                    events = never();
                    pending.push(AppEvent::Disconnected);
                    got = true;
                }
                Err(crossbeam_channel::TryRecvError::Empty) => {}
            }
            if !got {
                break;
            }
        }
        // Keys and signals first, so that `q` acts within a frame however much of a log is waiting.
        pending.sort_by_key(|ev| !matches!(ev, AppEvent::Key(_) | AppEvent::Signal(_)));
        app.batch_log(true);
        for ev in pending.drain(..) {
            urgent |= !matches!(ev, AppEvent::Trainer(_) | AppEvent::Log(..));
            for cmd in app.handle_event(ev) {
                // The trainer may already be gone; the UI keeps going either way.
                if let Some(c) = &trainer.commands {
                    let _ = c.send(cmd);
                }
            }
            if app.exit().is_some() {
                break;
            }
        }
        pending.clear();
        app.batch_log(false);
        if let Some(outcome) = app.outcome() {
            return Ok(outcome);
        }
    }
}
