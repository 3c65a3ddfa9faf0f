//! The trainer thread (`bnscope-trainer`): applies commands between steps, keeps the pace, reports epochs and
//! snapshots through the [`Outbox`], and turns errors and panics into events.
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use crossbeam_channel::{Receiver, RecvTimeoutError, TryRecvError};
use serde_json::json;

use super::outbox::{Outbox, ReceiverGone};
use super::{divergence, StepOutcome, Trainer};
use crate::protocol::*;

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".into()
    }
}

pub(super) fn main(mut t: Trainer, rx: Receiver<Command>, mut out: Outbox, slot: BnSlot) {
    let mut inbox = Inbox::new(&rx);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        run_loop(&mut t, &mut inbox, &mut out, &slot)
    }));
    let (reason, message) = match result {
        Ok(Ok(reason)) => (reason, None),
        Ok(Err(e)) if e.downcast_ref::<ReceiverGone>().is_some() => (EndReason::Quit, None),
        Ok(Err(e)) => (EndReason::Error, Some(format!("{e:#}"))),
        Err(p) => (
            EndReason::Error,
            Some(format!("trainer panicked: {}", panic_message(&*p))),
        ),
    };
    if let Some(msg) = &message {
        let _ = out.send(Event::Error(msg.clone()));
        // An error leaves the front end in charge: wait for its quit so that the message stays visible.
        if reason == EndReason::Error {
            wait_for_quit(&mut inbox);
        }
    } else {
        let _ = out.flush();
    }
    // Files the user asked for: a failure fails the run (see `not_saved`).
    let (checkpoint, reason, message) = match t.save_checkpoint() {
        Ok(c) => (c, reason, message),
        Err(e) => {
            let (reason, message) = not_saved(&e, reason, message, &mut out);
            (None, reason, message)
        }
    };
    // The same for --save-weights: written whatever the reason, unless it holds NaN/Inf.
    let (reason, message) = match t.save_weights() {
        Ok(None) => (reason, message),
        Ok(Some(path)) => {
            if let Some(log) = t.log.as_mut() {
                let _ = log.event(t.epoch, EventKind::SaveWeights, json!(path));
            }
            let _ = out.send(Event::Applied {
                epoch: t.epoch,
                what: EventKind::SaveWeights,
                value: path,
            });
            (reason, message)
        }
        Err(e) => not_saved(&e, reason, message, &mut out),
    };
    if let Some(log) = t.log.as_mut() {
        let _ = log.end(t.epoch, reason, message.as_deref());
    }
    let _ = out.send(Event::Finished {
        epochs: t.epoch,
        reason,
        checkpoint,
    });
}

/// A file the user asked for (checkpoint, weights) could not be written: that fails the run (exit status 1, `end`
/// reason `error`). A signal stays the reason, and so does a divergence whose NaN weights were deliberately not
/// written. Returns the reason and the message for the `end` record.
fn not_saved(
    e: &anyhow::Error,
    reason: EndReason,
    message: Option<String>,
    out: &mut Outbox,
) -> (EndReason, Option<String>) {
    let msg = format!("{e:#}");
    let _ = out.send(Event::Error(msg.clone()));
    let kept = reason == EndReason::Signal
        || (reason == EndReason::Diverged && e.downcast_ref::<crate::error::NotWritten>().is_some());
    let reason = if kept { reason } else { EndReason::Error };
    (reason, Some(message.map_or(msg.clone(), |m| format!("{m}; {msg}"))))
}

fn wait_for_quit(inbox: &mut Inbox) {
    // A quit already taken from the channel counts.
    if inbox.queued.drain(..).any(|c| matches!(c, Command::Quit(_))) || inbox.gone {
        return;
    }
    loop {
        match inbox.rx.recv() {
            Ok(Command::Quit(_)) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

/// Softmax of one row of logits, as the evaluations' predictions are (the inspection keeps plain rows, not tensors:
/// `model::softmax_rows` would need them copied back to the device).
fn softmax(row: &[f32]) -> Vec<f32> {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let e: Vec<f32> = row.iter().map(|v| (v - max).exp()).collect();
    let sum: f32 = e.iter().sum();
    e.into_iter().map(|v| v / sum).collect()
}

/// A quit (or the front end gone) taken from the inbox during a slow phase.
#[derive(Debug)]
struct Interrupted(EndReason);

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "interrupted ({})", self.0.as_str())
    }
}

impl std::error::Error for Interrupted {}

/// How often a slow phase reports its progress (the TUI draws at most `--fps` times a second anyway).
const PROGRESS_EVERY: Duration = Duration::from_millis(100);

