//! BatchNorm layers: one row per layer with two convergence gauges, and the selected layer's channels.
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Widget;

use crate::protocol::BnLayerSnapshot;

use super::{panel, put, title_span};
use crate::format as fmt;
use crate::tui::app::{App, Focus};
use crate::tui::gauges::{blame_rows, convergence, layer_order, scroll_offset, var_ratio, BlameRow};
use crate::tui::theme::{Theme, Tone};

/// A convergence gauge: a bar coloured red→green and ` 95 %` (or `NaN`, or `–` without data).
/// Takes `width` cells: the bar gets `width − 6`.
pub struct ConvergenceGauge<'a> {
    pub theme: &'a Theme,
    /// `None`: no snapshot yet; `Some(None)`: not in this log.
    pub value: Option<Option<f32>>,
}

impl Widget for ConvergenceGauge<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let th = self.theme;
        let (text, frac, style) = match self.value {
            None => ("–".to_string(), 0.0, th.dim()),
            Some(None) => (NOT_IN_LOG.to_string(), 0.0, th.dim()),
            Some(Some(v)) if !v.is_finite() => ("NaN".to_string(), 0.0, th.tone(Tone::Bad)),
            Some(Some(v)) => {
                let v = v.clamp(0.0, 1.0);
                (format!("{:.0} %", v * 100.0), v, th.ramp(v))
            }
        };
        bar(th, area, buf, frac, style, &text);
    }
}

/// A gauge's text where the log lacks its data (the panel's title explains it: "n/a: not in this log").
pub const NOT_IN_LOG: &str = "n/a";

/// `12×`, `1.3×`, `2e3×`.
pub fn ratio_text(r: f32) -> String {
    if !r.is_finite() {
        "NaN".to_string()
    } else if r < 9.95 {
        format!("{r:.1}×")
    } else if r < 999.5 {
        format!("{r:.0}×")
    } else {
        format!("{r:.0e}×")
    }
}

/// A variance gauge: full at 1× (equal), empty at 100× apart or more, on a log scale (10× is half), with the factor.
pub struct RatioGauge<'a> {
    pub theme: &'a Theme,
    /// `None`: no snapshot yet; `Some(None)`: not in this log; NaN: no finite pair.
    pub ratio: Option<Option<f32>>,
}

impl Widget for RatioGauge<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let th = self.theme;
        let (text, frac, style) = match self.ratio {
            None => ("–".to_string(), 0.0, th.dim()),
            Some(None) => (NOT_IN_LOG.to_string(), 0.0, th.dim()),
            Some(Some(r)) if !r.is_finite() => ("NaN".to_string(), 0.0, th.tone(Tone::Bad)),
            Some(Some(r)) => {
                let f = (1.0 - r.max(1.0).log10() / 2.0).clamp(0.0, 1.0);
                (ratio_text(r).replace('×', th.times()), f, th.ramp(f))
            }
        };
        bar(th, area, buf, frac, style, &text);
    }
}

/// A gauge bar of `frac` in `area` with `text` right-aligned in its last 6 cells.
fn bar(th: &Theme, area: Rect, buf: &mut Buffer, frac: f32, style: ratatui::style::Style, text: &str) {
    if area.width == 0 || area.height == 0 {
        return;
    }
    let text_w = 6.min(area.width);
    let bar_w = area.width - text_w;
    let y = area.y;
    let text = format!("{text:>w$}", w = text_w as usize);
    let eighths = (frac * bar_w as f32 * 8.0).round() as usize;
    let full = eighths / 8;
    let part = eighths % 8;
    for i in 0..bar_w as usize {
        let (sym, st) = if i < full {
            (th.gauge_full(), style)
        } else if i == full && part > 0 {
            match th.gauge_partial(part) {
                Some(s) => (s, style),
                None => (th.gauge_empty(), th.dim()),
            }
        } else {
            (th.gauge_empty(), th.dim())
        };
        put(buf, area.x + i as u16, y, sym, st);
    }
    buf.set_stringn(area.x + bar_w, y, text, text_w as usize, style);
}

