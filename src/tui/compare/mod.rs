//! The compare view (`bnscope compare A.jsonl B.jsonl …`, and `replay`/`watch` of logs that are not ranks of one
//! run): the runs' accuracy and loss overlaid, their layers side by side, one epoch cursor for all. The state
//! ([`CompareView`]) changes only in `handle_*`; `render/compare*.rs` draw it; the loop here feeds it keys,
//! signals and what the followers read (the same follower threads as `run_log`).
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;

use anyhow::{anyhow, Context};
use crossbeam_channel::{never, select, unbounded, Receiver};
use crossterm::event::{KeyEvent, KeyEventKind};

use super::app::AppEvent;
use super::theme::Theme;
use crate::compare::{Point, Series};
use crate::logfile::{Followed, Follower};
use crate::outcome::Outcome;
use crate::protocol::EndReason;

pub mod keys;

use keys::Act;

pub use crate::compare::LayerGaps;

/// The compare view's state.
pub struct CompareView {
    pub theme: Theme,
    pub series: Vec<Series>,
    /// The run picker: which runs the charts and the layers panel draw.
    pub shown: Vec<bool>,
    /// The epoch under the cursor; `None` follows the newest.
    pub cursor: Option<u64>,
    /// Per run its layers at the cursor's epoch (read again from its file when the cursor or the run moves).
    pub layers: Vec<Option<LayerGaps>>,
    /// Which `bn` record `layers` was read from, per run.
    layers_from: Vec<Option<(u64, crate::logfile::Span)>>,
    /// The first layer row shown.
    pub layer_offset: usize,
    pub help: bool,
    /// Following growing files (`watch`).
    pub watching: bool,
    /// A file a follower refused (not a log, replaced by something else), by run.
    pub refused: Vec<Option<String>>,
    /// The terminal's size (what `x` renders the screen at).
    pub size: (u16, u16),
    /// A line for the footer until the next key (what `x` wrote, or why it could not).
    pub status: Option<String>,
    dirty: bool,
    outcome: Option<Outcome>,
}

impl CompareView {
    /// A view of `files` (printable names) read from `paths`.
    pub fn new(files: Vec<(String, Option<PathBuf>)>, theme: Theme, watching: bool) -> Self {
        let n = files.len();
        CompareView {
            theme,
            series: files.into_iter().map(|(f, p)| Series::new(f, p)).collect(),
            shown: vec![true; n],
            cursor: None,
            layers: vec![None; n],
            layers_from: vec![None; n],
            layer_offset: 0,
            help: false,
            watching,
            refused: vec![None; n],
            size: (80, 24),
            status: None,
            dirty: true,
            outcome: None,
        }
    }

    /// A view over series already read (tests, and the first look before the screen opens).
    pub fn from_series(series: Vec<Series>, theme: Theme, watching: bool) -> Self {
        let mut v = CompareView::new(Vec::new(), theme, watching);
        let n = series.len();
        v.series = series;
        v.shown = vec![true; n];
        v.layers = vec![None; n];
        v.layers_from = vec![None; n];
        v.refused = vec![None; n];
        v.refresh_layers();
        v
    }

    /// The newest epoch of any run.
    pub fn newest(&self) -> u64 {
        self.series
            .iter()
            .filter_map(|s| s.last.as_ref().map(|p| p.epoch))
            .max()
            .unwrap_or(0)
    }

    /// The epoch under the cursor.
    pub fn epoch(&self) -> u64 {
        self.cursor.unwrap_or_else(|| self.newest())
    }

    /// Run `i`'s epoch under the cursor (its newest kept epoch at or before it).
    pub fn point(&self, i: usize) -> Option<&Point> {
        self.series.get(i)?.at(self.epoch())
    }

    /// Every kept epoch of the shown runs, in order: the cursor's steps.
    fn axis(&self) -> Vec<u64> {
        let mut e: Vec<u64> = self
            .series
            .iter()
            .zip(&self.shown)
            .filter(|(_, s)| **s)
            .flat_map(|(s, _)| s.epochs().map(|p| p.epoch))
            .collect();
        e.sort_unstable();
        e.dedup();
        e
    }

    pub fn is_dirty(&self) -> bool {
        self.dirty
    }

