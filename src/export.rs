//! `--csv FILE`: the per-epoch table of one or more logs, one row an epoch and run (and rank), every figure an
//! `epoch` record has (docs/LOG_FORMAT.md), with the units and conventions in the column names.
//!
//! [`Table`] takes [`Row`]s, whoever makes them (`replay`, `watch`, and later `compare`), and writes them with the
//! `csv` crate (its quoting, not ours). The file is an output: [`Table::create`] refuses an existing file (also a
//! dangling symlink) and every input, by inode and through links ([`files::same_file`]), before anything is
//! written, and opens it with `O_EXCL` so that nothing appearing in between is written over either.
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::error::usage;
use crate::files;
use crate::logfile::{Epoch, Metric, Record, Run};

/// The columns, in order. `momentum_keras`: every log's momentum is in the Keras convention (running =
/// m·running + (1−m)·batch; PyTorch's 0.1 is 0.9 here). `eval_on` says what the two evaluations are measured on
/// (`train` images or held-out `val` ones). An empty cell: not in this log; `NaN`: the writer logged a
/// non-finite number (`null`).
pub const HEADER: &[&str] = &[
    "file",
    "run",
    "rank",
    "eval_on",
    "epoch",
    "step",
    "momentum_keras",
    "cumulative",
    "t_updates",
    "init_weight",
    "train_loss",
    "train_acc",
    "eval_running_loss",
    "eval_running_acc",
    "eval_batch_loss",
    "eval_batch_acc",
    "eval_ema_loss",
    "eval_ema_acc",
    "step_ms",
];

/// One row: an epoch of one run of one file.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// The log, as given (printable).
    pub file: String,
    /// Which run of the file, from 1 (a later `run` record starts a new one).
    pub run: u64,
    pub rank: Option<u64>,
    /// `train` or `val`.
    pub eval_on: &'static str,
    pub epoch: Epoch,
}

fn num(x: Option<f64>) -> String {
    // Rust's `Display` for f64 is the shortest text that reads back to the same number.
    x.map_or(String::new(), |v| v.to_string())
}

fn uint(x: Option<u64>) -> String {
    x.map_or(String::new(), |v| v.to_string())
}

fn pair(m: Option<Metric>) -> [String; 2] {
    [num(m.and_then(|m| m.loss)), num(m.and_then(|m| m.acc))]
}

impl Row {
    /// The cells, in [`HEADER`]'s order.
    pub fn cells(&self) -> Vec<String> {
        let e = &self.epoch;
        let [tl, ta] = pair(e.train);
        let [rl, ra] = pair(e.eval_running);
        let [bl, ba] = pair(e.eval_batch);
        let [el, ea] = pair(e.eval_ema);
        vec![
            self.file.clone(),
            self.run.to_string(),
            uint(self.rank),
            self.eval_on.to_string(),
            e.epoch.to_string(),
            uint(e.step),
            num(e.momentum),
            e.cumulative.to_string(),
            uint(e.t),
            num(e.init_weight),
            tl,
            ta,
            rl,
            ra,
            bl,
            ba,
            el,
            ea,
            num(e.step_ms),
        ]
    }
}

/// Turns one file's records into rows as they are read (the run they belong to is the last `run` record).
pub struct Rows {
    file: String,
    run: u64,
    rank: Option<u64>,
    eval_on: &'static str,
}

impl Rows {
    pub fn new(file: &str) -> Self {
        Rows {
            file: file.to_string(),
            run: 0,
            rank: None,
            eval_on: "train",
        }
    }

    /// The row of an `epoch` record; a `run` record starts the next run.
    pub fn record(&mut self, rec: &Record) -> Option<Row> {
        match rec {
            Record::Run(run) => {
                self.start(run);
                None
            }
            Record::Epoch(e) => Some(Row {
                file: self.file.clone(),
                run: self.run.max(1),
                rank: self.rank,
                eval_on: self.eval_on,
                epoch: e.clone(),
            }),
            _ => None,
        }
    }

    fn start(&mut self, run: &Run) {
        self.run += 1;
        self.rank = run.rank;
        self.eval_on = match run.eval_on() {
            crate::protocol::EvalOn::Val => "val",
            crate::protocol::EvalOn::Train => "train",
        };
    }

    /// A watched file that was truncated or replaced starts over.
    pub fn restart(&mut self) {
        *self = Rows::new(&self.file);
    }
}

/// The CSV file being written.
pub struct Table {
    out: csv::Writer<File>,
    shown: String,
}

