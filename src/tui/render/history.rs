//! Accuracy and loss history: one-row sparklines on a shared time axis, with event marks.
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::Widget;

use crate::protocol::{EvalMode, Metric};

use super::super::app::{App, Point};
use super::super::fmt;
use super::super::theme::Theme;
use super::{panel, put, title_span};

const ACC_LABEL_W: u16 = 14;
const ACC_VALUE_W: u16 = 9;
const LOSS_LABEL_W: u16 = 14;
const LOSS_VALUE_W: u16 = 8;

/// The visible window: `(first point index in the deque, count, spark width)`.
struct Window {
    start: usize,
    count: usize,
    width: u16,
    /// Absolute index of column 0.
    abs0: u64,
}

fn window(app: &App, width: u16) -> Window {
    let h = &app.history;
    let n = h.points.len();
    let mut count = n.min(width as usize);
    // Leave a column for a mark that waits for its first point.
    let pending = h.marks.back().is_some_and(|m| m.index >= h.next_index());
    if pending && count == width as usize && count > 0 {
        count -= 1;
    }
    let start = n - count;
    Window {
        start,
        count,
        width,
        abs0: h.first + start as u64,
    }
}

/// One curve of a panel: its label, colour, latest value and how to read it from a point.
struct Curve {
    label: &'static str,
    style: Style,
    latest: Option<Metric>,
    get: fn(&Point) -> Metric,
    headline: bool,
}

fn curves(app: &App) -> [Curve; 3] {
    let th = &app.theme;
    let latest = app.latest.as_ref();
    let head = app.eval_mode;
    [
        Curve {
            label: "train (batch)",
            style: th.train(),
            latest: latest.map(|m| m.train),
            get: |p| p.train,
            headline: false,
        },
        Curve {
            label: "eval running",
            style: th.running(),
            latest: latest.map(|m| m.eval_running),
            get: |p| p.running,
            headline: head == EvalMode::Running,
        },
        Curve {
            label: "eval batch",
            style: th.batch(),
            latest: latest.map(|m| m.eval_batch),
            get: |p| p.batch,
            headline: head == EvalMode::Batch,
        },
    ]
}

/// Draws one sparkline row at `(x, y)`: `level(point)` gives `Some(0..=1)` or `None` for NaN/Inf.
fn spark(
    app: &App,
    win: &Window,
    (x, y): (u16, u16),
    style: Style,
    level: impl Fn(&Point) -> Option<f32>,
    buf: &mut Buffer,
) {
    let th = &app.theme;
    let levels = th.spark_levels();
    for (j, p) in app.history.points.iter().skip(win.start).take(win.count).enumerate() {
        let (sym, st) = match level(p) {
            Some(v) => {
                let i = (v.clamp(0.0, 1.0) * (levels.len() - 1) as f32).round() as usize;
                (levels[i], style)
            }
            None => (th.nan_cell(), th.tone(super::super::theme::Tone::Bad)),
        };
        put(buf, x + j as u16, y, sym, st);
    }
}

/// The events row: a dot per epoch shown, and the marks.
fn events_row(th: &Theme, app: &App, win: &Window, x: u16, y: u16, buf: &mut Buffer) {
    for j in 0..win.count {
        put(buf, x + j as u16, y, th.dot(), th.dim());
    }
    // Marks that share a column move right (or, at the edge, left) to the nearest free one.
    let w = win.width as usize;
    let mut taken = vec![false; w];
    for m in &app.history.marks {
        if m.index < win.abs0 || m.index >= win.abs0 + w as u64 {
            continue;
        }
        let want = (m.index - win.abs0) as usize;
        let Some(col) = (want..w).chain((0..want).rev()).find(|&c| !taken[c]) else {
            break;
        };
        taken[col] = true;
        let mut s = [0u8; 4];
        put(buf, x + col as u16, y, m.symbol.encode_utf8(&mut s), th.mark());
    }
}

fn value_span<'a>(text: String, style: Style) -> Span<'a> {
    Span::styled(format!("{text:>6}"), style)
}

fn acc_level(v: f32) -> Option<f32> {
    v.is_finite().then_some(v)
}

/// Width of the sparkline area shared by both panels, so that their columns line up.
fn spark_width(acc: Rect, loss: Option<Rect>) -> u16 {
    let a = acc.width.saturating_sub(4 + ACC_LABEL_W + ACC_VALUE_W + 1);
    match loss {
        Some(l) => a.min(l.width.saturating_sub(4 + LOSS_LABEL_W + LOSS_VALUE_W + 1)),
        None => a,
    }
}

pub fn render(app: &App, acc_area: Rect, loss_area: Option<Rect>, buf: &mut Buffer) {
    let sw = spark_width(acc_area, loss_area);
    let win = window(app, sw);
    render_accuracy(app, acc_area, &win, buf);
    if let Some(l) = loss_area {
        render_loss(app, l, &win, buf);
    }
}

