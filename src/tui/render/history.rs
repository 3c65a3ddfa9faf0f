//! Accuracy and loss history: one-row sparklines on a shared time axis, with event marks. The whole run is shown
//! (or, with `z`, its last epochs), several epochs per column once it outgrows the width: each column's bar is the
//! mean of its epochs, shaded where their min and max spread wider (see `Window` and `spark`); in a replay the
//! cursor's column is drawn reversed and marked in the events row.
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Widget;

use crate::protocol::{EvalMode, EvalOn};

use super::{panel, put, title_span};
use crate::format as fmt;
use crate::tui::app::App;
use crate::tui::store::{on_scale, Agg, History, Val};
use crate::tui::theme::Theme;

const ACC_LABEL_W: u16 = 14;
const ACC_VALUE_W: u16 = 9;
const LOSS_LABEL_W: u16 = 14;
const LOSS_VALUE_W: u16 = 8;

/// The visible window: the whole run (from the history's downsampled [`Series`](crate::tui::store::Series)) or,
/// with `z`, its last N epochs (up to the cursor, in a replay) from the exact points. One epoch per column while it
/// fits, else `per_col` epochs per column. Buckets are aligned to multiples of `per_col` in absolute point numbers
/// (and, over the whole run, `per_col` is a multiple of the series' bucket width), so that a column keeps its
/// epochs while new ones arrive (only the newest column changes, and everything moves left once per `per_col`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// Epochs per column (1 early in a run).
    pub per_col: u64,
    /// Columns that hold at least one point.
    pub cols: usize,
    /// Columns available.
    pub width: u16,
    /// Absolute point number where column 0's bucket starts (may precede the first point shown).
    pub abs0: u64,
    /// Absolute number of the first point shown.
    first: u64,
    /// One past the newest point shown.
    end: u64,
    /// The columns come from the series' buckets (the whole run), not from the exact points (a zoom).
    whole: bool,
}

impl Window {
    /// The window for the app's history in `width` columns.
    pub fn new(app: &App, width: u16) -> Window {
        let h = &app.store.history;
        // `z`: only the last N epochs (up to the cursor, in a replay), from the exact points.
        let (first, end, whole) = match app.zoom {
            Some(n) => {
                let end = h.points_end();
                (h.first.max(end.saturating_sub(n)), end, false)
            }
            None => (0, h.next_index(), true),
        };
        let w = width as u64;
        // A mark that waits for its first point needs a column too.
        let pending = h.marks.back().is_some_and(|m| m.index >= end) && end == h.next_index();
        let last = if pending { end } else { end.saturating_sub(1) };
        let empty = Window {
            per_col: 1,
            cols: 0,
            width,
            abs0: first,
            first,
            end,
            whole,
        };
        if w == 0 || (end == first && !pending) {
            return empty;
        }
        // The fewest epochs per column whose aligned buckets fit (over the whole run, whole series buckets).
        let unit = if whole { h.series.width.max(1) } else { 1 };
        let span = last + 1 - first;
        let mut k = span.div_ceil(w).max(1).div_ceil(unit) * unit;
        while last / k - first / k + 1 > w {
            k += unit;
        }
        let abs0 = first / k * k;
        Window {
            per_col: k,
            cols: (end.saturating_sub(abs0)).div_ceil(k) as usize,
            width,
            abs0,
            first,
            end,
            whole,
        }
    }

    /// The epoch numbers of the first point shown and of the newest.
    pub fn ends(&self, h: &History) -> Option<(usize, usize)> {
        if self.whole {
            return Some((h.series.first_epoch()?, h.series.last()?.epoch));
        }
        let first = h.points.get(self.first.checked_sub(h.first)? as usize)?;
        Some((first.epoch, h.points.back()?.epoch))
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

/// One column of one curve: its epochs' values summed up (`Agg::n == 0`: the log has none of them).
fn column_agg(h: &History, win: &Window, j: usize, curve: usize, loss: bool) -> Agg {
    let r = win.bucket(j);
    if r.is_empty() {
        return Agg::default();
    }
    if win.whole {
        let b = h.series.sum(r);
        return if loss { b.loss[curve] } else { b.acc[curve] };
    }
    let mut a = Agg::default();
    for p in h.points.range((r.start - h.first) as usize..(r.end - h.first) as usize) {
        let v = p.curves()[curve];
        a.add(on_scale(if loss { v.loss } else { v.acc }, loss));
    }
    a
}

/// What a column draws: `None` where the log has none of its values; else the mean of the finite ones and their
/// least and greatest (on the chart's scale), or `bad` where any epoch of it is NaN/Inf (a divergence is never
/// averaged away).
#[derive(Clone, Copy, Debug, PartialEq)]
struct Col {
    mean: f32,
    min: f32,
    max: f32,
    bad: bool,
}

fn columns(app: &App, win: &Window, curve: usize, loss: bool) -> Vec<Option<Col>> {
    let h = &app.store.history;
    (0..win.cols)
        .map(|j| {
            let a = column_agg(h, win, j, curve, loss);
            if a.bad || (a.n > 0 && a.finite == 0) {
                return Some(Col {
                    mean: f32::NAN,
                    min: f32::NAN,
                    max: f32::NAN,
                    bad: true,
                });
            }
            let mean = a.mean()?;
            Some(Col {
                mean,
                min: a.min,
                max: a.max,
                bad: false,
            })
        })
        .collect()
}

/// One curve of a panel: its label, colour, latest value and how to read it from a point.
struct Curve {
    label: &'static str,
    style: Style,
    latest: Option<Val>,
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
            headline: false,
        },
        Curve {
            label: if val { "val running" } else { "eval running" },
            style: th.running(),
            latest: latest.map(|m| m.eval_running),
            headline: head == EvalMode::Running,
        },
        Curve {
            label: if val { "val batch" } else { "eval batch" },
            style: th.batch(),
            latest: latest.map(|m| m.eval_batch),
            headline: head == EvalMode::Batch,
        },
    ]
}

