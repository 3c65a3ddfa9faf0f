//! The JSONL log (`--log FILE`): one JSON object per line, flushed after every record, so that a crash loses at most
//! the record being written. Momentum is always in the Keras convention here.
//!
//! The file is never truncated: a new file is created, an existing bnscope log is appended to (a new `run` record
//! starts the new run), anything else is refused unless `--overwrite-log` says so ([`JsonlLog::open`]). It is
//! locked for the run, so that two processes never interleave their records. A record that cannot be written
//! whole (a full disk) is cut off again, so the file never ends in half a line.
//!
//! Records: `run`, `epoch`, `bn`, `event`, `end`; the format is specified in `docs/LOG_FORMAT.md`. A number that
//! is not finite (a diverged loss) is written as `null`, everywhere.
use std::fs::File;
use std::io::{BufRead, Seek, Write};
use std::path::Path;

use anyhow::{Context, Result};
use serde_json::{json, Value};

use crate::error::usage;
use crate::protocol::{BnSnapshot, EndReason, EpochMetrics, EventKind, RunInfo};

/// How much of each BN snapshot the log keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogBn {
    /// Gaps only.
    Summary,
    /// Gaps and the per-channel arrays.
    Full,
}

/// The log format's version (`docs/LOG_FORMAT.md`), written in every `run` record.
pub const SCHEMA: u32 = 1;

pub struct JsonlLog {
    out: File,
    bn: LogBn,
    /// `--log FILE`, for error messages.
    shown: String,
    /// The file's length after the last whole record.
    len: u64,
}

/// The most of an existing file's first line read to decide whether it is a bnscope log.
const FIRST_LINE_MAX: u64 = 64 << 20;

impl JsonlLog {
    /// Opens the log for this run: creates it, or appends to an existing bnscope log (first line a `run` record;
    /// an empty file counts), or with `overwrite` empties whatever regular file is there. Refuses anything else,
    /// a FIFO or device, and a log another process holds. Errors name the file and are usage errors (exit 2).
    pub fn open(path: &Path, bn: LogBn, overwrite: bool) -> Result<Self> {
        let shown = path.display().to_string();
        let what = format!("--log {shown}");
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        if !path.exists() && !dir.is_dir() {
            return Err(usage(format!(
                "{what}: cannot create the log file: its directory does not exist"
            )));
        }
        let mut file = crate::files::open_regular(
            path,
            std::fs::OpenOptions::new().read(true).append(true).create(true),
            &what,
        )?;
        crate::files::lock(&file, &what, "two runs cannot share one log")?;
        let mut len = file.metadata().map(|m| m.len()).unwrap_or(0);
        if len > 0 && overwrite {
            // --overwrite-log starts a log afresh; it never empties weights, a checkpoint, an image or an archive
            // that happens to be at the path (a log is text).
            if let Some(kind) = not_text(&mut file) {
                return Err(usage(format!(
                    "{what}: not a log but {kind}; --overwrite-log only empties logs (text), so it is left as it is; \
                     give the log another name"
                )));
            }
            file.set_len(0)
                .map_err(|e| usage(format!("{what}: cannot empty it: {e}")))?;
            len = 0;
        }
        if len > 0 {
            if !is_bnscope_log(&mut file) {
                return Err(usage(format!(
                    "{what}: exists and is not a bnscope log; move it away or pass --overwrite-log"
                )));
            }
            // A writer that died mid-record left half a line: end it, so the new run starts on a line of its own
            // (readers skip a line that is not JSON; nothing already written is removed).
            if last_byte(&mut file) != Some(b'\n') {
                file.write_all(b"\n")
                    .map_err(|e| usage(format!("{what}: cannot write: {e}")))?;
                len += 1;
            }
        }
        Ok(Self {
            out: file,
            bn,
            shown,
            len,
        })
    }

    /// One record = one `write` call of the whole line, so a crash (even `kill -9`) leaves only complete lines. A
    /// write that fails half-way (a full disk) is cut back off, and the error names the file.
    fn write(&mut self, v: Value) -> Result<()> {
        let mut line = serde_json::to_vec(&v)?;
        line.push(b'\n');
        match self.out.write_all(&line) {
            Ok(()) => {
                self.len += line.len() as u64;
                Ok(())
            }
            Err(e) => {
                let _ = self.out.set_len(self.len);
                Err(e).with_context(|| format!("--log {}: cannot write the log", self.shown))
            }
        }
    }

