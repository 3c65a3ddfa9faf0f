//! The text front ends over a log: `bnscope replay --headless` (a finished log, streamed: memory stays flat however
//! long the log) and `bnscope watch --headless` (a growing one). One printer, [`Printer::record`], serves both.
use std::collections::VecDeque;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Result;

use super::follow::{skipped_words, Followed, Follower, WATCH_POLL};
use super::ranks::{means_of, spread_lines, spread_of};
use super::read::{reread, stream_file};
use super::schema::{Epoch, Metric, Record, Run, Span};
use crate::protocol::EvalOn;

const MISSING: &str = "not in this log";

fn metric_text(name: &str, m: Option<Metric>) -> String {
    // The live headless run's own formats (`format::line_loss`), so that a replayed line reads like the live one.
    let Some(m) = m else {
        return format!("{name}: {MISSING}");
    };
    let loss = m.loss.map_or("–".to_string(), |x| crate::format::line_loss(x as f32));
    let acc = m.acc.map_or("–".to_string(), |x| format!("{x:.3}"));
    format!("{name}: loss {loss} acc {acc}")
}

/// An epoch as a line, in the live headless format (`val running`/`val batch` for a run evaluated on held-out
/// images, the EMA model's figure where the log has it); what the log lacks says so.
pub fn epoch_line(e: &Epoch, on: EvalOn) -> String {
    let w = on.word();
    let train = match e.train {
        None => format!("train: {MISSING}"),
        Some(m) => metric_text("train", Some(m)).replacen("train: ", "", 1),
    };
    let m = match e.momentum {
        Some(m) => crate::format::momentum_label(m, e.cumulative),
        None if e.cumulative => crate::format::momentum_label(0.0, true),
        None => format!("m {MISSING}"),
    };
    let ema = e
        .eval_ema
        .map_or(String::new(), |m| format!(" | {}", metric_text("ema running", Some(m))));
    let ms = e.step_ms.map_or(String::new(), |v| format!(" | {v:.1} ms/step"));
    format!(
        "epoch {}  {train} | {} | {}{ema} | {m}{ms}",
        e.epoch,
        metric_text(&format!("{w} running"), e.eval_running),
        metric_text(&format!("{w} batch"), e.eval_batch)
    )
}

/// The `run` record as the line before a run's epochs.
pub fn run_line(run: &Run, file: &str) -> String {
    let mut parts = vec![format!("run: {file}"), format!("source {}", run.source)];
    if let Some(m) = &run.model {
        parts.push(m.clone());
    }
    if let Some(f) = &run.framework {
        parts.push(format!("framework {f}"));
    }
    if let (Some(r), Some(w)) = (run.rank, run.world_size) {
        parts.push(format!("rank {r} of {w}"));
    }
    if !run.classes.is_empty() {
        parts.push(format!("classes {}", run.classes.join(", ")));
    }
    parts.push(format!("{} BN layers", run.bn_layers));
    if let Some(from) = &run.resumed_from {
        parts.push(format!("resumed from {from}"));
    }
    if run.eval_on() == EvalOn::Val {
        let n = run.val_images.map_or(String::new(), |n| format!("{n} "));
        parts.push(format!("evaluated on {n}held-out images"));
    }
    parts.join(" · ")
}

/// The lines of one log's records, and what a summary needs (every string in a record is already printable).
pub struct Printer {
    file: String,
    on: EvalOn,
    epochs: u64,
    first_converged: Option<u64>,
    last_running: Option<Option<f64>>,
    /// The newest `bn` records, for the rank spread.
    pub bn: VecDeque<(u64, Span)>,
    /// A watch goes on after an `end` record.
    watching: bool,
    /// The run's class names (an `inspect` record's report names them).
    classes: Vec<String>,
    inspected: bool,
}

/// How many of the newest `bn` records a headless replay keeps (by position) for the rank spread.
const BN_KEPT: usize = 256;

