//! Accuracy and loss history: one-row sparklines on a shared time axis, with event marks. The whole bounded
//! history is shown, several epochs per column once it outgrows the width (see `Window` and `Aggregate`).
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::Widget;

use crate::protocol::{EvalMode, EvalOn};

use super::{panel, put, title_span};
use crate::format as fmt;
use crate::tui::app::App;
use crate::tui::store::{Point, Val};
use crate::tui::theme::Theme;

const ACC_LABEL_W: u16 = 14;
const ACC_VALUE_W: u16 = 9;
const LOSS_LABEL_W: u16 = 14;
const LOSS_VALUE_W: u16 = 8;

/// The visible window. The whole bounded history (up to [`HISTORY_CAP`](crate::tui::store::HISTORY_CAP)
/// epochs) is shown: one epoch per column while it fits, else `per_col` epochs per column. Buckets are
/// aligned to multiples of `per_col` in absolute point numbers, so that a column keeps its epochs while
/// new ones arrive (only the newest column changes, and everything moves left once per `per_col` epochs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// Epochs per column (1 early in a run).
    pub per_col: u64,
    /// Columns that hold at least one point.
    pub cols: usize,
    /// Columns available.
    pub width: u16,
    /// Absolute point number where column 0's bucket starts (may precede the oldest point kept).
    pub abs0: u64,
    /// Absolute number of the oldest point shown (`History::first`).
    first: u64,
    /// One past the newest point.
    end: u64,
}

impl Window {
    /// The window for the app's history in `width` columns.
    pub fn new(app: &App, width: u16) -> Window {
        let h = &app.store.history;
        let end = h.next_index();
        // `z`: only the last N epochs.
        let first = match app.zoom {
            Some(n) => h.first.max(end.saturating_sub(n)),
            None => h.first,
        };
        let w = width as u64;
        // A mark that waits for its first point needs a column too.
        let pending = h.marks.back().is_some_and(|m| m.index >= end);
        let last = if pending { end } else { end.saturating_sub(1) };
        let empty = Window {
            per_col: 1,
            cols: 0,
            width,
            abs0: first,
            first,
            end,
        };
        if w == 0 || (end == first && !pending) {
            return empty;
        }
        // The fewest epochs per column whose aligned buckets fit.
        let span = last + 1 - first;
        let mut k = span.div_ceil(w).max(1);
        while last / k - first / k + 1 > w {
            k += 1;
        }
        let abs0 = first / k * k;
        Window {
            per_col: k,
            cols: (end.saturating_sub(abs0)).div_ceil(k) as usize,
            width,
            abs0,
            first,
            end,
        }
    }

    /// The oldest point shown and the newest (with `z`, the window's first epoch, not the history's).
    pub fn ends<'a>(&self, h: &'a crate::tui::store::History) -> Option<(&'a Point, &'a Point)> {
        let first = h.points.get(self.first.checked_sub(h.first)? as usize)?;
        Some((first, h.points.back()?))
    }

    /// Absolute point numbers in column `j` (empty for a column with no points).
    pub fn bucket(&self, j: usize) -> std::ops::Range<u64> {
        let a = self.abs0 + j as u64 * self.per_col;
        a.max(self.first)..(a + self.per_col).min(self.end)
    }

    /// The column of absolute point number `index`, if it is shown.
    pub fn column(&self, index: u64) -> Option<usize> {
        if index < self.first {
            return None;
        }
        let c = (index.checked_sub(self.abs0)? / self.per_col) as usize;
        (c < self.width as usize).then_some(c)
    }
}

/// How a column sums up the epochs of its bucket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Aggregate {
    /// Accuracy: the bucket's mean, so that a curve that flips between 0.333 and 1.0 shows as the fraction of
    /// epochs it was right (the last value alone would pick one of them at random).
    Mean,
    /// Loss on the log scale: the mean of log10(loss) (the geometric mean), matching the axis; an arithmetic
    /// mean would let one spike dominate the bucket. Returned as log10.
    MeanLog10,
}

/// One value per shown column: `Some(None)` where any epoch of the bucket is NaN/Inf (a divergence is never
/// averaged away), `None` where the log has none of the bucket's values.
fn columns(app: &App, win: &Window, get: impl Fn(&Point) -> Option<f32>, how: Aggregate) -> Vec<Option<Option<f32>>> {
    let h = &app.store.history;
    (0..win.cols)
        .map(|j| {
            let r = win.bucket(j);
            if r.is_empty() {
                return Some(None);
            }
            let pts = h.points.range((r.start - h.first) as usize..(r.end - h.first) as usize);
            let mut sum = 0f64;
            let mut n = 0u64;
            for p in pts {
                let Some(v) = get(p) else { continue };
                n += 1;
                if !v.is_finite() {
                    return Some(None);
                }
                sum += match how {
                    Aggregate::Mean => v as f64,
                    Aggregate::MeanLog10 => (v.max(1e-8) as f64).log10(),
                };
            }
            (n > 0).then_some(Some((sum / n as f64) as f32))
        })
        .collect()
}