    pub fn run(&mut self, info: &RunInfo) -> Result<()> {
        let mut v = json!({
            "type": "run",
            "schema": SCHEMA,
            "source": "bnscope",
            // The writer, so that a watch can say when it has gone (`the writer (pid N) has exited`).
            "pid": std::process::id(),
            "host": crate::control::hostname(),
            "model": info.model,
            "image_size": info.image_size,
            "batch_size": info.batch_size,
            "classes": info.classes,
            "images": info.images.len(),
            "image_names": info.images,
            "labels": info.labels,
            "normalize": info.normalize,
            "norm": info.norm,
            "ema": info.ema,
            "pretrain": info.pretrain,
            "lesson": info.lesson,
            "momentum": info.momentum,
            "cumulative": info.cumulative,
            "convention": "keras",
            "device": info.device,
            "seed": info.seed,
            "lr": info.lr,
            "optimizer": info.optimizer,
            "framework": info.framework,
            "bn_eps": info.bn_eps,
            "bn_variance": info.bn_variance,
            "adam_eps": info.adam_eps,
            "resumed_from": info.resumed_from,
            "weights": info.weights,
            "frozen_bn": info.frozen_bn,
            "params": info.params,
            "start_epoch": info.start_epoch,
            "bn_layers": info.bn_layers,
        });
        // The evaluation's data (optional fields, schema 1): `images`, `image_names` and `labels` above are the
        // evaluated images, the ones the predictions describe.
        let o = v.as_object_mut().expect("an object");
        o.insert("eval_on".into(), json!(info.eval_on.as_str()));
        o.insert("train_images".into(), json!(info.train_images));
        o.insert("eval_batch_size".into(), json!(info.eval_batch_size));
        o.insert("val_transform".into(), json!(info.val_transform));
        if info.eval_on == crate::protocol::EvalOn::Val {
            o.insert("val_images".into(), json!(info.images.len()));
            o.insert("val_data".into(), json!(info.val_data));
        }
        self.write(v)
    }

    pub fn epoch(&mut self, m: &EpochMetrics) -> Result<()> {
        self.write(json!({
            "type": "epoch",
            "epoch": m.epoch,
            "step": m.step,
            "momentum": m.momentum,
            "cumulative": m.cumulative,
            "t": m.t,
            "init_weight": m.age.init_weight,
            "train": m.train,
            "eval_running": m.eval_running,
            "eval_batch": m.eval_batch,
            "predictions_running": m.predictions_running,
            "predictions_batch": m.predictions_batch,
            "step_ms": m.step_ms,
            "eval_ema": m.eval_ema,
        }))
    }

    pub fn bn(&mut self, s: &BnSnapshot) -> Result<()> {
        let layers: Vec<Value> = s
            .layers
            .iter()
            .map(|l| match self.bn {
                LogBn::Summary => {
                    json!({"name": l.name, "n": l.n, "mean_gap": l.mean_gap, "var_gap": l.var_gap})
                }
                LogBn::Full => serde_json::to_value(l).unwrap_or(Value::Null),
            })
            .collect();
        self.write(json!({"type": "bn", "epoch": s.epoch, "t": s.t, "layers": layers}))
    }

    pub fn event(&mut self, epoch: usize, what: EventKind, value: Value) -> Result<()> {
        self.write(json!({"type": "event", "epoch": epoch, "what": what.as_str(), "value": value}))
    }

    /// The file, for checks against the run's other files.
    pub fn file(&self) -> &File {
        &self.out
    }

    pub fn end(&mut self, epochs: usize, reason: EndReason, message: Option<&str>) -> Result<()> {
        let mut v = json!({"type": "end", "epochs": epochs, "reason": reason.as_str()});
        if let Some(msg) = message {
            v["message"] = json!(msg);
        }
        self.write(v)
    }
}

/// Whether the file's first line is a JSON object with `"type":"run"`.
fn is_bnscope_log(file: &mut File) -> bool {
    if file.rewind().is_err() {
        return false;
    }
    let mut first = Vec::new();
    let mut r = std::io::BufReader::new(std::io::Read::take(&*file, FIRST_LINE_MAX));
    if r.read_until(b'\n', &mut first).is_err() {
        return false;
    }
    serde_json::from_slice::<Value>(&first).is_ok_and(|v| v["type"] == "run")
}

/// What a file is when its start shows it is not text (`a safetensors file`, `a PNG image`, `binary data`); `None`
/// for text (UTF-8 without NUL bytes, a character cut at the end of the sample allowed).
fn not_text(file: &mut File) -> Option<&'static str> {
    use std::io::Read;
    file.rewind().ok()?;
    let mut head = Vec::new();
    std::io::Read::take(&*file, 4096).read_to_end(&mut head).ok()?;
    if let Some(kind) = crate::files::binary_kind(&head) {
        return Some(kind);
    }
    let text = match std::str::from_utf8(&head) {
        Ok(_) => true,
        // Only a character cut off by the sample's end.
        Err(e) => e.error_len().is_none(),
    };
    (!text || head.contains(&0)).then_some("binary data")
}

fn last_byte(file: &mut File) -> Option<u8> {
    use std::io::{Read, SeekFrom};
    file.seek(SeekFrom::End(-1)).ok()?;
    let mut b = [0u8; 1];
    file.read_exact(&mut b).ok()?;
    Some(b[0])
}