/// Draws one sparkline row at `(x, y)` from column values; `level` maps a value to `Some(0..=1)`. A column's bar
/// is its mean; where its epochs range wider than the bar shows (min and max more than one step of the bar apart:
/// a spike or a dip among many epochs), the cell is shaded ([`Theme::spread`]). Columns the log has no value for
/// stay empty; a curve the log lacks altogether says so. The cursor's column (a replay) is drawn reversed.
fn spark(
    th: &Theme,
    values: &[Option<Col>],
    (x, y, width): (u16, u16, u16),
    style: Style,
    level: impl Fn(f32) -> Option<f32>,
    cursor: Option<usize>,
    buf: &mut Buffer,
) {
    let levels = th.spark_levels();
    if !values.is_empty() && values.iter().all(Option::is_none) {
        buf.set_stringn(x, y, fmt::MISSING, width as usize, th.dim());
        return;
    }
    let step = |v: f32| level(v).map(|l| (l.clamp(0.0, 1.0) * (levels.len() - 1) as f32).round() as usize);
    for (j, v) in values.iter().enumerate() {
        let Some(v) = v else { continue };
        let (sym, st) = match (v.bad, step(v.mean)) {
            (false, Some(i)) => {
                let wide = matches!((step(v.min), step(v.max)), (Some(lo), Some(hi)) if hi - lo >= 2);
                (levels[i], if wide { th.spread(style) } else { style })
            }
            _ => (th.nan_cell(), th.tone(crate::tui::theme::Tone::Bad)),
        };
        put(buf, x + j as u16, y, sym, st);
    }
    if let Some(c) = cursor.filter(|&c| c < width as usize) {
        let cell = &mut buf[(x + c as u16, y)];
        if cell.symbol() == " " {
            cell.set_symbol(th.cursor_bar());
        }
        cell.modifier.insert(Modifier::REVERSED);
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
    // A replay: the cursor's epoch (the one the panels show) marked under its column; on an event's mark, the
    // mark is reversed instead.
    if let Some(c) = cursor_col(app, win) {
        let cell = &mut buf[(x + c as u16, y)];
        if cell.symbol() == th.dot() {
            put(buf, x + c as u16, y, th.cursor_mark(), th.key());
        } else {
            cell.modifier.insert(Modifier::REVERSED);
        }
    }
}

/// The cursor's column (a replay), if it is shown.
fn cursor_col(app: &App, win: &Window) -> Option<usize> {
    win.column(app.store.history.cursor?).filter(|&c| c < win.cols)
}

/// The time axis under the sparklines: the first epoch shown at the left, the last one under the newest
/// column, and how many epochs a column holds when that is more than one.
fn axis_row(th: &Theme, app: &App, win: &Window, x: u16, y: u16, buf: &mut Buffer) {
    let Some((first, last)) = win.ends(&app.store.history) else {
        return;
    };
    let first = first.to_string();
    let last = last.to_string();
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
                format!("{sep}epochs {}{}{}, {}/col ", a, th.dash(), b, win.per_col),
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
        let values = columns(app, win, i, false);
        spark(
            th,
            &values,
            (xs, y, win.width),
            c.style,
            acc_level,
            cursor_col(app, win),
            buf,
        );
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
    // One log scale for the three curves over the columns shown: from the least to the greatest loss of any
    // epoch shown (each column's min and max), so that a spike is on the scale, not averaged into it.
    let cs = curves(app);
    let values: Vec<Vec<Option<Col>>> = (0..cs.len()).map(|i| columns(app, win, i, true)).collect();
    let (lo, hi) = values
        .iter()
        .flatten()
        .flatten()
        .filter(|c| !c.bad)
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), c| {
            (lo.min(c.min), hi.max(c.max))
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
        spark(
            th,
            values,
            (xs, y, win.width),
            c.style,
            level,
            cursor_col(app, win),
            buf,
        );
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
        // Several epochs per column: a bar is its column's geometric mean; shaded where its epochs spread wider.
        if win.per_col > 1 {
            // The range is of every epoch shown (min to max); the bars are the columns' means.
            let more = [" (bars: col. means, shaded: wider min–max)", " (bars: means)"];
            if let Some(m) = more
                .iter()
                .find(|m| text.chars().count() + m.chars().count() <= win.width as usize)
            {
                text.push_str(m);
            }
        }
        buf.set_stringn(inner.x, y, "scale", LOSS_LABEL_W as usize, th.dim());
        buf.set_stringn(xs, y, text, win.width as usize, th.dim());
    }
}