pub fn render(app: &App, area: Rect, buf: &mut Buffer) {
    let th = &app.theme;
    let names: Vec<&str> = match (&app.store.bn, &app.store.info) {
        (Some(bn), _) => bn.layers.iter().map(|l| l.name.as_str()).collect(),
        (None, Some(info)) => info.bn_layers.iter().map(|l| l.name.as_str()).collect(),
        _ => Vec::new(),
    };
    let n = names.len();
    let no_running = app.store.norm_without_running();
    let mut title = vec![match no_running {
        Some(kind) => title_span(th, format!("{kind} layers ({n})")),
        None => title_span(th, format!("BatchNorm layers ({n})")),
    }];
    if no_running.is_some() {
        title.push(Span::styled(
            format!("{}no running statistics ", th.sep().trim_start()),
            th.dim(),
        ));
    }
    // A log: what it lacks, and how far the ranks are apart.
    let spread = app.rank_spread();
    if app.store.from_log {
        let lacks = match &app.store.bn {
            None if n > 0 => Some("no BatchNorm record at this epoch: not in this log"),
            Some(_) if (0..n).any(|i| app.store.mean_gap(i) == Some(None) || app.store.var_gap(i) == Some(None)) => {
                Some("n/a: not in this log")
            }
            _ => None,
        };
        if let Some(l) = lacks {
            title.push(Span::styled(format!("{}{l} ", th.sep().trim_start()), th.dim()));
        }
        if let Some((e, s)) = &spread {
            if let Some((worst, _)) = s.first() {
                let tone = if *worst > crate::logfile::RANK_SPREAD_WARN {
                    th.tone(Tone::Warn)
                } else {
                    th.dim()
                };
                title.push(Span::styled(
                    format!(
                        "{}ranks ≤{:.1}% apart (epoch {e}) ",
                        th.sep().trim_start(),
                        100.0 * worst
                    ),
                    tone,
                ));
            }
        }
    }
    // The BatchNorm profile the run follows (`--framework`): whose ε and which variance the running one tracks.
    if let Some(info) = &app.store.info {
        let fw = match info.framework.as_str() {
            "keras" => "Keras",
            "torch" => "PyTorch",
            other => other,
        };
        // A log without ε leaves it out.
        let eps = if info.bn_eps.is_finite() {
            format!("{} {:e}, ", if th.ascii { "eps" } else { "ε" }, info.bn_eps)
        } else {
            String::new()
        };
        title.push(Span::styled(
            format!("{}{fw} BN: {eps}{} var ", th.sep().trim_start(), info.bn_variance),
            th.dim(),
        ));
    }
    // The inspect view: rows by blame (see `gauges::blame_rows`), with the blame instead of the gauges.
    let blame = blame_rows(&app.store);
    if blame.is_some() {
        title.insert(
            1,
            Span::styled(
                format!("{}by blame (b: loss gap share) ", th.sep().trim_start()),
                th.key(),
            ),
        );
    }
    let order = layer_order(&app.store);
    let inner_rows = area.height.saturating_sub(3) as usize;
    let at = order.iter().position(|&i| i == app.selected).unwrap_or(0);
    let offset = scroll_offset(at, n, inner_rows);
    let right = (n > inner_rows && inner_rows > 0).then(|| {
        format!(
            " {}{}{} of {n} ",
            offset + 1,
            if th.ascii { "-" } else { "–" },
            offset + inner_rows
        )
    });
    let room = (area.width as usize).saturating_sub(3 + right.as_ref().map_or(0, |r| r.chars().count()));
    let mut block = panel(th, super::fit_title(title, room));
    if let Some(right) = right {
        block = block.title(Line::from(Span::styled(right, th.dim())).right_aligned());
    }
    let inner = block.inner(area);
    block.render(area, buf);
    if inner.height == 0 {
        return;
    }
    if n == 0 {
        buf.set_stringn(
            inner.x + 2,
            inner.y,
            "waiting for the trainer…",
            inner.width as usize,
            th.dim(),
        );
        return;
    }
    let longest = names.iter().map(|s| s.chars().count()).max().unwrap_or(5);
    let name_w = longest.clamp(10, 22) as u16;
    // Rank logs: a column for how far the ranks' running means are apart, per layer.
    let rank_w: u16 = if spread.is_some() { 8 } else { 0 };
    // "▶ " + name + " " + gauge + "  " + gauge [+ " ranks"]
    let gauges_w = inner.width.saturating_sub(2 + name_w + 1 + 2 + rank_w);
    let gauge_w = (gauges_w / 2).max(7);
    let xg1 = inner.x + 2 + name_w + 1;
    let xg2 = xg1 + gauge_w + 2;
    buf.set_stringn(inner.x + 2, inner.y, "layer", name_w as usize, th.label());
    // Mean: how close (1 − ‖running − batch‖/‖batch‖); variance: how many times apart (see `var_ratio`).
    let (mean_h, var_h) = if gauge_w >= 17 {
        ("mean: how close", "var: times apart")
    } else {
        ("mean close", "var apart")
    };
    // Without the per-channel arrays (bnscope's summary logs) the variance gauge shows the log's variance gap.
    let var_close = app.store.bn.as_ref().is_some_and(|b| {
        b.layers
            .iter()
            .all(|l| l.running_var.is_empty() || l.batch_var.is_empty())
    });
    let var_h = match (var_close, gauge_w >= 17) {
        (true, true) => "var: how close",
        (true, false) => "var close",
        _ => var_h,
    };
    let (mean_h, var_h) = match (&blame, gauge_w >= 17) {
        (Some(_), true) => ("b alone (only it)", "b first k (to it)"),
        (Some(_), false) => ("b alone", "b first k"),
        (None, _) => (mean_h, var_h),
    };
    buf.set_stringn(xg1, inner.y, mean_h, gauge_w as usize, th.label());
    buf.set_stringn(xg2, inner.y, var_h, gauge_w as usize, th.label());
    let xr = xg2 + gauge_w + 1;
    if rank_w > 0 {
        buf.set_stringn(xr, inner.y, "ranks", rank_w as usize, th.label());
    }
    let no_batch = app.store.no_batch_yet();
    for (row, pos) in (offset..n).take(inner_rows).enumerate() {
        let i = order.get(pos).copied().unwrap_or(pos);
        let y = inner.y + 1 + row as u16;
        let selected = i == app.selected;
        let line_area = Rect::new(inner.x, y, inner.width, 1);
        if selected {
            buf.set_style(line_area, th.selected());
            buf.set_string(inner.x, y, th.pointer(), th.selected());
        }
        let name = fmt::truncate(names[i], name_w as usize, th.ellipsis());
        let name_style = if selected { th.selected() } else { th.text() };
        buf.set_stringn(inner.x + 2, y, name, name_w as usize, name_style);
        let layer = app.store.bn.as_ref().and_then(|b| b.layers.get(i));
        // Nothing to compare: no running statistics (GroupNorm), or no batch yet (a restart): words, not NaN.
        let nothing = match no_running {
            Some(_) if gauges_w > 40 => Some("no running stats: normalised per image"),
            Some(_) => Some("no running statistics"),
            None if no_batch && gauges_w > 40 => Some("no batch yet (n or space runs one)"),
            None if no_batch => Some("no batch yet"),
            None => None,
        };
        if let Some(words) = nothing {
            buf.set_stringn(xg1, y, words, inner.right().saturating_sub(xg1) as usize, th.dim());
            continue;
        }
        if let Some(rows) = &blame {
            let b = rows.iter().find(|r| r.layer == i);
            let var_w = gauge_w.min(inner.right().saturating_sub(xg2));
            blame_cells(th, buf, b, (xg1, xg2, y), (gauge_w, var_w));
            continue;
        }
        ConvergenceGauge {
            theme: th,
            value: app.store.mean_gap(i).map(|g| g.map(convergence)),
        }
        .render(Rect::new(xg1, y, gauge_w, 1), buf);
        let var_area = Rect::new(xg2, y, gauge_w.min(inner.right().saturating_sub(xg2)), 1);
        let arrays = layer.is_some_and(|l| !l.running_var.is_empty() && !l.batch_var.is_empty());
        if var_close || (layer.is_some() && !arrays) {
            // The log's variance gap (no arrays to take the ratio of).
            ConvergenceGauge {
                theme: th,
                value: app.store.var_gap(i).map(|g| g.map(convergence)),
            }
            .render(var_area, buf);
        } else {
            RatioGauge {
                theme: th,
                ratio: layer.map(|l| Some(var_ratio(l).unwrap_or(f32::NAN))),
            }
            .render(var_area, buf);
        }
        if let Some((_, s)) = &spread {
            let text = s
                .iter()
                .find(|(_, n)| *n == names[i])
                .map_or("–".to_string(), |(v, _)| format!("{:.1}%", 100.0 * v));
            let style = if s
                .iter()
                .any(|(v, n)| *n == names[i] && *v > crate::logfile::RANK_SPREAD_WARN)
            {
                th.tone(Tone::Warn)
            } else {
                th.dim()
            };
            buf.set_stringn(xr, y, format!("{text:>7}"), rank_w as usize, style);
        }
    }
}

