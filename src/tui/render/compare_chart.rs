//! An overlay chart: several runs' series on one pair of axes, each drawn with its own marker and colour, and the
//! epoch cursor as a vertical line.
//!
//! Own widget rather than ratatui's `Chart`: `Chart`'s markers are a handful of fill styles (braille, dot, block,
//! bar) shared by every dataset, so without colour two runs look the same; here each run has its own glyph
//! (`●`, `✕`, `▲`, … or `o`, `x`, `^`, … under `--ascii`).
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::widgets::Widget;

use super::{panel, put, title_span};
use crate::tui::theme::Theme;

/// The marker of a cell that several runs share.
pub const SHARED: &str = "*";

/// One run's series.
pub struct Trace {
    pub glyph: &'static str,
    pub style: Style,
    /// `(epoch, value)`, epochs rising.
    pub points: Vec<(u64, f64)>,
}

/// The chart's narrow view: the traces, the axes' ranges, the cursor.
pub struct Overlay<'a> {
    pub theme: &'a Theme,
    pub title: &'static str,
    pub traces: &'a [Trace],
    /// Epochs from and to.
    pub x: (u64, u64),
    /// Values from and to.
    pub y: (f64, f64),
    pub cursor: u64,
}

fn label(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

impl Widget for Overlay<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let block = panel(self.theme, title_span(self.theme, self.title));
        let inner = block.inner(area);
        block.render(area, buf);
        let label_w = 5u16;
        if inner.width <= label_w + 2 || inner.height < 3 {
            return;
        }
        let plot = Rect::new(
            inner.x + label_w + 1,
            inner.y,
            inner.width - label_w - 1,
            inner.height - 1,
        );
        let (lo, hi) = self.y;
        let span = (hi - lo).max(1e-12);
        let (x0, x1) = self.x;
        let xspan = (x1 - x0).max(1) as f64;
        let col_of = |e: u64| -> u16 {
            let f = (e.saturating_sub(x0)) as f64 / xspan;
            plot.x + (f * (plot.width - 1) as f64).round().min((plot.width - 1) as f64) as u16
        };
        let row_of = |v: f64| -> u16 {
            let f = ((hi - v) / span).clamp(0.0, 1.0);
            plot.y + (f * (plot.height - 1) as f64).round() as u16
        };
        // The axis labels: top, middle, bottom.
        for (v, y) in [
            (hi, plot.y),
            ((hi + lo) / 2.0, plot.y + (plot.height - 1) / 2),
            (lo, plot.bottom() - 1),
        ] {
            buf.set_stringn(
                inner.x,
                y,
                format!("{:>5}", label(v)),
                label_w as usize,
                self.theme.dim(),
            );
        }
        // The cursor, under the traces.
        let cx = col_of(self.cursor);
        let bar = if self.theme.ascii { "|" } else { "│" };
        for y in plot.y..plot.bottom() {
            put(buf, cx, y, bar, self.theme.dim());
        }
        // The traces. Each column shows the newest value at or before its epoch; a cell two runs share gets
        // `*` (several runs here), so that a run hidden under another is never mistaken for a missing one.
        let mut owner: Vec<Option<usize>> = vec![None; plot.width as usize * plot.height as usize];
        for (k, t) in self.traces.iter().enumerate() {
            let mut j = 0;
            for c in 0..plot.width {
                let e = x0 + ((c as f64 / (plot.width - 1).max(1) as f64) * xspan).round() as u64;
                while j + 1 < t.points.len() && t.points[j + 1].0 <= e {
                    j += 1;
                }
                let Some(&(pe, v)) = t.points.get(j) else { break };
                if pe > e || !v.is_finite() {
                    continue;
                }
                let y = row_of(v);
                let cell = &mut owner[(y - plot.y) as usize * plot.width as usize + c as usize];
                match *cell {
                    Some(o) if o != k => put(buf, plot.x + c, y, SHARED, self.theme.strong()),
                    _ => {
                        *cell = Some(k);
                        put(buf, plot.x + c, y, t.glyph, t.style);
                    }
                }
            }
        }
        // The epoch axis: first, cursor, last.
        let y = inner.bottom() - 1;
        buf.set_string(plot.x, y, x0.to_string(), self.theme.dim());
        let last = x1.to_string();
        let last_x = plot.right().saturating_sub(last.len() as u16);
        let at = format!("epoch {}", self.cursor);
        let ax = cx
            .saturating_sub(at.len() as u16 / 2)
            .clamp(plot.x + 2, plot.right().saturating_sub(at.len() as u16).max(plot.x + 2));
        // The newest epoch's number unless the cursor's label covers it.
        if ax + at.len() as u16 + 1 < last_x {
            buf.set_string(last_x, y, &last, self.theme.dim());
        }
        buf.set_string(ax, y, at, self.theme.strong());
    }
}
