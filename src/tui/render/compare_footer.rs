//! The compare view's footer (key hints from its binding table) and its `?` help overlay (every binding).
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Widget};

use super::{panel, title_span};
use crate::tui::compare::keys;
use crate::tui::theme::Theme;

/// The footer's narrow view: the theme (the hints come from the table) and a status line that stands in for the
/// hints until the next key.
pub struct Footer<'a> {
    pub theme: &'a Theme,
    pub status: Option<&'a str>,
}

impl Widget for Footer<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        if let Some(s) = self.status {
            buf.set_line(
                area.x,
                area.y,
                &Line::from(Span::styled(s, self.theme.key())),
                area.width,
            );
            return;
        }
        let mut spans = Vec::new();
        for (k, words) in keys::footer(self.theme.ascii) {
            if !spans.is_empty() {
                spans.push(Span::raw("  "));
            }
            spans.push(Span::styled(k, self.theme.key()));
            spans.push(Span::styled(format!(" {words}"), self.theme.dim()));
        }
        buf.set_line(area.x, area.y, &Line::from(spans), area.width);
    }
}

/// The help overlay.
pub struct Help<'a> {
    pub theme: &'a Theme,
}

impl Widget for Help<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let rows = keys::help_rows();
        let key_w = rows.iter().map(|(k, _)| k.chars().count()).max().unwrap_or(0);
        let notes = [
            "charts: each run's marker and colour, * where runs overlap; the vertical line is the epoch cursor",
            "momentum in the Keras convention: running = m*running + (1-m)*batch",
        ];
        let w = (rows.iter().map(|(_, h)| key_w + 2 + h.len()).max().unwrap_or(0))
            .max(notes.iter().map(|n| n.len()).max().unwrap_or(0))
            + 4;
        let h = rows.len() + notes.len() + 3;
        let w = (w as u16).min(area.width);
        let h = (h as u16).min(area.height);
        let r = Rect::new(area.x + (area.width - w) / 2, area.y + (area.height - h) / 2, w, h);
        Clear.render(r, buf);
        let block = panel(self.theme, title_span(self.theme, "keys (any key closes)"));
        let inner = block.inner(r);
        block.render(r, buf);
        let mut y = inner.y;
        for (k, help) in rows {
            if y >= inner.bottom() {
                return;
            }
            let line = Line::from(vec![
                Span::styled(format!("{k:<key_w$}"), self.theme.key()),
                Span::raw("  "),
                Span::styled(help, self.theme.text()),
            ]);
            buf.set_line(inner.x, y, &line, inner.width);
            y += 1;
        }
        y += 1;
        for n in notes {
            if y >= inner.bottom() {
                return;
            }
            buf.set_stringn(inner.x, y, n, inner.width as usize, self.theme.dim());
            y += 1;
        }
    }
}