/// One row of the inspect view: the share of the loss gap closed by the layer alone, and by the first k layers up to
/// it (` 5 ▇▇▇░ 73 %`: k, then the share), as bars (shares outside 0..1 are written as they are, the bar clamped).
fn blame_cells(th: &Theme, buf: &mut Buffer, b: Option<&BlameRow>, (x1, x2, y): (u16, u16, u16), (w1, w2): (u16, u16)) {
    let Some(b) = b else {
        buf.set_stringn(x1, y, "not blamed (not reached)", (w1 + w2 + 2) as usize, th.dim());
        return;
    };
    let cell = |v: f32| -> (String, f32, ratatui::style::Style) {
        if v.is_finite() {
            (
                format!("{:.0} %", v * 100.0),
                v.clamp(0.0, 1.0),
                th.ramp(1.0 - v.clamp(0.0, 1.0)),
            )
        } else {
            ("–".to_string(), 0.0, th.dim())
        }
    };
    let (text, frac, style) = cell(b.alone);
    bar(th, Rect::new(x1, y, w1, 1), buf, frac, style, &text);
    let k = format!("{:>2} ", b.k);
    buf.set_stringn(x2, y, &k, w2 as usize, th.dim());
    let kw = (k.len() as u16).min(w2);
    let (text, frac, style) = cell(b.prefix);
    bar(th, Rect::new(x2 + kw, y, w2 - kw, 1), buf, frac, style, &text);
}