impl Printer {
    pub fn new(file: &str, watching: bool) -> Self {
        Printer {
            file: file.to_string(),
            on: EvalOn::Train,
            epochs: 0,
            first_converged: None,
            last_running: None,
            bn: VecDeque::new(),
            watching,
            classes: Vec::new(),
            inspected: false,
        }
    }

    /// The line a record prints, if any.
    pub fn record(&mut self, rec: &Record) -> Option<String> {
        match rec {
            Record::Run(run) => {
                self.on = run.eval_on();
                self.classes = run.classes.clone();
                Some(run_line(run, &self.file))
            }
            Record::Epoch(e) => {
                self.epochs += 1;
                let acc = e.eval_running.and_then(|m| m.acc);
                if self.first_converged.is_none() && acc.is_some_and(|a| a >= 1.0) {
                    self.first_converged = Some(e.epoch);
                }
                self.last_running = Some(acc);
                Some(epoch_line(e, self.on))
            }
            Record::Event(ev) => {
                let step = ev.step.map_or(String::new(), |s| format!(" (step {s})"));
                let why = ev.reason.as_deref().map_or(String::new(), |r| format!(": {r}"));
                Some(format!("  after epoch {}: {} {}{why}{step}", ev.epoch, ev.what, ev.value).replace("  :", ":"))
            }
            Record::End { epochs, reason } => Some(if self.watching {
                format!("end after {epochs} epochs ({reason}); still following")
            } else {
                format!("end after {epochs} epochs ({reason})")
            }),
            Record::Inspect(super::schema::Inspected { report, .. }) => {
                self.inspected = true;
                let mut r = (**report).clone();
                if r.classes.is_empty() {
                    r.classes = self.classes.clone();
                }
                Some(format!(
                    "inspection (bnscope.inspect):\n{}",
                    crate::inspect::report(&r).trim_end()
                ))
            }
            Record::Bn { epoch, span, .. } => {
                if self.bn.len() == BN_KEPT {
                    self.bn.pop_front();
                }
                self.bn.push_back((*epoch, *span));
                None
            }
        }
    }

    /// The closing lines of a replayed file.
    pub fn summary(&self) -> Vec<String> {
        let w = self.on.word();
        let mut out = vec![match (self.first_converged, self.last_running) {
            (Some(e), _) => format!("{w} with running stats first reached acc 1.000 at epoch {e}"),
            (None, Some(Some(a))) => format!("{w} with running stats never reached acc 1.000 (last {a:.3})"),
            (None, Some(None)) => format!("{w} with running stats: {MISSING}"),
            (None, None) if self.inspected => "an inspection, no epochs".to_string(),
            (None, None) => "no epochs in this log".to_string(),
        }];
        out.push(format!("{} epochs in {}", self.epochs, self.file));
        out
    }
}

/// `bnscope replay --headless FILE…`: each log's runs, epoch by epoch, as it is read, then a summary (and for
/// several files, the rank spread). Exit 0.
pub fn run_headless(files: &[PathBuf]) -> Result<i32> {
    let mut out = std::io::stdout().lock();
    let mut printers = Vec::new();
    for path in files {
        let shown = crate::terminal::printable(&path.display().to_string()).into_owned();
        let mut printer = Printer::new(&shown, false);
        let mut closed = false;
        let reader = stream_file(path, false, |recs| {
            for rec in &recs {
                if let Some(line) = printer.record(rec) {
                    // stdout may be a pipe that closes (`bnscope replay run.jsonl | head`): then stop quietly.
                    if !closed && writeln!(out, "{line}").is_err() {
                        closed = true;
                    }
                }
            }
            Ok(())
        })?;
        if closed {
            return Ok(0);
        }
        let mut lines = printer.summary();
        let last = lines.pop();
        for line in lines {
            if writeln!(out, "{line}").is_err() {
                return Ok(0);
            }
        }
        if reader.bad_lines + reader.unknown + reader.long_lines > 0 {
            eprintln!(
                "bnscope: {shown}: skipped {}",
                skipped_words(reader.bad_lines, reader.unknown, reader.long_lines)
            );
        }
        if let Some(line) = last {
            if writeln!(out, "{line}").is_err() {
                return Ok(0);
            }
        }
        printers.push((path.clone(), printer));
    }
    if printers.len() > 1 {
        for line in spread_lines(newest_common_spread(&printers)) {
            if writeln!(out, "{line}").is_err() {
                return Ok(0);
            }
        }
    }
    Ok(0)
}