    pub fn take_dirty(&mut self) {
        self.dirty = false;
    }

    /// How the view ended (quit or signal), once it has.
    pub fn outcome(&self) -> Option<Outcome> {
        self.outcome.clone()
    }

    /// Any event: a key, a resize, a signal, a follower's finding.
    pub fn handle_event(&mut self, ev: AppEvent) {
        match ev {
            AppEvent::Key(k) => self.handle_key(k),
            AppEvent::Resize(w, h) => {
                self.size = (w, h);
                self.dirty = true;
            }
            AppEvent::Signal(sig) => {
                let mut o = Outcome::new(EndReason::Signal);
                o.signal = Some(sig);
                self.outcome = Some(o);
            }
            AppEvent::Log(file, found) => self.handle_log(file, found),
            AppEvent::LogError(file, msg) => {
                if let Some(r) = self.refused.get_mut(file) {
                    *r = Some(msg);
                    self.dirty = true;
                }
            }
            AppEvent::Mouse(_) | AppEvent::Trainer(_) | AppEvent::Disconnected => {}
        }
    }

    /// What a follower found in file `file`.
    pub fn handle_log(&mut self, file: usize, found: Followed) {
        let Some(s) = self.series.get_mut(file) else {
            return;
        };
        match found {
            Followed::Records(recs) => {
                s.take(recs);
                self.refused[file] = None;
            }
            Followed::Refused(msg) => self.refused[file] = Some(msg),
            _ => return,
        }
        self.refresh_layers();
        self.dirty = true;
    }

    /// One key, through the table.
    pub fn handle_key(&mut self, k: KeyEvent) {
        if k.kind == KeyEventKind::Release {
            return;
        }
        self.dirty = true;
        self.status = None;
        if self.help {
            self.help = false;
            if keys::lookup(&k).is_none_or(|b| b.act != Act::Quit) {
                return;
            }
        }
        let Some(b) = keys::lookup(&k) else {
            return;
        };
        let axis = self.axis();
        let at = axis.partition_point(|e| *e < self.epoch());
        let step = |by: isize| -> Option<u64> {
            let i = (at as isize + by).clamp(0, axis.len().saturating_sub(1) as isize) as usize;
            axis.get(i).copied()
        };
        match b.act {
            Act::EpochBack => self.cursor = step(-1).or(self.cursor),
            Act::EpochOn => self.cursor = step(1).or(self.cursor),
            Act::EpochBack10 => self.cursor = step(-10).or(self.cursor),
            Act::EpochOn10 => self.cursor = step(10).or(self.cursor),
            Act::First => self.cursor = axis.first().copied().or(self.cursor),
            Act::Last => self.cursor = None,
            Act::Toggle(i) if i < self.series.len() => {
                self.shown[i] = !self.shown[i];
                if !self.shown.iter().any(|s| *s) {
                    // Hiding the last run shows them all again: an empty screen helps nobody.
                    self.shown.iter_mut().for_each(|s| *s = true);
                }
            }
            Act::Toggle(_) => {}
            Act::LayersUp => self.layer_offset = self.layer_offset.saturating_sub(1),
            Act::LayersDown => {
                let rows = self.layers.iter().flatten().map(Vec::len).max().unwrap_or(0);
                self.layer_offset = (self.layer_offset + 1).min(rows.saturating_sub(1));
            }
            Act::Export => self.export(),
            Act::Help => self.help = true,
            Act::Quit => self.outcome = Some(Outcome::new(EndReason::Quit)),
        }
        // Stepping onto the newest epoch of a watch follows it again.
        if self.watching && self.cursor == Some(self.newest()) {
            self.cursor = None;
        }
        self.refresh_layers();
    }

    /// `x`: the screen as text and the overlay charts as SVG, into the current directory under names that never
    /// overwrite (as the run view's `x`); the footer says where.
    fn export(&mut self) {
        let area = ratatui::layout::Rect::new(0, 0, self.size.0, self.size.1);
        let mut buf = ratatui::buffer::Buffer::empty(area);
        ratatui::widgets::Widget::render(&*self, area, &mut buf);
        let svg = crate::tui::render::svg::to_svg(
            "bnscope compare: evaluation with the running statistics per run (momentum in the Keras convention)",
            &crate::tui::render::svg::compare_charts(self),
        );
        let text = crate::tui::snapshot::buffer_text(&buf);
        self.status = Some(crate::tui::snapshot::export_here(&text, &svg).unwrap_or_else(|e| e));
    }

