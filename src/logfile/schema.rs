//! The records of bnscope's JSONL log (`docs/LOG_FORMAT.md`, schema 1) as a reader keeps them, and the parse of
//! one line. Every string is made printable here, at the edge (`terminal::printable`), so that no path from a
//! log to a terminal (TUI, headless replay, watch) can carry a control sequence.
//!
//! Two depths: a full parse keeps every array (a `bn` record's per-channel statistics, the prediction matrices);
//! a lite one keeps the figures a line or a chart needs and the record's [`Span`] in the file, so that a long log
//! costs a few dozen bytes an epoch and the arrays are read again only for the epoch on screen.
use std::borrow::Cow;

use anyhow::Result;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::Value;

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

// ---- small readers of a `Value` (run, event and end records, and a full parse) ----

fn p(s: &str) -> String {
    crate::terminal::printable(s).into_owned()
}

fn num(v: &Value) -> Option<f64> {
    match v {
        Value::Null => Some(f64::NAN),
        Value::Number(n) => n.as_f64(),
        _ => None,
    }
}

fn field(v: &Value, k: &str) -> Option<f64> {
    v.get(k).and_then(num)
}

fn string(v: &Value, k: &str) -> Option<String> {
    v.get(k).and_then(Value::as_str).map(p)
}

fn uint(v: &Value, k: &str) -> Option<u64> {
    v.get(k).and_then(Value::as_u64)
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => p(s),
        Value::Null => String::new(),
        other => p(&other.to_string()),
    }
}

fn floats_of(v: &Value) -> Option<Vec<f64>> {
    v.as_array()
        .map(|a| a.iter().map(|x| num(x).unwrap_or(f64::NAN)).collect())
}

fn floats(v: &Value, k: &str) -> Option<Vec<f64>> {
    floats_of(v.get(k)?)
}

fn matrix(v: &Value, k: &str) -> Option<Vec<Vec<f64>>> {
    v.get(k)?
        .as_array()
        .map(|rows| rows.iter().map(|r| floats_of(r).unwrap_or_default()).collect())
}

fn metric(v: &Value, k: &str) -> Option<Metric> {
    let m = v.get(k)?;
    m.is_object().then(|| Metric {
        loss: field(m, "loss"),
        acc: field(m, "acc"),
    })
}

fn strings(v: &Value, k: &str) -> Vec<String> {
    v.get(k)
        .and_then(Value::as_array)
        .map(|a| a.iter().map(text).collect())
        .unwrap_or_default()
}

