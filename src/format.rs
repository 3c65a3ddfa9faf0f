//! Number formatting for every front end (the TUI, the headless lines, replay and watch, start-up messages), so
//! that a figure reads the same wherever it is printed; it never prints garbage for NaN or infinities. Below
//! everything that prints: it imports nothing from bnscope.

/// `NaN`, `Inf` or `-Inf` for non-finite values.
pub fn non_finite(v: f64) -> Option<&'static str> {
    if v.is_nan() {
        Some("NaN")
    } else if v == f64::INFINITY {
        Some("Inf")
    } else if v == f64::NEG_INFINITY {
        Some("-Inf")
    } else {
        None
    }
}

/// An accuracy or probability: `0.333`.
pub fn acc(v: f32) -> String {
    non_finite(v as f64).map_or_else(|| format!("{v:.3}"), str::to_string)
}

/// What the screen says where a log lacks a number or a panel's data (never 0, never an empty bar).
pub const MISSING: &str = "not in this log";

/// An accuracy that a log may lack: `0.333` or "not in this log".
pub fn acc_or_missing(v: Option<f32>) -> String {
    v.map_or_else(|| MISSING.to_string(), acc)
}

/// A probability in a table cell: `0.98`.
pub fn prob(v: f32) -> String {
    non_finite(v as f64).map_or_else(|| format!("{v:.2}"), str::to_string)
}

/// A loss: `1.099` when in `[0.01, 1000)`, else `1.0e-4`.
pub fn loss(v: f32) -> String {
    if let Some(s) = non_finite(v as f64) {
        return s.to_string();
    }
    let a = v.abs();
    if a == 0.0 || (0.01..1000.0).contains(&a) {
        format!("{v:.3}")
    } else {
        format!("{v:.1e}")
    }
}

/// A momentum without trailing zeros: `0.99`, `0`, `0.9999`.
/// A pace as the header and the status line show it: `pace 20 epochs/s`.
pub fn pace(p: f64) -> String {
    format!("pace {} epoch{}/s", momentum(p), if p == 1.0 { "" } else { "s" })
}

/// `N batches`, `1 batch`.
pub fn batches(t: u64) -> String {
    format!("{t} batch{}", if t == 1 { "" } else { "es" })
}

/// What the running statistics are in cumulative mode (PyTorch `momentum=None`: update t weighs 1/t, t counting
/// every update since the last reset): the plain mean of the t batches when nothing of the start is left (cumulative
/// since the reset), else not a mean: after a switch mid-run the earlier updates' average, start included, keeps
/// the weight (t−1)/t. Returns (long, short); `start` is the weight still on the start (0, 1).
pub fn cumulative_words(t: u64, start: f64) -> (String, String) {
    if start <= 1e-12 {
        return (
            format!("running stats = mean of {}", batches(t)),
            format!("mean of {}", batches(t)),
        );
    }
    let left = percent(start);
    (
        format!("update t weighs 1/t (t={t} since the reset, not a mean after a switch): {left} still the start"),
        format!("1/t per update, {left} still the start"),
    )
}

pub fn momentum(m: f64) -> String {
    if let Some(s) = non_finite(m) {
        return s.to_string();
    }
    let s = format!("{m:.6}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s.is_empty() || s == "-" {
        "0".to_string()
    } else {
        s.to_string()
    }
}

/// A percentage of a fraction in `[0, 1]`: `4.9%` (no space, so that word wrap keeps it whole), keeping digits that matter near 100 %.
pub fn percent(frac: f64) -> String {
    if let Some(s) = non_finite(frac) {
        return s.to_string();
    }
    let p = frac * 100.0;
    if frac >= 1.0 {
        "100%".to_string()
    } else if 1.0 - frac < 5e-6 {
        ">99.999%".to_string()
    } else if 1.0 - frac < 0.001 {
        format!("{p:.3}%")
    } else if 1.0 - frac < 0.01 {
        format!("{p:.2}%")
    } else {
        format!("{p:.1}%")
    }
}