/// Draws `running` and `batch` markers on a `width`-cell axis spanning `[lo, hi]`.
#[allow(clippy::too_many_arguments)]
fn dot_plot(th: &Theme, buf: &mut Buffer, x: u16, y: u16, width: u16, (lo, hi): (f32, f32), running: f32, batch: f32) {
    if width == 0 {
        return;
    }
    let col = |v: f32| -> Option<u16> {
        if !v.is_finite() || hi <= lo {
            return None;
        }
        let f = ((v - lo) / (hi - lo)).clamp(0.0, 1.0);
        Some((f * (width - 1) as f32).round() as u16)
    };
    for i in 0..width {
        put(buf, x + i, y, th.dot(), th.dim());
    }
    if lo < 0.0 && hi > 0.0 {
        if let Some(z) = col(0.0) {
            put(buf, x + z, y, th.axis(), th.dim());
        }
    }
    let (rm, bm, both) = th.markers();
    match (col(running), col(batch)) {
        (Some(r), Some(b)) if r == b => put(buf, x + r, y, both, th.strong()),
        (r, b) => {
            if let Some(b) = b {
                put(buf, x + b, y, bm, th.batch());
            }
            if let Some(r) = r {
                put(buf, x + r, y, rm, th.running());
            }
        }
    }
}

fn range(values: impl Iterator<Item = f32>, symmetric: bool) -> (f32, f32) {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    if symmetric {
        let m = lo.abs().max(hi.abs()).max(1e-6);
        (-m, m)
    } else {
        (lo.min(0.0), hi.max(1e-6))
    }
}