/// A `run` record; an error says why this reader cannot show the log (a newer schema, another convention).
pub fn run_record(v: &Value) -> Result<Run> {
    let schema = match v.get("schema") {
        None => 1,
        Some(s) => match s.as_u64() {
            Some(n) if n >= 1 => n,
            _ => anyhow::bail!("`schema` is {}, not a version number this bnscope knows", text(s)),
        },
    };
    if schema > SCHEMA {
        anyhow::bail!("a log of schema {schema}; this bnscope reads schema {SCHEMA} (a newer bnscope wrote it)");
    }
    match v.get("convention") {
        None => {}
        Some(Value::String(c)) if c == "keras" => {}
        Some(c) => anyhow::bail!("momenta in the convention {}; the format requires \"keras\"", text(c)),
    }
    let control = v.get("control").and_then(|c| {
        if let Some(why) = c.get("refused") {
            return Some(Control::Refused(text(why)));
        }
        let path = c.get("path").and_then(Value::as_str)?;
        Some(Control::On {
            path: std::path::PathBuf::from(path),
            recalibrate: c.get("recalibrate").and_then(Value::as_bool).unwrap_or(false),
            evaluate: c.get("evaluate").and_then(Value::as_bool).unwrap_or(false),
        })
    });
    let ctl = v.get("control");
    Ok(Run {
        source: string(v, "source").unwrap_or_else(|| "bnscope".into()),
        model: string(v, "model"),
        framework: string(v, "framework"),
        classes: strings(v, "classes"),
        images: uint(v, "images"),
        bn_layers: v.get("bn_layers").and_then(Value::as_array).map_or(0, Vec::len),
        momentum: field(v, "momentum"),
        cumulative: v.get("cumulative").and_then(Value::as_bool).unwrap_or(false),
        rank: uint(v, "rank"),
        world_size: uint(v, "world_size"),
        start_epoch: uint(v, "start_epoch").unwrap_or(0),
        resumed_from: string(v, "resumed_from"),
        weights: string(v, "weights"),
        frozen_bn: string(v, "frozen_bn"),
        normalize: string(v, "normalize"),
        norm: string(v, "norm"),
        ema: v.get("ema").and_then(Value::as_f64),
        pretrain: string(v, "pretrain"),
        lesson: string(v, "lesson"),
        layers: v
            .get("bn_layers")
            .and_then(Value::as_array)
            .map(|ls| {
                ls.iter()
                    .map(|l| (l.get("name").map(text).unwrap_or_default(), uint(l, "channels")))
                    .collect()
            })
            .unwrap_or_default(),
        image_names: strings(v, "image_names"),
        labels: v
            .get("labels")
            .and_then(Value::as_array)
            .map(|a| a.iter().map(|x| x.as_u64().unwrap_or(u64::MAX) as usize).collect())
            .unwrap_or_default(),
        image_size: uint(v, "image_size"),
        batch_size: uint(v, "batch_size"),
        seed: uint(v, "seed"),
        lr: field(v, "lr"),
        optimizer: string(v, "optimizer"),
        device: string(v, "device"),
        bn_eps: field(v, "bn_eps"),
        bn_variance: string(v, "bn_variance"),
        params: uint(v, "params"),
        eval_on: string(v, "eval_on"),
        train_images: uint(v, "train_images"),
        val_images: uint(v, "val_images"),
        val_data: string(v, "val_data"),
        eval_batch_size: uint(v, "eval_batch_size"),
        val_transform: string(v, "val_transform"),
        control,
        pid: ctl.and_then(|c| uint(c, "pid")),
        host: ctl.and_then(|c| string(c, "host")),
    })
}

/// An `epoch` record, every field (the predictions too).
pub fn epoch_full(v: &Value, span: Span) -> Epoch {
    let predictions_running = matrix(v, "predictions_running");
    let predictions_batch = matrix(v, "predictions_batch");
    Epoch {
        epoch: uint(v, "epoch").unwrap_or(0),
        step: uint(v, "step"),
        momentum: field(v, "momentum"),
        cumulative: v.get("cumulative").and_then(Value::as_bool).unwrap_or(false),
        t: uint(v, "t"),
        init_weight: field(v, "init_weight"),
        train: metric(v, "train"),
        eval_running: metric(v, "eval_running"),
        eval_batch: metric(v, "eval_batch"),
        eval_ema: metric(v, "eval_ema"),
        has_predictions: predictions_running.is_some() || predictions_batch.is_some(),
        predictions_running,
        predictions_batch,
        step_ms: field(v, "step_ms"),
        span,
    }
}

/// A `bn` record's layers, every array.
pub fn bn_layers(v: &Value) -> Vec<BnLayer> {
    v.get("layers")
        .and_then(Value::as_array)
        .map(|ls| {
            ls.iter()
                .map(|l| BnLayer {
                    name: l.get("name").map(text).unwrap_or_default(),
                    running_mean: floats(l, "running_mean"),
                    running_var: floats(l, "running_var"),
                    batch_mean: floats(l, "batch_mean"),
                    batch_var: floats(l, "batch_var"),
                    mean_gap: field(l, "mean_gap"),
                    var_gap: field(l, "var_gap"),
                    n: uint(l, "n"),
                })
                .collect()
        })
        .unwrap_or_default()
}

fn event_record(v: &Value) -> Event {
    Event {
        epoch: uint(v, "epoch").unwrap_or(0),
        what: v.get("what").map(text).unwrap_or_default(),
        value: v.get("value").map(text).unwrap_or_default(),
        id: string(v, "id"),
        step: uint(v, "step"),
        reason: string(v, "reason"),
        eval_running: metric(v, "eval_running"),
        eval_batch: metric(v, "eval_batch"),
    }
}

// ---- the lite parse: typed, arrays skipped without being built ----

/// Any JSON value, keeping only what a scalar field needs: `null` is NaN (a number that was not finite), a
/// string or container is "not a number" (`Other`), skipped without allocating.
#[derive(Clone, Copy, Debug, Default)]
enum Scalar {
    #[default]
    Other,
    Null,
    Bool(bool),
    U(u64),
    F(f64),
}

