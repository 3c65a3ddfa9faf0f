//! `bnscope inspect`'s readable report (the numbers come from `crate::trainer`'s `Trainer::inspect`; `--json`
//! prints the [`Inspection`] itself).
use std::fmt::Write;

use crate::protocol::{InspectPass, Inspection};

/// Layers listed in the report (largest gap first); `--json` has them all.
const SHOWN_LAYERS: usize = 12;

/// The report as text, ending in a newline.
pub fn report(r: &Inspection) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{} on {} images, {} classes ({})",
        r.model,
        r.images.len(),
        r.classes.len(),
        r.classes.join(", ")
    );
    let _ = writeln!(s);
    let _ = writeln!(s, "                               loss     acc");
    let row = |s: &mut String, what: &str, p: &InspectPass| {
        let _ = writeln!(s, "  {what:<27} {:>7.4}  {:>5.1} %", p.loss, 100.0 * p.acc);
    };
    row(&mut s, "eval, running statistics", &r.eval_running);
    row(&mut s, "eval, batch statistics", &r.eval_batch);
    row(&mut s, "eval, recalibrated (AdaBN)", &r.recalibrated);
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "BatchNorm layers, running statistics vs this data's (relative L2 gap), largest first:"
    );
    let width = r.layers.iter().map(|l| l.name.len()).max().unwrap_or(4).max(5);
    let _ = writeln!(s, "  {:<width$}  mean gap   var gap", "layer");
    for l in r.layers.iter().take(SHOWN_LAYERS) {
        let _ = writeln!(s, "  {:<width$}  {:>8}  {:>8}", l.name, gap(l.mean_gap), gap(l.var_gap));
    }
    if r.layers.len() > SHOWN_LAYERS {
        let _ = writeln!(s, "  … {} more (--json lists them all)", r.layers.len() - SHOWN_LAYERS);
    }
    if !r.blame.is_empty() {
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "Which layer to blame (blame on {} of {} images): evaluation with running statistics but the layer alone, or \
             the first k layers, on batch statistics; the share of the running→batch loss gap it closes:",
            r.blame_samples,
            r.images.len()
        );
        let width = r.blame.iter().map(|l| l.name.len()).max().unwrap_or(5).max(5);
        let _ = writeln!(
            s,
            "  {:<width$}  alone: loss  share    acc   first k: loss  share    acc",
            "layer"
        );
        let share = |v: f32| {
            if v.is_finite() {
                format!("{:>5.0}%", 100.0 * v)
            } else {
                "     –".to_string()
            }
        };
        let shown = r.blame.len().min(SHOWN_BLAME);
        for b in r.blame.iter().take(shown) {
            let _ = writeln!(
                s,
                "  {:<width$}  {:>11.4} {} {:>5.1}%  {:>13.4} {} {:>5.1}%",
                b.name,
                b.alone.loss,
                share(b.alone.loss_share),
                100.0 * b.alone.acc,
                b.prefix.loss,
                share(b.prefix.loss_share),
                100.0 * b.prefix.acc
            );
        }
        if r.blame.len() > shown {
            let _ = writeln!(s, "  … {} more (--json lists them all)", r.blame.len() - shown);
        }
    }
    let _ = writeln!(s);
    let _ = writeln!(s, "Diagnosis:");
    for f in &r.findings {
        let _ = writeln!(s, "  • {f}");
    }
    s
}

/// Layers the readable report lists in the blame table (forward order).
const SHOWN_BLAME: usize = 60;

fn gap(v: f32) -> String {
    if v.is_finite() {
        format!("{v:.3}")
    } else {
        "NaN/Inf".into()
    }
}
