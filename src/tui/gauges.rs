//! The layer gauges' arithmetic (data side, no drawing): how close the running statistics are to the batch's, the
//! variance ratio, and the layer list's scroll offset. `render/layers.rs` draws them; `input.rs` uses them for the
//! mouse and the "worst layer" key without importing a render module.
use crate::protocol::BnLayerSnapshot;

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
