//! Several logs of one run (ranks of a distributed run): how far their running means are apart.
use super::schema::BnLayer;

/// The running means of several logs by epoch, per file, per layer: what [`spread_at`] compares.
pub type RankMeans = std::collections::BTreeMap<u64, Vec<std::collections::BTreeMap<String, Vec<f64>>>>;

/// Adds one `bn` record of file `file` (of `files`) to `means`.
pub fn add_means(means: &mut RankMeans, file: usize, files: usize, epoch: u64, layers: &[BnLayer]) {
    let entry = means.entry(epoch).or_insert_with(|| vec![Default::default(); files]);
    if entry.len() < files {
        entry.resize(files, Default::default());
    }
    for l in layers {
        if let Some(m) = &l.running_mean {
            entry[file].insert(l.name.clone(), m.clone());
        }
    }
}

/// The spread of one epoch's running means across files: `[(spread, layer)]`, the largest first, with spread
/// `max_r ‖mean_r − mean_avg‖₂ / (‖mean_avg‖₂ + 1e-8)`. `None` unless every file has arrays.
pub fn spread_of(maps: &[std::collections::BTreeMap<String, Vec<f64>>]) -> Option<Vec<(f64, String)>> {
    if maps.len() < 2 || maps.iter().any(|m| m.is_empty()) {
        return None;
    }
    let mut spreads: Vec<(f64, String)> = Vec::new();
    for name in maps[0].keys() {
        let rows: Vec<&Vec<f64>> = maps.iter().filter_map(|m| m.get(name)).collect();
        if rows.len() != maps.len() || rows.iter().any(|r| r.len() != rows[0].len()) {
            continue;
        }
        let c = rows[0].len();
        let avg: Vec<f64> = (0..c)
            .map(|i| rows.iter().map(|r| r[i]).sum::<f64>() / rows.len() as f64)
            .collect();
        let norm = avg.iter().map(|v| v * v).sum::<f64>().sqrt();
        let worst = rows
            .iter()
            .map(|r| r.iter().zip(&avg).map(|(a, b)| (a - b).powi(2)).sum::<f64>().sqrt() / (norm + 1e-8))
            .fold(0.0f64, f64::max);
        spreads.push((worst, name.clone()));
    }
    spreads.sort_by(|a, b| b.0.total_cmp(&a.0));
    Some(spreads)
}

/// How far the ranks' running means are apart, per layer, at the newest epoch (at most `upto`) that every log
/// has arrays for: `(epoch, [(spread, layer)])`, the largest first. Without SyncBatchNorm every rank averages only
/// its own batches, and small per-GPU batches make them drift apart.
pub fn spread_at(means: &RankMeans, upto: Option<u64>) -> Option<(u64, Vec<(f64, String)>)> {
    means
        .range(..=upto.unwrap_or(u64::MAX))
        .rev()
        .find_map(|(epoch, maps)| Some((*epoch, spread_of(maps)?)))
}

/// The means of one `bn` record's layers, by name.
pub fn means_of(layers: &[BnLayer]) -> std::collections::BTreeMap<String, Vec<f64>> {
    layers
        .iter()
        .filter_map(|l| Some((l.name.clone(), l.running_mean.clone()?)))
        .collect()
}

/// Above this spread (1 %) the ranks' running statistics count as apart.
pub const RANK_SPREAD_WARN: f64 = 0.01;

/// Why ranks drift apart and what helps (headless replay and the TUI's diagnosis).
pub const RANK_ADVICE: &str = "each GPU averages only its own batches (no SyncBatchNorm), and evaluation depends \
     on which rank's statistics are saved; use SyncBatchNorm or larger per-GPU batches, or recalibrate after training";

/// The rank spread at `epoch` as lines (headless replay).
pub fn spread_lines(found: Option<(u64, Vec<(f64, String)>)>) -> Vec<String> {
    let Some((epoch, spreads)) = found else {
        return vec!["ranks: the logs have no per-channel running statistics to compare (log them in full)".into()];
    };
    let mut out = vec![format!(
        "ranks at epoch {epoch}: running means {} apart at most ({} layers compared)",
        spreads
            .first()
            .map_or("–".to_string(), |(s, n)| format!("{:.1}% ({n})", 100.0 * s)),
        spreads.len()
    )];
    for (s, n) in spreads.iter().take(3) {
        out.push(format!("  {n}: {:.1}%", 100.0 * s));
    }
    if spreads.first().is_some_and(|(s, _)| *s > RANK_SPREAD_WARN) {
        out.push(format!("  the ranks' running statistics differ: {RANK_ADVICE}"));
    }
    out
}