/// One curve of a panel: its label, colour, latest value and how to read it from a point.
struct Curve {
    label: &'static str,
    style: Style,
    latest: Option<Val>,
    get: fn(&Point) -> Val,
    headline: bool,
}

/// `eval`, or `val` when the evaluations are on held-out images.
fn eval_word(app: &App) -> &'static str {
    app.store.info.as_ref().map_or("eval", |i| i.eval_on.word())
}

fn curves(app: &App) -> [Curve; 3] {
    let th = &app.theme;
    let latest = app.store.latest.as_ref();
    let head = app.eval_mode;
    // Held-out evaluations are labelled `val`, as Keras' val_accuracy.
    let val = app.store.info.as_ref().is_some_and(|i| i.eval_on == EvalOn::Val);
    [
        Curve {
            label: "train (batch)",
            style: th.train(),
            latest: latest.map(|m| m.train),
            get: |p| p.train,
            headline: false,
        },
        Curve {
            label: if val { "val running" } else { "eval running" },
            style: th.running(),
            latest: latest.map(|m| m.eval_running),
            get: |p| p.running,
            headline: head == EvalMode::Running,
        },
        Curve {
            label: if val { "val batch" } else { "eval batch" },
            style: th.batch(),
            latest: latest.map(|m| m.eval_batch),
            get: |p| p.batch,
            headline: head == EvalMode::Batch,
        },
    ]
}

/// Draws one sparkline row at `(x, y)` from column values; `level` maps a value to `Some(0..=1)`. Columns the log
/// has no value for stay empty; a curve the log lacks altogether says so.
fn spark(
    th: &Theme,
    values: &[Option<Option<f32>>],
    (x, y, width): (u16, u16, u16),
    style: Style,
    level: impl Fn(f32) -> Option<f32>,
    buf: &mut Buffer,
) {
    let levels = th.spark_levels();
    if !values.is_empty() && values.iter().all(Option::is_none) {
        buf.set_stringn(x, y, fmt::MISSING, width as usize, th.dim());
        return;
    }
    for (j, v) in values.iter().enumerate() {
        let Some(v) = v else { continue };
        let (sym, st) = match v.and_then(&level) {
            Some(v) => {
                let i = (v.clamp(0.0, 1.0) * (levels.len() - 1) as f32).round() as usize;
                (levels[i], style)
            }
            None => (th.nan_cell(), th.tone(crate::tui::theme::Tone::Bad)),
        };
        put(buf, x + j as u16, y, sym, st);
    }
}

/// The events row: a dot per column shown, and the marks in the column of their epoch.
fn events_row(th: &Theme, app: &App, win: &Window, x: u16, y: u16, buf: &mut Buffer) {
    for j in 0..win.cols {
        put(buf, x + j as u16, y, th.dot(), th.dim());
    }
    // Marks that share a column move right (or, at the edge, left) to the nearest free one.
    let w = win.width as usize;
    let mut taken = vec![false; w];
    for m in &app.store.history.marks {
        let Some(want) = win.column(m.index) else {
            continue;
        };
        let Some(col) = (want..w).chain((0..want).rev()).find(|&c| !taken[c]) else {
            break;
        };
        taken[col] = true;
        let mut s = [0u8; 4];
        put(buf, x + col as u16, y, m.symbol.encode_utf8(&mut s), th.mark());
    }
}