impl Scalar {
    fn f64(self) -> Option<f64> {
        match self {
            Scalar::Null => Some(f64::NAN),
            Scalar::U(u) => Some(u as f64),
            Scalar::F(f) => Some(f),
            _ => None,
        }
    }
    fn u64(self) -> Option<u64> {
        match self {
            Scalar::U(u) => Some(u),
            _ => None,
        }
    }
    fn bool(self) -> Option<bool> {
        match self {
            Scalar::Bool(b) => Some(b),
            _ => None,
        }
    }
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Scalar;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_unit<E: de::Error>(self) -> std::result::Result<Scalar, E> {
                Ok(Scalar::Null)
            }
            fn visit_none<E: de::Error>(self) -> std::result::Result<Scalar, E> {
                Ok(Scalar::Null)
            }
            fn visit_bool<E: de::Error>(self, b: bool) -> std::result::Result<Scalar, E> {
                Ok(Scalar::Bool(b))
            }
            fn visit_u64<E: de::Error>(self, u: u64) -> std::result::Result<Scalar, E> {
                Ok(Scalar::U(u))
            }
            fn visit_i64<E: de::Error>(self, i: i64) -> std::result::Result<Scalar, E> {
                Ok(Scalar::F(i as f64))
            }
            fn visit_f64<E: de::Error>(self, f: f64) -> std::result::Result<Scalar, E> {
                Ok(Scalar::F(f))
            }
            fn visit_str<E: de::Error>(self, _: &str) -> std::result::Result<Scalar, E> {
                Ok(Scalar::Other)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> std::result::Result<Scalar, A::Error> {
                while a.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Scalar::Other)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> std::result::Result<Scalar, A::Error> {
                while a.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Scalar::Other)
            }
        }
        d.deserialize_any(V)
    }
}

/// `{loss, acc}` or anything else (then no metric, as a full parse has it).
#[derive(Clone, Copy, Debug, Default)]
struct LiteMetric(Option<Metric>);

