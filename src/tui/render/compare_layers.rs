//! The compare view's layers panel: per BatchNorm layer, per shown run, how far the running mean has come toward
//! the batch mean at the cursor's epoch (`1 − mean_gap`, the log's `‖running − batch‖₂ / ‖batch‖₂`), as a gauge and
//! a percentage. Runs that do not fit the width are named on the last line.
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::Widget;

use super::{fit_title, panel, title_span};
use crate::compare::percent;
use crate::tui::compare::LayerGaps;
use crate::tui::theme::Theme;

/// One run's column.
pub struct Column<'a> {
    pub glyph: &'static str,
    pub style: Style,
    pub letter: char,
    /// Its layers at the cursor (`None`: its log has no `bn` record there).
    pub layers: Option<&'a LayerGaps>,
}

/// The panel's narrow view.
pub struct LayersPanel<'a> {
    pub theme: &'a Theme,
    pub epoch: u64,
    pub columns: &'a [Column<'a>],
    /// The first layer row shown.
    pub offset: usize,
}

/// A run's cell: marker, gauge, percentage.
const GAUGE: usize = 8;
const CELL: usize = 2 + GAUGE + 1 + 6 + 1;

impl LayersPanel<'_> {
    fn gauge(&self, frac: f64) -> String {
        let eighths = (frac.clamp(0.0, 1.0) * (GAUGE * 8) as f64).round() as usize;
        let mut s = String::new();
        for i in 0..GAUGE {
            let left = eighths.saturating_sub(i * 8).min(8);
            s.push_str(match left {
                8 => self.theme.gauge_full(),
                0 => self.theme.gauge_empty(),
                n => self.theme.gauge_partial(n).unwrap_or(self.theme.gauge_empty()),
            });
        }
        s
    }
}

impl Widget for LayersPanel<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let t = self.theme;
        let title = fit_title(
            vec![
                title_span(t, format!("layers at epoch {}", self.epoch)),
                title_span(
                    t,
                    "running mean's way to the batch mean: 1 - |r-b|/|b|, 100% = caught up",
                ),
            ],
            area.width.saturating_sub(4) as usize,
        );
        let block = panel(t, title);
        let inner = block.inner(area);
        block.render(area, buf);
        if inner.height == 0 || inner.width < 10 {
            return;
        }
        // The layer names: the first run's that has them.
        let names: Vec<&str> = self
            .columns
            .iter()
            .find_map(|c| c.layers)
            .map(|l| l.iter().map(|(n, _, _)| n.as_str()).collect())
            .unwrap_or_default();
        if names.is_empty() {
            buf.set_stringn(
                inner.x,
                inner.y,
                "no per-layer statistics at this epoch in these logs",
                inner.width as usize,
                t.dim(),
            );
            return;
        }
        let name_w = names.iter().map(|n| n.len()).max().unwrap_or(0).clamp(6, 22);
        let fit = ((inner.width as usize).saturating_sub(name_w + 1) / CELL).max(1);
        let cols = &self.columns[..self.columns.len().min(fit)];
        let left_out = &self.columns[cols.len()..];
        let body_h = inner.height as usize - usize::from(!left_out.is_empty());
        let offset = self.offset.min(names.len().saturating_sub(1));
        for (row, name) in names.iter().enumerate().skip(offset).take(body_h) {
            let y = inner.y + (row - offset) as u16;
            let shown = crate::format::truncate(name, name_w, t.ellipsis());
            buf.set_stringn(inner.x, y, format!("{shown:<name_w$}"), name_w, t.label());
            for (k, c) in cols.iter().enumerate() {
                let x = inner.x + (name_w + 1 + k * CELL) as u16;
                let gap = c
                    .layers
                    .and_then(|l| l.iter().find(|(n, _, _)| n == name))
                    .and_then(|l| l.1);
                let mut spans = vec![Span::styled(format!("{} ", c.glyph), c.style)];
                match gap {
                    Some(g) if g.is_finite() => {
                        let way = 1.0 - g.min(1.0);
                        spans.push(Span::styled(self.gauge(way), t.ramp(way as f32)));
                        spans.push(Span::styled(format!(" {:>6}", percent(way)), t.text()));
                    }
                    Some(_) => spans.push(Span::styled("NaN", t.dim())),
                    None => spans.push(Span::styled(t.dash().to_string(), t.dim())),
                }
                buf.set_line(x, y, &Line::from(spans), (CELL - 1) as u16);
            }
        }
        if !left_out.is_empty() {
            let letters: Vec<String> = left_out.iter().map(|c| c.letter.to_string()).collect();
            buf.set_stringn(
                inner.x,
                inner.bottom() - 1,
                format!("runs {} do not fit here: hide others with 1-8", letters.join(", ")),
                inner.width as usize,
                t.dim(),
            );
        }
        if offset + body_h < names.len() || offset > 0 {
            let more = format!(
                " {}-{} of {} layers ",
                offset + 1,
                (offset + body_h).min(names.len()),
                names.len()
            );
            let x = area.right().saturating_sub(more.len() as u16 + 2);
            buf.set_string(x, area.bottom() - 1, more, t.dim());
        }
    }
}
