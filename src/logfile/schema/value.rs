//! The full parse, from a `serde_json::Value`: `run`, `event`, `end` and `inspect` records, and the `epoch` and
//! `bn` records with every array. Every string through [`p`] (printable).
use anyhow::Result;
use serde_json::Value;

use super::{BnLayer, Control, Epoch, Event, Metric, Run, Span, SCHEMA};

pub(super) fn p(s: &str) -> String {
    crate::terminal::printable(s).into_owned()
}

pub(super) fn num(v: &Value) -> Option<f64> {
    match v {
        Value::Null => Some(f64::NAN),
        Value::Number(n) => n.as_f64(),
        _ => None,
    }
}

pub(super) fn field(v: &Value, k: &str) -> Option<f64> {
    v.get(k).and_then(num)
}

pub(super) fn string(v: &Value, k: &str) -> Option<String> {
    v.get(k).and_then(Value::as_str).map(p)
}

pub(super) fn uint(v: &Value, k: &str) -> Option<u64> {
    v.get(k).and_then(Value::as_u64)
}

pub(super) fn text(v: &Value) -> String {
    match v {
        Value::String(s) => p(s),
        Value::Null => String::new(),
        other => p(&other.to_string()),
    }
}

pub(super) fn floats_of(v: &Value) -> Option<Vec<f64>> {
    v.as_array()
        .map(|a| a.iter().map(|x| num(x).unwrap_or(f64::NAN)).collect())
}

pub(super) fn floats(v: &Value, k: &str) -> Option<Vec<f64>> {
    floats_of(v.get(k)?)
}

pub(super) fn matrix(v: &Value, k: &str) -> Option<Vec<Vec<f64>>> {
    v.get(k)?
        .as_array()
        .map(|rows| rows.iter().map(|r| floats_of(r).unwrap_or_default()).collect())
}

pub(super) fn metric(v: &Value, k: &str) -> Option<Metric> {
    let m = v.get(k)?;
    m.is_object().then(|| Metric {
        loss: field(m, "loss"),
        acc: field(m, "acc"),
    })
}

pub(super) fn strings(v: &Value, k: &str) -> Vec<String> {
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
        pid: ctl.and_then(|c| uint(c, "pid")).or_else(|| uint(v, "pid")),
        host: ctl.and_then(|c| string(c, "host")).or_else(|| string(v, "host")),
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

pub(super) fn event_record(v: &Value) -> Event {
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
