//! The `?` overlay, generated from the binding table.
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Widget};

use super::title_span;
use crate::tui::app::{App, LADDER};
use crate::tui::fmt;
use crate::tui::keys::BINDINGS;

pub fn render(app: &App, area: Rect, buf: &mut Buffer) {
    let th = &app.theme;
    let ladder: Vec<String> = LADDER.iter().map(|&m| fmt::momentum(m)).collect();
    let mut lines: Vec<Line> = BINDINGS
        .iter()
        .map(|b| {
            Line::from(vec![
                Span::styled(format!(" {:<13}", b.keys_label()), th.key()),
                Span::styled(b.help.replace("<->", th.arrow()), th.text()),
            ])
        })
        .collect();
    if (lines.len() as u16 + 5) <= area.height {
        lines.push(Line::from(""));
    }
    lines.push(Line::from(Span::styled(
        format!(" momentum ladder (Keras): {}", ladder.join(" ")),
        th.dim(),
    )));
    lines.push(Line::from(Span::styled(
        " Keras m = 1 - PyTorch/candle m: running = m*running + (1-m)*batch (Keras)",
        th.dim(),
    )));
    let w = 88.min(area.width.saturating_sub(2));
    let h = (lines.len() as u16 + 2).min(area.height.saturating_sub(2));
    let r = Rect::new(area.x + (area.width - w) / 2, area.y + (area.height - h) / 2, w, h);
    Clear.render(r, buf);
    let block = ratatui::widgets::Block::bordered()
        .border_set(th.border_set())
        .border_style(th.title())
        .title(title_span(th, "keys"))
        .title_bottom(Line::from(Span::styled(" ? or Esc closes ", th.dim())).right_aligned());
    let inner = block.inner(r);
    block.render(r, buf);
    for (i, l) in lines.into_iter().enumerate() {
        if (i as u16) < inner.height {
            l.render(Rect::new(inner.x, inner.y + i as u16, inner.width, 1), buf);
        }
    }
}