/// The selected layer's channels: running vs batch mean and variance.
pub fn render_detail(app: &App, area: Rect, buf: &mut Buffer) {
    let th = &app.theme;
    let layer: Option<&BnLayerSnapshot> = app.store.bn.as_ref().and_then(|b| b.layers.get(app.selected));
    let name = layer.map(|l| l.name.clone()).or_else(|| {
        app.store
            .info
            .as_ref()
            .and_then(|i| i.bn_layers.get(app.selected))
            .map(|l| l.name.clone())
    });
    // A log's layer without arrays: its channels from the run record.
    let channels = match layer.map(|l| l.running_mean.len()) {
        Some(0) if app.store.from_log => app
            .store
            .info
            .as_ref()
            .and_then(|i| i.bn_layers.get(app.selected))
            .map(|l| l.channels)
            .filter(|&c| c > 0),
        other => other,
    };
    let title = match (&name, channels) {
        (Some(n), Some(c)) => format!("{n} · {c} channels"),
        (Some(n), None) => n.clone(),
        _ => "channels".to_string(),
    }
    .replace(" · ", th.sep());
    let mut block = panel(th, title_span(th, title));
    if app.focus == Focus::Channels {
        block = block.title(Span::styled(format!("{} arrows ", th.pointer()), th.key()));
    }
    let inner = block.inner(area);
    block.render(area, buf);
    if inner.height == 0 {
        return;
    }
    if let Some(norm) = app.store.norm_without_running() {
        let lines = [
            format!("{norm}: no running statistics."),
            "Each image is normalised by its own statistics,".to_string(),
            "in training and evaluation alike: nothing goes stale.".to_string(),
        ];
        for (i, text) in lines.iter().enumerate().take(inner.height as usize) {
            buf.set_stringn(inner.x + 1, inner.y + i as u16, text, inner.width as usize, th.dim());
        }
        return;
    }
    let Some(l) = layer else {
        let words = if app.store.from_log {
            "BatchNorm statistics at this epoch: not in this log"
        } else {
            "no BatchNorm snapshot yet"
        };
        buf.set_stringn(inner.x + 1, inner.y, words, inner.width as usize, th.dim());
        return;
    };
    if l.running_mean.is_empty() {
        // A log without the per-channel arrays at this epoch (bnscope's default summary, or a writer asked for less).
        let words = if app.store.from_log {
            "per-channel statistics: not in this log at this epoch"
        } else {
            "no per-channel statistics"
        };
        buf.set_stringn(inner.x + 1, inner.y, words, inner.width as usize, th.dim());
        let gap = |what: &str, g: Option<Option<f32>>| match g {
            Some(Some(v)) if v.is_finite() => format!("{what} {:.0}% off", v * 100.0),
            Some(Some(_)) => format!("{what} NaN"),
            _ => format!("{what} gap {}", fmt::MISSING),
        };
        if app.store.from_log && inner.height > 1 {
            buf.set_stringn(
                inner.x + 1,
                inner.y + 1,
                "(bnscope writes them with --log-bn full)",
                inner.width as usize,
                th.dim(),
            );
        }
        if inner.height > 3 {
            buf.set_stringn(
                inner.x + 1,
                inner.y + 3,
                format!(
                    "running vs batch: {}{}{}",
                    gap("mean", app.store.mean_gap(app.selected)),
                    th.sep(),
                    gap("var", app.store.var_gap(app.selected))
                ),
                inner.width as usize,
                th.label(),
            );
        }
        return;
    }
    let (rm, bm, _) = th.markers();
    let arrow = th.arrow();
    // ch(3) sp mean-plot sp "rrrrr→bbbbb"(10+arrow) sp sp var-plot sp "rrrrr→bbbbb"
    let nums_w = 10 + arrow.chars().count() as u16;
    let plot_w = inner.width.saturating_sub(3 + 1 + 1 + nums_w + 2 + 1 + nums_w) / 2;
    let x_mean = inner.x + 4;
    let x_mean_nums = x_mean + plot_w + 1;
    let x_var = x_mean_nums + nums_w + 2;
    let x_var_nums = x_var + plot_w + 1;
    // Column headings in the room each column has (long, else short), never running into each other.
    let mean_room = x_var.saturating_sub(inner.x + 1).min(inner.width) as usize;
    let (run_w, batch_w) = if mean_room >= 30 {
        ("running", "batch")
    } else {
        ("run", "bat")
    };
    let head = Line::from(vec![
        Span::styled("ch  ", th.label()),
        Span::styled(format!("mean: {run_w} {rm}"), th.running()),
        Span::styled(format!(" vs {batch_w} {bm}"), th.batch()),
    ]);
    head.render(Rect::new(inner.x, inner.y, mean_room as u16, 1), buf);
    if x_var < inner.right() {
        let room = (inner.right() - x_var) as usize;
        let long = format!("var: running {arrow} batch");
        let text = if long.chars().count() <= room {
            long
        } else {
            format!("var: run{arrow}batch")
        };
        buf.set_stringn(x_var, inner.y, text, room, th.label());
    }
    let mean_range = range(l.running_mean.iter().chain(&l.batch_mean).copied(), true);
    let var_range = range(l.running_var.iter().chain(&l.batch_var).copied(), false);
    let channels = l.running_mean.len();
    // Rows below the column header: the channels, then "… more" if cut, then the layer's gaps (last row).
    let rows = inner.height.saturating_sub(1) as usize;
    let shown = if channels + 2 <= rows {
        channels
    } else {
        rows.saturating_sub(2)
    };
    let get = |v: &Vec<f32>, c: usize| v.get(c).copied().unwrap_or(f32::NAN);
    // The list starts at the scroll position (Tab, then the arrows or the wheel), never past a full page.
    let first = app.channel_offset.min(channels - shown.min(channels));
    for (row, c) in (first..first + shown).enumerate() {
        let y = inner.y + 1 + row as u16;
        let (r_m, b_m) = (get(&l.running_mean, c), get(&l.batch_mean, c));
        let (r_v, b_v) = (get(&l.running_var, c), get(&l.batch_var, c));
        if app.marked_channel == Some((app.selected, c)) {
            // The channel `w` named: pointed at, the row highlighted.
            let num = if c < 100 {
                format!("{}{c:>2}", th.pointer())
            } else {
                format!("{c:>3}")
            };
            buf.set_style(Rect::new(inner.x, y, inner.width, 1), th.selected());
            buf.set_string(inner.x, y, num, th.selected());
        } else {
            buf.set_string(inner.x, y, format!("{c:>3}"), th.dim());
        }
        dot_plot(th, buf, x_mean, y, plot_w, mean_range, r_m, b_m);
        let no_batch = app.store.no_batch_yet();
        let nums = |r: f32, b: f32| {
            let b = if no_batch { "–".to_string() } else { fmt::compact(b) };
            format!("{:>5}{arrow}{:<5}", fmt::compact(r), b)
        };
        buf.set_stringn(x_mean_nums, y, nums(r_m, b_m), nums_w as usize, th.text());
        if x_var_nums + nums_w <= inner.right() {
            dot_plot(th, buf, x_var, y, plot_w, var_range, r_v, b_v);
            buf.set_stringn(x_var_nums, y, nums(r_v, b_v), nums_w as usize, th.text());
        }
    }
    let summary_y = inner.bottom().saturating_sub(1);
    if summary_y > inner.y + shown as u16 && app.store.no_batch_yet() {
        buf.set_stringn(
            inner.x,
            summary_y,
            "running vs batch: no batch yet (n or space runs one)",
            inner.width as usize,
            th.label(),
        );
    } else if summary_y > inner.y + shown as u16 {
        let off = if l.mean_gap.is_finite() {
            format!("{:.0}%", l.mean_gap * 100.0)
        } else {
            "NaN".to_string()
        };
        let var = var_ratio(l).map_or("–".to_string(), |r| ratio_text(r).replace('×', th.times()));
        buf.set_stringn(
            inner.x,
            summary_y,
            {
                let long = format!("running vs batch: mean {off} off{}var {var} apart", th.sep());
                if long.chars().count() <= inner.width as usize {
                    long
                } else {
                    format!("vs batch: mean {off} off{}var {var} apart", th.sep())
                }
            },
            inner.width as usize,
            th.label(),
        );
    }
    if shown < channels {
        let y = inner.y + 1 + shown as u16;
        // The channel `w` jumps to.
        let worst = app.worst_channel();
        let (d, last) = (th.dash(), first + shown - 1);
        let tab = if app.focus == Focus::Channels {
            ""
        } else {
            " (Tab scrolls)"
        };
        let far = worst.map_or(String::new(), |w| format!("; furthest: ch {w} (w)"));
        let short_far = worst.map_or(String::new(), |w| format!(", worst {w}"));
        let text = [
            format!("channels {first}{d}{last} of {channels}{tab}{far}"),
            format!("channels {first}{d}{last} of {channels}{far}"),
            format!("ch {first}{d}{last} of {channels}{short_far}"),
        ]
        .into_iter()
        .find(|t| t.chars().count() <= inner.width as usize)
        .unwrap_or_else(|| format!("ch {first}{d}{last} of {channels}"));
        buf.set_stringn(inner.x, y, text, inner.width as usize, th.dim());
    }
}
