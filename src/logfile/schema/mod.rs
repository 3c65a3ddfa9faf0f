//! The records of bnscope's JSONL log (`docs/LOG_FORMAT.md`, schema 1) as a reader keeps them, and the parse of
//! one line. Every string is made printable here, at the edge (`terminal::printable`), so that no path from a
//! log to a terminal (TUI, headless replay, watch) can carry a control sequence.
//!
//! Two depths: a full parse keeps every array (a `bn` record's per-channel statistics, the prediction matrices);
//! a lite one keeps the figures a line or a chart needs and the record's [`Span`] in the file, so that a long log
//! costs a few dozen bytes an epoch and the arrays are read again only for the epoch on screen.
//!
//! Its files: `value` (the full parse of a `serde_json::Value`), `lite` (the typed, array-skipping parse),
//! `inspect` (an `inspect` record); the records and the parse of one line are here.
use anyhow::Result;
use serde_json::Value;

mod inspect;
mod lite;
mod value;

use inspect::inspect_record;
use lite::Lite;
pub use value::{bn_layers, epoch_full, run_record};
use value::{event_record, text, uint};

/// The newest log format this reader knows.
pub const SCHEMA: u64 = 1;

/// Where a record's line is in its file: what a lite record keeps instead of its arrays.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Span {
    pub offset: u64,
    pub len: u32,
}

/// `{loss, acc}`; either may be missing.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Metric {
    pub loss: Option<f64>,
    pub acc: Option<f64>,
}

/// The `run` record, as far as a reader uses it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Run {
    pub source: String,
    pub model: Option<String>,
    pub framework: Option<String>,
    pub classes: Vec<String>,
    pub images: Option<u64>,
    pub bn_layers: usize,
    pub momentum: Option<f64>,
    pub cumulative: bool,
    pub rank: Option<u64>,
    pub world_size: Option<u64>,
    pub start_epoch: u64,
    pub resumed_from: Option<String>,
    /// bnscope: `--weights` and `--freeze backbone`'s BatchNorm mode.
    pub weights: Option<String>,
    pub frozen_bn: Option<String>,
    /// bnscope: `--normalize`.
    pub normalize: Option<String>,
    /// bnscope: `--norm` and `--ema`.
    pub norm: Option<String>,
    pub ema: Option<f64>,
    pub pretrain: Option<String>,
    pub lesson: Option<String>,
    /// Per layer: name and channels (where the log says).
    pub layers: Vec<(String, Option<u64>)>,
    pub image_names: Vec<String>,
    /// Class index of each image whose predictions are logged.
    pub labels: Vec<usize>,
    pub image_size: Option<u64>,
    pub batch_size: Option<u64>,
    pub seed: Option<u64>,
    pub lr: Option<f64>,
    pub optimizer: Option<String>,
    pub device: Option<String>,
    pub bn_eps: Option<f64>,
    /// `biased` or `unbiased`; absent = `unbiased` (the format's default).
    pub bn_variance: Option<String>,
    pub params: Option<u64>,
    /// bnscope: `"val"` when the evaluations are on held-out images (absent: `"train"`).
    pub eval_on: Option<String>,
    /// bnscope: images in the training set and in the held-out set.
    pub train_images: Option<u64>,
    pub val_images: Option<u64>,
    /// bnscope: where the held-out images come from.
    pub val_data: Option<String>,
    /// bnscope: `--eval-batch-size` and `--val-transform`.
    pub eval_batch_size: Option<u64>,
    pub val_transform: Option<String>,
    /// The Python writers' control channel (docs/CONTROL.md): `None` = a read-only run.
    pub control: Option<Control>,
    /// The writer's process and host, where the record gives them (`control.pid` / `control.host`).
    pub pid: Option<u64>,
    pub host: Option<String>,
}

impl Run {
    /// What the log's evaluations are measured on.
    pub fn eval_on(&self) -> crate::protocol::EvalOn {
        crate::protocol::EvalOn::from_name(self.eval_on.as_deref())
    }
}

/// The `control` object of a `run` record (docs/CONTROL.md).
#[derive(Clone, Debug, PartialEq)]
pub enum Control {
    /// Steerable: the command file and what the run offers.
    On {
        path: std::path::PathBuf,
        recalibrate: bool,
        evaluate: bool,
    },
    /// The writer could not open its channel, and why (printable).
    Refused(String),
}

/// One `epoch` record.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Epoch {
    pub epoch: u64,
    pub step: Option<u64>,
    pub momentum: Option<f64>,
    pub cumulative: bool,
    pub t: Option<u64>,
    pub init_weight: Option<f64>,
    pub train: Option<Metric>,
    pub eval_running: Option<Metric>,
    pub eval_batch: Option<Metric>,
    /// bnscope `--ema`: the averaged model with its copied running statistics.
    pub eval_ema: Option<Metric>,
    /// Full parse only (a lite one leaves them `None` and says in `has_predictions` whether the line has them).
    pub predictions_running: Option<Vec<Vec<f64>>>,
    pub predictions_batch: Option<Vec<Vec<f64>>>,
    pub has_predictions: bool,
    pub step_ms: Option<f64>,
    pub span: Span,
}

/// One layer of a `bn` record.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BnLayer {
    pub name: String,
    pub running_mean: Option<Vec<f64>>,
    pub running_var: Option<Vec<f64>>,
    pub batch_mean: Option<Vec<f64>>,
    pub batch_var: Option<Vec<f64>>,
    pub mean_gap: Option<f64>,
    pub var_gap: Option<f64>,
    /// Values per channel in the batch.
    pub n: Option<u64>,
}