    /// Reads each run's layers at the cursor again where the cursor's `bn` record changed.
    fn refresh_layers(&mut self) {
        let epoch = self.epoch();
        for i in 0..self.series.len() {
            let key = self.series[i].at(epoch).and_then(|p| Some((p.epoch, p.bn?)));
            if key == self.layers_from[i] {
                continue;
            }
            self.layers_from[i] = key;
            self.layers[i] = match self.series[i].at(epoch) {
                Some(p) if key.is_some() => crate::compare::layers_at(&self.series[i], p),
                _ => None,
            };
        }
    }
}

/// What the compare view reads: each file's follower (a replay's read to the end and stop).
pub struct CompareSource {
    pub view: CompareView,
    pub followers: Vec<Follower>,
    pub once: bool,
}

/// The compare view in the terminal until `q` or a signal; always restores the terminal. (How it looks, `--ascii`
/// and `NO_COLOR`, is in the view's theme.)
pub fn run(source: CompareSource, signals: Receiver<i32>) -> anyhow::Result<Outcome> {
    let handle = thread::Builder::new()
        .name(super::UI_THREAD.into())
        .spawn(move || -> anyhow::Result<Outcome> {
            // The view has no use for the mouse (`--no-mouse` or not): the terminal's own selection keeps working.
            let mut term = super::init_terminal(false)?;
            let mut view = source.view;
            if let Ok(size) = term.size() {
                view.size = (size.width, size.height);
            }
            let (key_tx, key_rx) = unbounded();
            let stop = Arc::new(AtomicBool::new(false));
            let (_stop_followers, stop_rx) = crossbeam_channel::bounded::<()>(0);
            let (log_tx, log_rx) = crossbeam_channel::bounded(16);
            let mut started = super::spawn_input_reader(key_tx, stop.clone()).context("starting the key reader");
            for (i, f) in source.followers.into_iter().enumerate() {
                if started.is_ok() {
                    started = super::spawn_follower(i, f, source.once, log_tx.clone(), stop_rx.clone())
                        .context("starting a log reader");
                }
            }
            drop(log_tx);
            let result = started.and_then(|()| event_loop(&mut term, view, key_rx, log_rx, signals));
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

fn event_loop(
    term: &mut super::Term,
    mut view: CompareView,
    mut keys: Receiver<AppEvent>,
    mut logs: Receiver<AppEvent>,
    mut signals: Receiver<i32>,
) -> anyhow::Result<Outcome> {
    loop {
        if view.is_dirty() {
            view.take_dirty();
            draw(term, &view)?;
        }
        let ev = select! {
            recv(keys) -> k => match k { Ok(ev) => Some(ev), Err(_) => { keys = never(); None } },
            recv(signals) -> s => match s { Ok(sig) => Some(AppEvent::Signal(sig)), Err(_) => { signals = never(); None } },
            recv(logs) -> l => match l { Ok(ev) => Some(ev), Err(_) => { logs = never(); None } },
        };
        if let Some(ev) = ev {
            view.handle_event(ev);
        }
        // Drain what is already waiting (a few log pieces at most), so that one draw covers it.
        for _ in 0..8 {
            match logs.try_recv() {
                Ok(ev) => view.handle_event(ev),
                Err(_) => break,
            }
        }
        while let Ok(ev) = keys.try_recv() {
            view.handle_event(ev);
        }
        if let Some(o) = view.outcome() {
            return Ok(o);
        }
    }
}

fn draw(term: &mut super::Term, view: &CompareView) -> anyhow::Result<()> {
    use std::io::Write;
    let out = term.backend_mut().inner_mut();
    let _ = crossterm::queue!(out, crossterm::terminal::BeginSynchronizedUpdate);
    term.draw(|f| f.render_widget(view, f.area())).context("drawing")?;
    let out = term.backend_mut().inner_mut();
    let _ = crossterm::queue!(out, crossterm::terminal::EndSynchronizedUpdate);
    out.flush().context("flushing the terminal")?;
    Ok(())
}