/// The rank spread at the newest epoch whose `bn` record every file has (among the newest ones kept), read
/// again from the files.
fn newest_common_spread(printers: &[(PathBuf, Printer)]) -> Option<(u64, Vec<(f64, String)>)> {
    let (_, first) = &printers[0];
    for (epoch, _) in first.bn.iter().rev() {
        let spans: Option<Vec<(&Path, Span)>> = printers
            .iter()
            .map(|(path, p)| {
                p.bn.iter()
                    .rev()
                    .find(|(e, _)| e == epoch)
                    .map(|(_, s)| (path.as_path(), *s))
            })
            .collect();
        let Some(spans) = spans else { continue };
        let maps: Option<Vec<_>> = spans
            .iter()
            .map(|(path, span)| match reread(path, *span)? {
                Record::Bn { layers: Some(l), .. } => Some(means_of(&l)),
                _ => None,
            })
            .collect();
        if let Some(spread) = maps.as_deref().and_then(spread_of) {
            return Some((*epoch, spread));
        }
    }
    None
}

/// `bnscope watch --headless FILE`: follows a growing log like `tail -F` and prints each epoch as it is complete.
/// Waits for a file that does not exist yet, starts over when the file is truncated or replaced (a new run, a
/// rotation), says once why a file cannot be shown and waits for it to be replaced, and keeps following until a
/// signal (exit 128 + n). The first look at a file that is there but cannot be shown is exit 2, as for `replay`.
///
/// `each`: every record as it is read, and `None` when the file starts over (`--csv` writes its rows there).
pub fn watch_headless(
    path: &Path,
    mut each: impl FnMut(Option<&Record>) -> Result<()>,
    stop: impl Fn() -> Option<i32>,
) -> Result<i32> {
    let mut follower = Follower::new(path);
    let shown = follower.shown().to_string();
    let mut out = std::io::stdout().lock();
    let mut printer = Printer::new(&shown, true);
    let mut first = true;
    macro_rules! say {
        ($($arg:tt)*) => {
            if writeln!(out, $($arg)*).and_then(|_| out.flush()).is_err() {
                return Ok(0);
            }
        };
    }
    loop {
        if let Some(sig) = stop() {
            return Ok(crate::signals::exit_status(sig));
        }
        for ev in follower.poll() {
            match ev {
                Followed::Waiting => say!("bnscope watch: waiting for {shown} to appear…"),
                Followed::Following => say!("bnscope watch: following {shown}"),
                Followed::StartingOver { replaced } => {
                    printer = Printer::new(&shown, true);
                    each(None)?;
                    say!(
                        "bnscope watch: {shown} was {}; starting over",
                        if replaced { "replaced" } else { "truncated" }
                    )
                }
                Followed::Skipped {
                    bad_lines,
                    unknown,
                    long_lines,
                } => eprintln!(
                    "bnscope: {shown}: skipped {}",
                    skipped_words(bad_lines, unknown, long_lines)
                ),
                Followed::Progress { .. } => {}
                Followed::Refused(msg) => {
                    if first {
                        return Err(crate::error::usage(msg));
                    }
                    say!("bnscope watch: {msg}; waiting for it to be replaced")
                }
                Followed::Records(records) => {
                    for rec in &records {
                        if let Some(line) = printer.record(rec) {
                            say!("{line}");
                        }
                        each(Some(rec))?;
                    }
                }
            }
        }
        first = false;
        if !follower.behind() {
            std::thread::sleep(WATCH_POLL);
        }
    }
}
