//! An `inspect` record (`bnscope inspect --log`, the Python side's inspect) read back as the report.
use serde_json::Value;

use super::value::{field, floats, matrix, string, strings, text, uint};
use super::{Inspected, Record};

/// An `inspect` record as the report `bnscope inspect` prints (docs/LOG_FORMAT.md): what the record lacks is NaN
/// (shown "–") or empty.
pub(super) fn inspect_record(v: &Value) -> Record {
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