/// A record as read.
#[derive(Clone, Debug, PartialEq)]
// Records are read once and moved on; boxing the epoch would only add an allocation per line.
#[allow(clippy::large_enum_variant)]
pub enum Record {
    Run(Box<Run>),
    Epoch(Epoch),
    /// A BatchNorm record of this epoch: per layer its name and statistics (`None` from a lite parse: read them
    /// again from `span`).
    Bn {
        epoch: u64,
        layers: Option<Vec<BnLayer>>,
        span: Span,
    },
    /// An `event`: what and its value as text; `id`, `step` and `reason` for the control channel's ledger.
    Event(Event),
    End {
        epochs: u64,
        reason: String,
    },
    /// An `inspect` record (the Python `bnscope.inspect` / `keras_inspect`): the model looked at on data, as
    /// `bnscope inspect` reports it; `snapshot`: its layers' running statistics against the data's, where the
    /// record has the arrays.
    Inspect(Inspected),
}

/// An `inspect` record: the report, and the snapshot of its layers where the record has their arrays.
#[derive(Clone, Debug)]
pub struct Inspected {
    pub report: Box<crate::protocol::Inspection>,
    pub snapshot: Option<Box<crate::protocol::BnSnapshot>>,
}

impl PartialEq for Inspected {
    /// The same report, figure for figure (as printed: the protocol's types carry no `PartialEq`).
    fn eq(&self, other: &Self) -> bool {
        format!("{self:?}") == format!("{other:?}")
    }
}

/// An `event` record.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Event {
    pub epoch: u64,
    pub what: String,
    pub value: String,
    /// The control command it answers (docs/CONTROL.md).
    pub id: Option<String>,
    /// The step it took effect at.
    pub step: Option<u64>,
    /// Why a command was refused.
    pub reason: Option<String>,
    /// `evaluate`: the two evaluations it ran.
    pub eval_running: Option<Metric>,
    pub eval_batch: Option<Metric>,
}

/// What one line is.
// A line is parsed once and moved on at once; boxing the record would add an allocation per line.
#[allow(clippy::large_enum_variant)]
pub enum Parsed {
    /// Blank.
    Empty,
    /// Not a JSON object.
    Bad,
    /// A record of a type this reader does not know.
    Unknown,
    /// A `run` record (a newer schema or another convention is an error).
    Run(Result<Box<Run>>),
    Record(Record),
}

/// Parses one line (without its `\n`) at `span`. `full`: keep every array.
pub fn parse_line(line: &[u8], span: Span, full: bool) -> Parsed {
    let mut line = trim(line);
    if span.offset == 0 {
        // A UTF-8 byte-order mark (an editor's) is not part of the first record.
        line = line.strip_prefix(b"\xef\xbb\xbf".as_slice()).unwrap_or(line);
    }
    if line.is_empty() {
        return Parsed::Empty;
    }
    if line.first() != Some(&b'{') {
        return Parsed::Bad;
    }
    if !full {
        // The hot path: epoch and bn records without building their arrays.
        match serde_json::from_slice::<Lite>(line) {
            Ok(l) => match l.kind.as_deref() {
                Some("epoch") => {
                    return Parsed::Record(Record::Epoch(Epoch {
                        epoch: l.epoch.u64().unwrap_or(0),
                        step: l.step.u64(),
                        momentum: l.momentum.f64(),
                        cumulative: l.cumulative.bool().unwrap_or(false),
                        t: l.t.u64(),
                        init_weight: l.init_weight.f64(),
                        train: l.train.0,
                        eval_running: l.eval_running.0,
                        eval_batch: l.eval_batch.0,
                        eval_ema: l.eval_ema.0,
                        predictions_running: None,
                        predictions_batch: None,
                        has_predictions: l.predictions_running.is_some() || l.predictions_batch.is_some(),
                        step_ms: l.step_ms.f64(),
                        span,
                    }))
                }
                Some("bn") => {
                    return Parsed::Record(Record::Bn {
                        epoch: l.epoch.u64().unwrap_or(0),
                        layers: None,
                        span,
                    })
                }
                _ => {}
            },
            Err(_) => return Parsed::Bad,
        }
    }
    let v: Value = match serde_json::from_slice(line) {
        Ok(v @ Value::Object(_)) => v,
        _ => return Parsed::Bad,
    };
    parse_value(&v, span)
}

/// A record from a parsed line.
pub fn parse_value(v: &Value, span: Span) -> Parsed {
    let kind = v.get("type").and_then(Value::as_str).unwrap_or("");
    Parsed::Record(match kind {
        "run" => return Parsed::Run(run_record(v).map(Box::new)),
        "epoch" => Record::Epoch(epoch_full(v, span)),
        "bn" => Record::Bn {
            epoch: uint(v, "epoch").unwrap_or(0),
            layers: Some(bn_layers(v)),
            span,
        },
        "event" => Record::Event(event_record(v)),
        "end" => Record::End {
            epochs: uint(v, "epochs").unwrap_or(0),
            reason: v.get("reason").map(text).unwrap_or_default(),
        },
        "inspect" => inspect_record(v),
        _ => return Parsed::Unknown,
    })
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [rest @ .., b'\r' | b' ' | b'\t'] = s {
        s = rest;
    }
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    s
}