/// Runs the set-up still due (the pre-training phase) with progress events, looking for a `Quit` after every
/// batch: `Some(reason)` when one came (the phase stops there, and so does the run).
fn prepare(t: &mut Trainer, inbox: &mut Inbox, out: &mut Outbox) -> Result<Option<EndReason>> {
    let what = match t.cfg.pretrain {
        Some(p) => format!("pre-training the backbone on x·{} + {}", p.scale, p.shift),
        None => return Ok(None),
    };
    let mut last: Option<Instant> = None;
    let mut report = |done: usize, total: usize, fraction: f64| -> Result<()> {
        inbox.take_waiting();
        if let Some(Command::Quit(r)) = inbox.queued.iter().find(|c| matches!(c, Command::Quit(_))) {
            return Err(Interrupted(*r).into());
        }
        if inbox.gone {
            return Err(Interrupted(EndReason::Quit).into());
        }
        if last.is_none_or(|l| l.elapsed() >= PROGRESS_EVERY) || done >= total {
            last = Some(Instant::now());
            out.send(Event::Progress(Progress {
                what: what.clone(),
                unit: "epoch",
                done,
                total,
                fraction,
            }))?;
        }
        Ok(())
    };
    match t.prepare(&mut report) {
        Ok(()) => Ok(None),
        Err(e) => match e.downcast_ref::<Interrupted>() {
            Some(Interrupted(r)) => Ok(Some(*r)),
            None => Err(e),
        },
    }
}

/// Imported weights are looked at on the data before the first step (the TUI's and the headless run's epoch 0).
/// The layer gauges then compare the imported running statistics with the data's.
fn send_inspection(t: &mut Trainer, out: &mut Outbox, slot: &BnSlot) -> Result<()> {
    if t.cfg.weights.is_some() && t.epoch == 0 {
        out.send(Event::Progress(Progress {
            what: "inspecting the imported weights on the data (three evaluations)".into(),
            unit: "step",
            done: 0,
            total: 1,
            fraction: 0.0,
        }))?;
        let (r, snap) = t.inspect_with_snapshot()?;
        // Epoch 0's figures for every panel (the charts' rows, the predictions), from the same evaluations.
        let probs = |logits: &[Vec<f32>]| -> Vec<Vec<f32>> {
            logits.iter().take(MAX_PREDICTIONS).map(|row| softmax(row)).collect()
        };
        let refresh = Refresh {
            epoch: 0,
            age: r.age,
            eval_running: Metric {
                loss: r.eval_running.loss,
                acc: r.eval_running.acc,
            },
            eval_batch: Metric {
                loss: r.eval_batch.loss,
                acc: r.eval_batch.acc,
            },
            predictions_running: probs(&r.eval_running.logits),
            predictions_batch: probs(&r.eval_batch.logits),
            eval_ema: None,
        };
        out.send(Event::Inspected(Arc::new(r)))?;
        out.send(Event::Refreshed(Box::new(refresh)))?;
        publish_bn(out, slot, Arc::new(snap))?;
    }
    Ok(())
}

