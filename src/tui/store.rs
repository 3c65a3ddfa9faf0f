//! The trainer's data as the UI has received it: run info, the newest epoch, the bounded history, the newest
//! BatchNorm snapshot, and how the trainer's life is going. It changes only by [`Store::ingest`] (and the key
//! marks the app puts on the time axis); the view state (selection, eval mode, help, status line) lives in
//! [`super::App`].
use std::collections::VecDeque;
use std::sync::Arc;

use crate::protocol::{BnSlot, BnSnapshot, EndReason, EpochMetrics, Event, Metric, RunInfo};

/// How many epochs the history keeps.
pub const HISTORY_CAP: usize = 1000;

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

    pub(crate) fn push(&mut self, p: Point) {
        if self.points.len() == HISTORY_CAP {
            self.points.pop_front();
            self.first += 1;
            while self.marks.front().is_some_and(|m| m.index < self.first) {
                self.marks.pop_front();
            }
        }
        self.points.push_back(p);
    }

    pub(crate) fn mark(&mut self, symbol: char) {
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

/// The run's facts with every name made safe to draw: a class folder named `$'\e[31mred'` shows as `\x1b[31mred`.
fn printable_info(info: Arc<RunInfo>) -> Arc<RunInfo> {
    use crate::terminal::printable;
    let bad = |s: &String| printable(s).len() != s.len();
    if !(info.classes.iter().any(bad) || info.images.iter().any(bad) || bad(&info.data)) {
        return info;
    }
    let mut i = (*info).clone();
    for s in i
        .classes
        .iter_mut()
        .chain(i.images.iter_mut())
        .chain(std::iter::once(&mut i.data))
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
    pub latest: Option<Box<EpochMetrics>>,
    pub history: History,
    pub bn: Option<Arc<BnSnapshot>>,
    pub phase: Phase,
    /// `(epoch, loss)` of a divergence since the last (re)start.
    pub diverged: Option<(usize, f32)>,
    /// The trainer's first error (the cause; shown on screen).
    pub error: Option<String>,
    /// Every error the trainer reported, in order (printed on stderr once the terminal is restored).
    pub errors: Vec<String>,
    /// The event channel closed.
    pub disconnected: bool,
}

impl Store {
    /// An empty store; `bn` is the slot `Event::BnReady` refers to.
    pub fn new(bn: BnSlot) -> Self {
        Store {
            bn_slot: bn,
            info: None,
            latest: None,
            history: History::default(),
            bn: None,
            phase: Phase::Starting,
            diverged: None,
            error: None,
            errors: Vec::new(),
            disconnected: false,
        }
    }

    /// Takes in one trainer event.
    pub fn ingest(&mut self, ev: Event) {
        match ev {
            Event::Started(info) => {
                let info = printable_info(info);
                if self.info.is_some() {
                    // A restart: keep the history (the 'R' mark shows the cut), drop stale stats.
                    self.bn = None;
                    self.diverged = None;
                }
                self.info = Some(info);
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
                if self.phase == Phase::Starting {
                    self.phase = Phase::Running;
                }
                self.latest = Some(m);
            }
            Event::BnReady => {
                if let Some(snap) = self.bn_slot.take() {
                    self.bn = Some(snap);
                }
            }
            Event::Applied { .. } => {}
            Event::Diverged { epoch, loss } => {
                self.diverged = Some((epoch, loss));
                self.history.mark('!');
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

    /// True while a trainer is there to take commands.
    pub fn trainer_alive(&self) -> bool {
        !self.disconnected && !self.finished()
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

    /// Updates since the last reset, as of the newest epoch.
    pub fn t(&self) -> u64 {
        self.latest.as_ref().map_or(0, |m| m.t)
    }
}