/// A value squeezed into about 5 columns: `0.41`, `-0.22`, `12.3`, `1234`, `2e5`.
pub fn compact(v: f32) -> String {
    if let Some(s) = non_finite(v as f64) {
        return s.to_string();
    }
    let a = v.abs();
    if a < 0.005 {
        "0.00".to_string()
    } else if a < 10.0 {
        format!("{v:.2}")
    } else if a < 100.0 {
        format!("{v:.1}")
    } else if a < 10000.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.0e}")
    }
}

/// `s` cut to `width` columns (by chars; our names are ASCII), ending in `ellipsis` when cut.
pub fn truncate(s: &str, width: usize, ellipsis: &str) -> String {
    let n = s.chars().count();
    if n <= width {
        return s.to_string();
    }
    let e = ellipsis.chars().count();
    if width <= e {
        return s.chars().take(width).collect();
    }
    let mut out: String = s.chars().take(width - e).collect();
    out.push_str(ellipsis);
    out
}

/// Formats a momentum in both conventions: `m 0.99 (torch 0.01)` or `m cumulative`.
pub fn momentum_label(m: f64, cumulative: bool) -> String {
    if cumulative {
        "m cumulative".into()
    } else {
        // torch = 1 − keras (`protocol::keras_to_torch`, written out here: this module imports nothing).
        format!("m {} (torch {})", momentum(m), momentum(1.0 - m))
    }
}

/// A loss in the headless, replay and watch lines: 4 decimals (`1.0986`), `1.0e-4` outside [1e-3, 1e4), `NaN`/`inf` spelled out.
pub fn line_loss(x: f32) -> String {
    if !x.is_finite() {
        return format!("{x}");
    }
    if x != 0.0 && (x.abs() < 1e-3 || x.abs() >= 1e4) {
        format!("{x:.1e}")
    } else {
        format!("{x:.4}")
    }
}

/// `512 MiB`, `2.8 GiB`, `3.0 KiB`.
pub fn human_bytes(b: u64) -> String {
    const K: f64 = 1024.0;
    let f = b as f64;
    if f >= K * K * K {
        format!("{:.1} GiB", f / (K * K * K))
    } else if f >= K * K {
        let m = f / (K * K);
        if m.fract() == 0.0 {
            format!("{m:.0} MiB")
        } else {
            format!("{m:.1} MiB")
        }
    } else if f >= K {
        format!("{:.1} KiB", f / K)
    } else {
        format!("{b} B")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(acc(f32::NAN), "NaN");
        assert_eq!(pace(1.0), "pace 1 epoch/s");
        assert_eq!(pace(7.0), "pace 7 epochs/s");
        assert_eq!(cumulative_words(1, 0.0).1, "mean of 1 batch");
        // n n n u n at momentum 0.9: 0.9³ · 3/4 of the start is left; four updates are not a mean of four.
        let (long, short) = cumulative_words(4, 0.729 * 0.75);
        assert!(!long.contains("mean of"), "{long}");
        assert_eq!(short, "1/t per update, 54.7% still the start");
        assert_eq!(acc(1.0 / 3.0), "0.333");
        assert_eq!(loss(1e-4), "1.0e-4");
        assert_eq!(loss(1.0986), "1.099");
        assert_eq!(loss(f32::INFINITY), "Inf");
        assert_eq!(momentum(0.99), "0.99");
        assert_eq!(momentum(1.0 - 0.99), "0.01");
        assert_eq!(momentum(0.0), "0");
        assert_eq!(momentum(0.9999), "0.9999");
        assert_eq!(percent(0.0490099501), "4.9%");
        assert_eq!(percent(0.9995), "99.950%");
        assert_eq!(percent(1.0 - 0.99f64.powi(1418)), ">99.999%");
        assert_eq!(compact(-0.2234), "-0.22");
        assert_eq!(compact(1234.4), "1234");
        assert_eq!(truncate("layer1.0.downsample.1", 10, "…"), "layer1.0.…");
    }
}