/// The trainer's loop. Returns why it ended.
fn run_loop(t: &mut Trainer, inbox: &mut Inbox, out: &mut Outbox, slot: &BnSlot) -> Result<EndReason> {
    let info = t.info();
    if let Some(log) = t.log.as_mut() {
        log.run(&info)?;
    }
    out.send(Event::Started(Arc::new(info)))?;
    // Paused from the start (`--paused`): said before the slow phases, so the screen says so during them.
    if t.paused {
        out.send(Event::Applied {
            epoch: t.epoch,
            what: EventKind::Pause,
            value: String::new(),
        })?;
    }
    if let Some(reason) = prepare(t, inbox, out)? {
        return Ok(reason);
    }
    send_inspection(t, out, slot)?;
    loop {
        // Apply every pending command before the next step.
        loop {
            // Done: apply what is pending, then finish at once (no waiting).
            let done = t.done();
            let idle = t.paused && t.pending_steps == 0 && !done;
            let pace_wait = if idle || done { None } else { t.pace_deadline() };
            let cmd = if idle || pace_wait.is_some() {
                // Idle, or waiting for the pace: wait for a command, but wake up now and then to notice a dropped
                // receiver (and, at a pace, when the next epoch is due).
                let until = pace_wait.unwrap_or_else(|| Instant::now() + Duration::from_millis(500));
                match inbox.next(Some(until)) {
                    Ok(Some(c)) => c,
                    Ok(None) => continue,
                    Err(Gone) => return Ok(EndReason::Quit),
                }
            } else {
                match inbox.next(None) {
                    Ok(Some(c)) => c,
                    Ok(None) => break,
                    Err(Gone) => return Ok(EndReason::Quit),
                }
            };
            if let Command::Quit(reason) = cmd {
                return Ok(reason);
            }
            let was_restart = cmd == Command::Restart;
            if let Some((what, value)) = t.apply(&cmd)? {
                out.send(Event::Applied {
                    epoch: t.epoch,
                    what,
                    value,
                })?;
            }
            if was_restart {
                let info = t.info();
                if let Some(log) = t.log.as_mut() {
                    log.run(&info)?;
                }
                out.send(Event::Started(Arc::new(info)))?;
                if let Some(reason) = prepare(t, inbox, out)? {
                    return Ok(reason);
                }
                send_inspection(t, out, slot)?;
            }
            if matches!(cmd, Command::ResetStats | Command::Recalibrate | Command::Restart) {
                // Let every panel move at once, even while paused: the evaluations and the gauges.
                out.send(Event::Refreshed(Box::new(t.refresh()?)))?;
                publish_bn(out, slot, Arc::new(t.snapshot()?))?;
            }
        }
        if out.can_flush() {
            out.flush()?;
        }
        if t.done() {
            return Ok(EndReason::Done);
        }
        let single = t.paused;
        if t.cur.position == 0 {
            t.epoch_started = Some(Instant::now());
        }
        let outcome = t.step()?;
        for w in t.take_warnings() {
            if let Some(log) = t.log.as_mut() {
                log.event(w.epoch, w.what, json!(w.value))?;
            }
            out.send(Event::Warning {
                epoch: w.epoch,
                what: w.what,
                text: w.text,
            })?;
        }
        if single {
            t.pending_steps = t.pending_steps.saturating_sub(1);
        }
        if let StepOutcome::Epoch(metrics, snap) = outcome {
            let (epoch, loss) = (metrics.epoch, metrics.train.loss);
            // Checked after every epoch, single steps included: the training loss, both evaluations and the
            // running statistics.
            let why = divergence(&metrics, &snap, t.data.classes.len());
            out.epoch(metrics)?;
            publish_bn(out, slot, snap)?;
            if let Some(what) = why {
                t.paused = true;
                t.pending_steps = 0;
                if let Some(log) = t.log.as_mut() {
                    log.event(epoch, EventKind::Diverged, json!({ "loss": loss, "what": what }))?;
                }
                out.send(Event::Diverged { epoch, loss, what })?;
            } else if t.cfg.pause_after == Some(epoch) && !t.paused {
                // The opening: stop at the seed's moment so that the screen can be read.
                t.paused = true;
                t.pending_steps = 0;
                if let Some(log) = t.log.as_mut() {
                    log.event(epoch, EventKind::PauseAt, serde_json::Value::Null)?;
                }
                out.send(Event::Applied {
                    epoch,
                    what: EventKind::PauseAt,
                    value: String::new(),
                })?;
            }
        }
    }
}

/// The front end dropped its command sender.
struct Gone;

/// The command channel as the trainer reads it: whatever is waiting is taken at once, and when a `Quit` is among
/// it, the slow commands queued before it (recalibrations, single steps) are dropped, so that holding `c` and then
/// pressing `q` quits at the next step boundary instead of after every recalibration.
struct Inbox<'a> {
    rx: &'a Receiver<Command>,
    queued: VecDeque<Command>,
    gone: bool,
}

impl<'a> Inbox<'a> {
    fn new(rx: &'a Receiver<Command>) -> Self {
        Inbox {
            rx,
            queued: VecDeque::new(),
            gone: false,
        }
    }

    fn take_waiting(&mut self) {
        loop {
            match self.rx.try_recv() {
                Ok(c) => self.queued.push_back(c),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    self.gone = true;
                    break;
                }
            }
        }
        if self.queued.iter().any(|c| matches!(c, Command::Quit(_))) {
            self.queued
                .retain(|c| !matches!(c, Command::Recalibrate | Command::Step));
        }
    }

    /// The next command: now (`until` = `None`) or waiting until `until`. `Ok(None)`: nothing came.
    fn next(&mut self, until: Option<Instant>) -> std::result::Result<Option<Command>, Gone> {
        self.take_waiting();
        if self.queued.is_empty() && !self.gone {
            if let Some(until) = until {
                match self.rx.recv_deadline(until) {
                    Ok(c) => {
                        self.queued.push_back(c);
                        self.take_waiting();
                    }
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => self.gone = true,
                }
            }
        }
        match self.queued.pop_front() {
            Some(c) => Ok(Some(c)),
            None if self.gone => Err(Gone),
            None => Ok(None),
        }
    }
}

/// Puts a snapshot in the newest-wins slot; `BnReady` only when the slot was empty.
fn publish_bn(out: &mut Outbox, slot: &BnSlot, snap: Arc<BnSnapshot>) -> Result<()> {
    if slot.put(snap) {
        out.send(Event::BnReady)?;
    }
    Ok(())
}
