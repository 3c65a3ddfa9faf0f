//! The layer gauges' arithmetic (data side, no drawing): how close the running statistics are to the batch's, the
//! variance ratio, and the layer list's scroll offset. `render/layers.rs` draws them; `input.rs` uses them for the
//! mouse and the "worst layer" key without importing a render module; the inspect view's order of the layers by
//! blame (`layer_order`, `blame_rows`), which both the panel and the selection keys follow.
use crate::protocol::BnLayerSnapshot;

use super::store::Store;

/// `1 − min(1, gap)`: how close the running stats are to the batch stats (NaN stays NaN).
pub fn convergence(gap: f32) -> f32 {
    if gap.is_nan() {
        f32::NAN
    } else {
        1.0 - gap.clamp(0.0, 1.0)
    }
}

/// How far apart the running and the batch variances are, as the typical factor between them over the channels:
/// `exp(mean_c |ln(running_c / batch_c)|)` (1 = equal, 94 = 94 times apart either way), over channels where both
/// are finite and positive. Variances differ by factors, so a ratio reads better than a difference: a layer whose
/// running variance is still near its start of 1 while the batch's is 0.01 is "94×", not a dead 0 %.
pub fn var_ratio(l: &BnLayerSnapshot) -> Option<f32> {
    let logs: Vec<f64> = l
        .running_var
        .iter()
        .zip(&l.batch_var)
        .filter(|(r, b)| r.is_finite() && b.is_finite() && **r > 0.0 && **b > 0.0)
        .map(|(r, b)| (*r as f64 / *b as f64).ln().abs())
        .collect();
    if logs.is_empty() {
        return None;
    }
    Some((logs.iter().sum::<f64>() / logs.len() as f64).exp() as f32)
}

/// First visible row so that the selection stays in view, centred when it can be.
pub fn scroll_offset(selected: usize, len: usize, rows: usize) -> usize {
    if len <= rows || rows == 0 {
        return 0;
    }
    selected.saturating_sub(rows / 2).min(len - rows)
}

/// One layer's blame in the inspect view: its index in the layer list, its place `k` in forward order (1-based),
/// and the share of the running→batch loss gap closed by switching it alone, by switching the first `k` layers,
/// and by adding it to the first `k − 1` (`step`: what the list is sorted by). NaN: the two ends agree.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BlameRow {
    pub layer: usize,
    pub k: usize,
    pub alone: f32,
    pub prefix: f32,
    pub step: f32,
}

/// The inspect view (imported weights before any epoch: `--weights` at epoch 0, or a replayed `inspect` log) with
/// a blame: every blamed layer, the largest step of the first-k curve first (NaN last, then forward order).
pub fn blame_rows(store: &Store) -> Option<Vec<BlameRow>> {
    let r = store.inspection.as_ref().filter(|_| store.latest.is_none())?;
    if r.blame.is_empty() {
        return None;
    }
    let names: Vec<&str> = match (&store.bn, &store.info) {
        (Some(bn), _) => bn.layers.iter().map(|l| l.name.as_str()).collect(),
        (None, Some(info)) => info.bn_layers.iter().map(|l| l.name.as_str()).collect(),
        _ => return None,
    };
    let printable = |s: &str| crate::terminal::printable(s).into_owned();
    let mut before = 0f32;
    let mut rows: Vec<BlameRow> = Vec::new();
    for (k, b) in r.blame.iter().enumerate() {
        let prefix = b.prefix.loss_share;
        let step = prefix - if k == 0 { 0.0 } else { before };
        before = prefix;
        let name = printable(&b.name);
        if let Some(layer) = names.iter().position(|n| *n == name) {
            rows.push(BlameRow {
                layer,
                k: k + 1,
                alone: b.alone.loss_share,
                prefix,
                step,
            });
        }
    }
    let key = |r: &BlameRow| if r.step.is_nan() { f32::NEG_INFINITY } else { r.step };
    rows.sort_by(|a, b| key(b).total_cmp(&key(a)).then(a.k.cmp(&b.k)));
    Some(rows)
}

/// The layer list's rows as layer indices: by blame in the inspect view (layers without a blame after, in their
/// order), else in the layers' own order.
pub fn layer_order(store: &Store) -> Vec<usize> {
    let n = store.layer_count();
    let Some(rows) = blame_rows(store) else {
        return (0..n).collect();
    };
    let mut order: Vec<usize> = rows.iter().map(|r| r.layer).filter(|&i| i < n).collect();
    let mut seen = vec![false; n];
    order.retain(|&i| !std::mem::replace(&mut seen[i], true));
    order.extend((0..n).filter(|&i| !seen[i]));
    order
}