impl<'de> Deserialize<'de> for LiteMetric {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = LiteMetric;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a {loss, acc} object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> std::result::Result<LiteMetric, A::Error> {
                let mut m = Metric::default();
                while let Some(k) = a.next_key::<Cow<'de, str>>()? {
                    match k.as_ref() {
                        "loss" => m.loss = a.next_value::<Scalar>()?.f64(),
                        "acc" => m.acc = a.next_value::<Scalar>()?.f64(),
                        _ => {
                            a.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(LiteMetric(Some(m)))
            }
            fn visit_unit<E: de::Error>(self) -> std::result::Result<LiteMetric, E> {
                Ok(LiteMetric(None))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> std::result::Result<LiteMetric, E> {
                Ok(LiteMetric(None))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> std::result::Result<LiteMetric, E> {
                Ok(LiteMetric(None))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> std::result::Result<LiteMetric, E> {
                Ok(LiteMetric(None))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> std::result::Result<LiteMetric, E> {
                Ok(LiteMetric(None))
            }
            fn visit_str<E: de::Error>(self, _: &str) -> std::result::Result<LiteMetric, E> {
                Ok(LiteMetric(None))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> std::result::Result<LiteMetric, A::Error> {
                while a.next_element::<IgnoredAny>()?.is_some() {}
                Ok(LiteMetric(None))
            }
        }
        d.deserialize_any(V)
    }
}

/// The fields of `epoch` and `bn` records a lite parse keeps; everything else is skipped.
#[derive(Deserialize, Default)]
#[serde(default)]
struct Lite<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<Cow<'a, str>>,
    epoch: Scalar,
    step: Scalar,
    t: Scalar,
    momentum: Scalar,
    cumulative: Scalar,
    init_weight: Scalar,
    train: LiteMetric,
    eval_running: LiteMetric,
    eval_batch: LiteMetric,
    eval_ema: LiteMetric,
    step_ms: Scalar,
    predictions_running: Option<IgnoredAny>,
    predictions_batch: Option<IgnoredAny>,
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

/// An `inspect` record as the report `bnscope inspect` prints (docs/LOG_FORMAT.md): what the record lacks is NaN
/// (shown "–") or empty.
fn inspect_record(v: &Value) -> Record {
    use crate::protocol::{BlameFigure, BnLayerSnapshot, BnSnapshot, InspectPass, Inspection, LayerBlame, LayerGap};
    let f32_of = |m: &Value, k: &str| field(m, k).map_or(f32::NAN, |x| x as f32);
    let pass = |k: &str| {
        let m = v.get(k).cloned().unwrap_or(Value::Null);
        InspectPass {
            loss: f32_of(&m, "loss"),
            acc: f32_of(&m, "acc"),
            logits: matrix(&m, "logits")
                .unwrap_or_default()
                .into_iter()
                .map(|r| r.into_iter().map(|x| x as f32).collect())
                .collect(),
        }
    };
    let layers: Vec<&Value> = v
        .get("layers")
        .and_then(Value::as_array)
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    let mut gaps: Vec<LayerGap> = layers
        .iter()
        .map(|l| LayerGap {
            name: l.get("name").map(text).unwrap_or_default(),
            mean_gap: f32_of(l, "mean_gap"),
            var_gap: f32_of(l, "var_gap"),
        })
        .collect();
    // The report lists the largest gap first (NaN first), as `bnscope inspect` does.
    let key = |g: &LayerGap| {
        let m = g.mean_gap.max(g.var_gap);
        if m.is_nan() {
            f32::INFINITY
        } else {
            m
        }
    };
    gaps.sort_by(|a, b| key(b).total_cmp(&key(a)));
    let figure = |b: &Value, k: &str| {
        let m = b.get(k).cloned().unwrap_or(Value::Null);
        BlameFigure {
            loss: f32_of(&m, "loss"),
            acc: f32_of(&m, "acc"),
            loss_share: f32_of(&m, "loss_share"),
            acc_share: f32_of(&m, "acc_share"),
        }
    };
    let blame: Vec<LayerBlame> = v
        .get("blame")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|b| LayerBlame {
                    name: b.get("name").map(text).unwrap_or_default(),
                    alone: figure(b, "alone"),
                    prefix: figure(b, "prefix"),
                })
                .collect()
        })
        .unwrap_or_default();
    let findings = strings(v, "findings");
    let f32s =
        |l: &Value, k: &str| -> Vec<f32> { floats(l, k).unwrap_or_default().into_iter().map(|x| x as f32).collect() };
    let with_arrays: Vec<BnLayerSnapshot> = layers
        .iter()
        .filter(|l| l.get("running_mean").is_some() && l.get("data_mean").is_some())
        .map(|l| BnLayerSnapshot {
            name: l.get("name").map(text).unwrap_or_default(),
            n: uint(l, "n").unwrap_or(0) as usize,
            mean_gap: f32_of(l, "mean_gap"),
            var_gap: f32_of(l, "var_gap"),
            running_mean: f32s(l, "running_mean"),
            running_var: f32s(l, "running_var"),
            batch_mean: f32s(l, "data_mean"),
            batch_var: f32s(l, "data_var"),
        })
        .collect();
    let snapshot = (!with_arrays.is_empty() && with_arrays.len() == layers.len()).then(|| {
        Box::new(BnSnapshot {
            epoch: 0,
            t: 0,
            age: crate::protocol::StatsAge::START,
            layers: with_arrays,
        })
    });
    let samples = uint(v, "samples").unwrap_or(0) as usize;
    let report = Inspection {
        model: string(v, "model").unwrap_or_default(),
        images: (1..=samples).map(|i| format!("sample {i}")).collect(),
        classes: Vec::new(),
        labels: v
            .get("labels")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_u64).map(|x| x as usize).collect())
            .unwrap_or_default(),
        eval_running: pass("eval_running"),
        eval_batch: pass("eval_batch"),
        recalibrated: pass("recalibrated"),
        layers: gaps,
        blame_samples: uint(v, "blame_samples").unwrap_or(0) as usize,
        blame,
        diagnosis: string(v, "diagnosis").unwrap_or_else(|| findings.join(" ")),
        summary: findings.first().cloned().unwrap_or_default(),
        findings,
        age: crate::protocol::StatsAge::START,
    };
    Record::Inspect(Inspected {
        report: Box::new(report),
        snapshot,
    })
}
