//! The trainer's side of the event channel and its delivery policy: the trainer never blocks on the front end.
//!
//! Every event is delivered, in order, except that while more than `backlog` events wait unread (a stalled
//! terminal) epoch metrics are held back, keeping only the newest, which goes out first when the queue drains or
//! before any other event. Memory stays bounded however long the stall; the JSONL log keeps every epoch anyway.
use anyhow::{anyhow, Result};
use crossbeam_channel::Sender;

use crate::protocol::{EpochMetrics, Event};

pub(crate) struct Outbox {
    tx: Sender<Event>,
    /// Most events left waiting before epoch metrics are held back (`None`: never).
    backlog: Option<usize>,
    held: Option<Box<EpochMetrics>>,
}

impl Outbox {
    pub(crate) fn new(tx: Sender<Event>, backlog: Option<usize>) -> Self {
        Self {
            tx,
            backlog,
            held: None,
        }
    }

    /// Whether the front end is more than `backlog` events behind.
    fn backlogged(&self) -> bool {
        self.backlog.is_some_and(|max| self.tx.len() >= max)
    }

    /// Whether epoch metrics are held back that the front end could take now.
    pub(crate) fn can_flush(&self) -> bool {
        self.held.is_some() && !self.backlogged()
    }

    /// Sends an epoch's metrics, or holds them (replacing older held ones) while the front end is backlogged.
    pub(crate) fn epoch(&mut self, m: Box<EpochMetrics>) -> Result<()> {
        if self.backlogged() {
            self.held = Some(m);
            return Ok(());
        }
        self.flush()?;
        self.raw(Event::Epoch(m))
    }

    /// Delivers held epoch metrics, if any.
    pub(crate) fn flush(&mut self) -> Result<()> {
        match self.held.take() {
            Some(m) => self.raw(Event::Epoch(m)),
            None => Ok(()),
        }
    }

    /// Sends any other event, after the held epoch metrics so that the front end sees everything in order.
    pub(crate) fn send(&mut self, ev: Event) -> Result<()> {
        self.flush()?;
        self.raw(ev)
    }

    /// Sends without flushing; a dropped receiver ends the trainer (reported as a quit).
    fn raw(&self, ev: Event) -> Result<()> {
        self.tx.send(ev).map_err(|_| anyhow!(ReceiverGone))
    }
}

/// The front end went away.
#[derive(Debug)]
pub struct ReceiverGone;

impl std::fmt::Display for ReceiverGone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the front end stopped listening")
    }
}

impl std::error::Error for ReceiverGone {}
