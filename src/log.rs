//! The JSONL log (`--log FILE`): one JSON object per line, flushed after every record, so that a crash loses at most
//! the record being written. Momentum is always in the Keras convention here.
//!
//! Records: `run`, `epoch`, `bn`, `event`, `end`; the format is specified in `docs/LOG_FORMAT.md`. A number that
//! is not finite (a diverged loss) is written as `null`, everywhere.
use std::fs::File;
use std::io::Write;
use std::path::Path;

use anyhow::Result;
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
}

impl JsonlLog {
    /// Creates (truncates) the log file. Errors name the file and are usage errors (exit 2).
    pub fn create(path: &Path, bn: LogBn) -> Result<Self> {
        let file = File::create(path).map_err(|e| {
            let why = match e.kind() {
                std::io::ErrorKind::NotFound => "its directory does not exist".to_string(),
                std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
                _ => e.to_string(),
            };
            usage(format!("--log {}: cannot create the log file: {why}", path.display()))
        })?;
        Ok(Self { out: file, bn })
    }

    /// One record = one `write` call of the whole line, so a crash (even `kill -9`) leaves only complete lines.
    fn write(&mut self, v: Value) -> Result<()> {
        let mut line = serde_json::to_vec(&v)?;
        line.push(b'\n');
        self.out.write_all(&line)?;
        Ok(())
    }

    pub fn run(&mut self, info: &RunInfo) -> Result<()> {
        self.write(json!({
            "type": "run",
            "schema": SCHEMA,
            "source": "bnscope",
            "model": info.model,
            "image_size": info.image_size,
            "batch_size": info.batch_size,
            "classes": info.classes,
            "images": info.images.len(),
            "image_names": info.images,
            "labels": info.labels,
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
            "params": info.params,
            "start_epoch": info.start_epoch,
            "bn_layers": info.bn_layers,
        }))
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

    pub fn end(&mut self, epochs: usize, reason: EndReason, message: Option<&str>) -> Result<()> {
        let mut v = json!({"type": "end", "epochs": epochs, "reason": reason.as_str()});
        if let Some(msg) = message {
            v["message"] = json!(msg);
        }
        self.write(v)
    }
}