fn render_accuracy(app: &App, area: Rect, win: &Window, buf: &mut Buffer) {
    let th = &app.theme;
    let mut title = vec![title_span(th, "accuracy")];
    let sep = th.sep().trim_start();
    if let Some(m) = &app.latest {
        let gap = m.train.acc - m.eval_running.acc;
        let gap_s = if gap.is_finite() {
            format!("{gap:.3}")
        } else {
            "NaN".to_string()
        };
        title.push(Span::styled(
            format!("{sep}gap train{}eval running {gap_s} ", th.minus()),
            if gap.is_finite() && gap > 0.2 {
                th.tone(super::super::theme::Tone::Warn)
            } else {
                th.dim()
            },
        ));
    }
    let block = panel(th, Line::from(title));
    let inner = block.inner(area);
    block.render(area, buf);
    let xs = inner.x + ACC_LABEL_W;
    let xv = xs + win.width + 1;
    for (i, c) in curves(app).into_iter().enumerate() {
        let y = inner.y + i as u16;
        if y >= inner.bottom() {
            return;
        }
        let label_style = if c.headline { th.strong() } else { th.label() };
        buf.set_stringn(inner.x, y, c.label, ACC_LABEL_W as usize - 1, label_style);
        let get = c.get;
        spark(app, win, (xs, y), c.style, |p| acc_level(get(p).acc), buf);
        let mut spans = vec![value_span(c.latest.map_or("–".into(), |m| fmt::acc(m.acc)), c.style)];
        if c.headline {
            spans.push(Span::styled(format!(" {}", th.left_mark()), th.strong()));
        }
        Line::from(spans).render(Rect::new(xv, y, ACC_VALUE_W, 1), buf);
    }
    let y = inner.y + 3;
    if y < inner.bottom() {
        buf.set_stringn(inner.x, y, "events", ACC_LABEL_W as usize, th.label());
        events_row(th, app, win, xs, y, buf);
    }
    let y = inner.y + 4;
    if y < inner.bottom() && win.count > 0 {
        buf.set_stringn(inner.x, y, "epoch", ACC_LABEL_W as usize, th.dim());
        let pts = &app.history.points;
        let first = pts[win.start].epoch.to_string();
        let last = pts[win.start + win.count - 1].epoch.to_string();
        buf.set_string(xs, y, &first, th.dim());
        let lx = (xs + win.count as u16).saturating_sub(last.len() as u16);
        if lx > xs + first.len() as u16 {
            buf.set_string(lx, y, &last, th.dim());
        }
    }
}

fn render_loss(app: &App, area: Rect, win: &Window, buf: &mut Buffer) {
    let th = &app.theme;
    let block = panel(th, title_span(th, "loss (log scale)"));
    let inner = block.inner(area);
    block.render(area, buf);
    // One log scale for the three curves over the visible window.
    let visible = || app.history.points.iter().skip(win.start).take(win.count);
    let logs = visible()
        .flat_map(|p| [p.train.loss, p.running.loss, p.batch.loss])
        .filter(|l| l.is_finite())
        .map(|l| l.max(1e-8).log10());
    let (lo, hi) = logs.fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let level = move |l: f32| -> Option<f32> {
        if !l.is_finite() {
            return None;
        }
        if hi - lo < 1e-6 {
            return Some(0.5);
        }
        Some((l.max(1e-8).log10() - lo) / (hi - lo))
    };
    let xs = inner.x + LOSS_LABEL_W;
    let xv = xs + win.width + 1;
    for (i, c) in curves(app).into_iter().enumerate() {
        let y = inner.y + i as u16;
        if y >= inner.bottom() {
            return;
        }
        buf.set_stringn(inner.x, y, c.label, LOSS_LABEL_W as usize - 1, th.label());
        let get = c.get;
        spark(app, win, (xs, y), c.style, |p| level(get(p).loss), buf);
        let text = c.latest.map_or("–".into(), |m| fmt::loss(m.loss));
        buf.set_stringn(xv, y, format!("{text:>7}"), LOSS_VALUE_W as usize, c.style);
    }
    let y = inner.y + 3;
    if y < inner.bottom() {
        buf.set_stringn(inner.x, y, "events", LOSS_LABEL_W as usize, th.label());
        events_row(th, app, win, xs, y, buf);
    }
    let y = inner.y + 4;
    if y < inner.bottom() && lo.is_finite() {
        let text = format!(
            "range {} {} {}",
            fmt::loss(10f32.powf(lo)),
            th.arrow(),
            fmt::loss(10f32.powf(hi))
        );
        buf.set_stringn(inner.x, y, "scale", LOSS_LABEL_W as usize, th.dim());
        buf.set_stringn(xs, y, text, win.width as usize, th.dim());
    }
}