impl Table {
    /// Creates `path` for the table after checking it against the `inputs` (see the module's doc); writes the
    /// header. `flag` names it in errors (`--csv`). Errors are one line, exit 2.
    pub fn create(flag: &str, path: &Path, inputs: &[PathBuf]) -> Result<Table> {
        let shown = crate::terminal::printable(&path.display().to_string()).into_owned();
        check_new(flag, path, inputs)?;
        let file = files::open_regular(
            path,
            OpenOptions::new().write(true).create_new(true),
            &format!("{flag} {shown}"),
        )?;
        let mut out = csv::Writer::from_writer(file);
        out.write_record(HEADER)
            .map_err(|e| usage(format!("{flag} {shown}: cannot write: {e}")))?;
        let mut t = Table { out, shown };
        t.flush()?;
        Ok(t)
    }

    pub fn write(&mut self, row: &Row) -> Result<()> {
        self.out
            .write_record(row.cells())
            .map_err(|e| usage(format!("--csv {}: cannot write: {e}", self.shown)))
    }

    /// Flushes what is written so far (a watch's rows are readable as they come).
    pub fn flush(&mut self) -> Result<()> {
        self.out
            .flush()
            .map_err(|e| usage(format!("--csv {}: cannot write: {}", self.shown, files::io_reason(&e))))
    }
}

/// Refuses `path` as an output when it exists (a dangling symlink too: it would write through to somewhere) or is
/// one of the `inputs`.
pub fn check_new(flag: &str, path: &Path, inputs: &[PathBuf]) -> Result<()> {
    let shown = crate::terminal::printable(&path.display().to_string()).into_owned();
    for input in inputs {
        if files::same_file(path, input) {
            return Err(usage(format!(
                "{flag} {shown}: the same file as the log {}; give the table another name",
                crate::terminal::printable(&input.display().to_string())
            )));
        }
    }
    if std::fs::symlink_metadata(path).is_ok() {
        return Err(usage(format!(
            "{flag} {shown}: already exists; bnscope does not write over a file, give a new name"
        )));
    }
    Ok(())
}

/// The table of whole log files (`replay --csv`, and a TUI `watch --csv` at its end): every epoch of every run
/// of each file, in order. Returns the number of rows.
pub fn write_logs(table: &mut Table, logs: &[PathBuf]) -> Result<u64> {
    let mut n = 0;
    for path in logs {
        let shown = crate::terminal::printable(&path.display().to_string()).into_owned();
        let mut rows = Rows::new(&shown);
        crate::logfile::read::stream_file(path, false, |recs| {
            for rec in &recs {
                if let Some(row) = rows.record(rec) {
                    table.write(&row)?;
                    n += 1;
                }
            }
            Ok(())
        })?;
    }
    table.flush()?;
    Ok(n)
}

/// A whole CSV file as text written to `w` (for tests and for `compare`, which builds its rows itself).
pub fn to_writer<W: Write>(w: W, rows: &[Row]) -> Result<()> {
    let mut out = csv::Writer::from_writer(w);
    out.write_record(HEADER)?;
    for r in rows {
        out.write_record(r.cells())?;
    }
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_follow_the_header() {
        let e = Epoch {
            epoch: 3,
            momentum: Some(0.99),
            train: Some(Metric {
                loss: Some(f64::NAN),
                acc: None,
            }),
            ..Default::default()
        };
        let r = Row {
            file: "a, \"b\".jsonl".into(),
            run: 1,
            rank: None,
            eval_on: "train",
            epoch: e,
        };
        let cells = r.cells();
        assert_eq!(cells.len(), HEADER.len());
        let at = |name: &str| cells[HEADER.iter().position(|h| *h == name).unwrap()].clone();
        assert_eq!(at("momentum_keras"), "0.99");
        assert_eq!(at("train_loss"), "NaN");
        assert_eq!(at("train_acc"), "");
        let mut buf = Vec::new();
        to_writer(&mut buf, &[r]).unwrap();
        let text = String::from_utf8(buf).unwrap();
        // The csv crate quotes the comma and doubles the quote.
        assert!(
            text.lines().nth(1).unwrap().starts_with("\"a, \"\"b\"\".jsonl\",1,"),
            "{text}"
        );
    }

    #[test]
    fn an_existing_file_or_an_input_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("run.jsonl");
        std::fs::write(&log, "{}\n").unwrap();
        let link = dir.path().join("link.csv");
        std::os::unix::fs::symlink(&log, &link).unwrap();
        let e = check_new("--csv", &link, std::slice::from_ref(&log)).unwrap_err();
        assert!(e.to_string().contains("the same file as the log"), "{e}");
        let other = dir.path().join("old.csv");
        std::fs::write(&other, "keep").unwrap();
        let e = Table::create("--csv", &other, &[]).err().unwrap();
        assert!(e.to_string().contains("already exists"), "{e}");
        assert_eq!(std::fs::read_to_string(&other).unwrap(), "keep");
        let dangling = dir.path().join("dangling.csv");
        std::os::unix::fs::symlink(dir.path().join("nowhere"), &dangling).unwrap();
        assert!(check_new("--csv", &dangling, &[]).is_err());
        assert!(Table::create("--csv", &dir.path().join("new.csv"), &[]).is_ok());
    }
}