/// The time axis under the sparklines: the first epoch shown at the left, the last one under the newest
/// column, and how many epochs a column holds when that is more than one.
fn axis_row(th: &Theme, app: &App, win: &Window, x: u16, y: u16, buf: &mut Buffer) {
    let Some((first, last)) = win.ends(&app.store.history) else {
        return;
    };
    let first = first.epoch.to_string();
    let last = last.epoch.to_string();
    let end = x + win.cols as u16;
    buf.set_string(x, y, &first, th.dim());
    let lx = end.saturating_sub(last.len() as u16);
    if lx > x + first.len() as u16 {
        buf.set_string(lx, y, &last, th.dim());
    }
    if win.per_col > 1 {
        let between = lx.saturating_sub(x + first.len() as u16) as usize;
        let long = format!("{} epochs/column", win.per_col);
        let short = format!("{}/col", win.per_col);
        if let Some(text) = [long, short].into_iter().find(|t| t.len() + 2 <= between) {
            let tx = x + first.len() as u16 + ((between - text.len()) / 2) as u16;
            buf.set_string(tx, y, text, th.dim());
        }
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
    let win = Window::new(app, sw);
    render_accuracy(app, acc_area, &win, buf);
    if let Some(l) = loss_area {
        render_loss(app, l, &win, buf);
    }
}

fn render_accuracy(app: &App, area: Rect, win: &Window, buf: &mut Buffer) {
    let th = &app.theme;
    let mut title = vec![title_span(th, "accuracy")];
    let sep = th.sep().trim_start();
    if let Some(n) = app.zoom {
        title.push(Span::styled(format!("{sep}last {n} epochs (z) "), th.key()));
    }
    if let Some((train, running)) = app
        .store
        .latest
        .as_ref()
        .and_then(|m| Some((m.train.acc?, m.eval_running.acc?)))
    {
        let gap = train - running;
        let gap_s = if gap.is_finite() {
            format!("{gap:.3}")
        } else {
            "NaN".to_string()
        };
        title.push(Span::styled(
            format!("{sep}gap train{}{} running {gap_s} ", th.minus(), eval_word(app)),
            if gap.is_finite() && gap > 0.2 {
                th.tone(crate::tui::theme::Tone::Warn)
            } else {
                th.dim()
            },
        ));
    }
    // `--ema`: the averaged model's evaluation (running statistics copied from the trained model; c re-estimates
    // them with its own weights).
    if let Some(e) = app.store.latest.as_ref().and_then(|m| m.eval_ema) {
        title.push(Span::styled(format!("{sep}EMA {:.3} ", e.acc), th.running()));
    }
    // Without room for the axis row (80×24), the title says what the columns span.
    let no_axis = area.height < 7;
    if no_axis && win.per_col > 1 {
        if let Some((a, b)) = win.ends(&app.store.history) {
            title.push(Span::styled(
                format!("{sep}epochs {}{}{}, {}/col ", a.epoch, th.dash(), b.epoch, win.per_col),
                th.dim(),
            ));
        }
    }
    let block = panel(th, super::fit_title(title, area.width.saturating_sub(2) as usize));
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
        let values = columns(app, win, |p| get(p).acc, Aggregate::Mean);
        spark(th, &values, (xs, y, win.width), c.style, acc_level, buf);
        let mut spans = vec![value_span(
            c.latest.and_then(|m| m.acc).map_or("–".into(), fmt::acc),
            c.style,
        )];
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
    if y < inner.bottom() && win.cols > 0 {
        buf.set_stringn(inner.x, y, "epoch", ACC_LABEL_W as usize, th.dim());
        axis_row(th, app, win, xs, y, buf);
    }
}

fn render_loss(app: &App, area: Rect, win: &Window, buf: &mut Buffer) {
    let th = &app.theme;
    let block = panel(th, title_span(th, "loss (log scale)"));
    let inner = block.inner(area);
    block.render(area, buf);
    // One log scale for the three curves over the columns shown (of the values drawn, i.e. bucket means).
    let cs = curves(app);
    let values: Vec<Vec<Option<Option<f32>>>> = cs
        .iter()
        .map(|c| {
            let get = c.get;
            columns(app, win, |p| get(p).loss, Aggregate::MeanLog10)
        })
        .collect();
    let (lo, hi) = values
        .iter()
        .flatten()
        .flatten()
        .flatten()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        });
    let level = move |l: f32| -> Option<f32> {
        if hi - lo < 1e-6 {
            return Some(0.5);
        }
        Some((l - lo) / (hi - lo))
    };
    let xs = inner.x + LOSS_LABEL_W;
    let xv = xs + win.width + 1;
    for (i, (c, values)) in cs.into_iter().zip(&values).enumerate() {
        let y = inner.y + i as u16;
        if y >= inner.bottom() {
            return;
        }
        buf.set_stringn(inner.x, y, c.label, LOSS_LABEL_W as usize - 1, th.label());
        spark(th, values, (xs, y, win.width), c.style, level, buf);
        let text = c.latest.and_then(|m| m.loss).map_or("–".into(), fmt::loss);
        buf.set_stringn(xv, y, format!("{text:>7}"), LOSS_VALUE_W as usize, c.style);
    }
    let y = inner.y + 3;
    if y < inner.bottom() {
        buf.set_stringn(inner.x, y, "events", LOSS_LABEL_W as usize, th.label());
        events_row(th, app, win, xs, y, buf);
    }
    let y = inner.y + 4;
    if y < inner.bottom() && lo.is_finite() {
        let mut text = format!(
            "range {} {} {}",
            fmt::loss(10f32.powf(lo)),
            th.arrow(),
            fmt::loss(10f32.powf(hi))
        );
        // Several epochs per column: the range is of the columns' geometric means (see `Aggregate`).
        if win.per_col > 1 && text.chars().count() + 13 <= win.width as usize {
            text.push_str(" (col. means)");
        }
        buf.set_stringn(inner.x, y, "scale", LOSS_LABEL_W as usize, th.dim());
        buf.set_stringn(xs, y, text, win.width as usize, th.dim());
    }
}
