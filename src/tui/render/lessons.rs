//! The `L` overlay: the lessons, one per row with its explanation under the selected one.
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Widget};

use super::title_span;
use crate::lesson::LESSONS;
use crate::tui::app::App;

pub fn render(app: &App, area: Rect, buf: &mut Buffer) {
    let Some(sel) = app.lessons else { return };
    let th = &app.theme;
    let w = 90.min(area.width.saturating_sub(2));
    let text_w = w.saturating_sub(10) as usize;
    let mut lines: Vec<Line> = Vec::new();
    for (i, l) in LESSONS.iter().enumerate() {
        let mark = if i == sel { th.pointer() } else { " " };
        let style = if i == sel { th.key() } else { th.text() };
        lines.push(Line::from(vec![
            Span::styled(format!(" {mark} {} ", i + 1), th.key()),
            Span::styled(format!("{:<16}", l.scenario.name()), style),
            Span::styled(l.title.to_string(), style),
        ]));
        if i == sel {
            for t in super::help::wrap(l.text, text_w) {
                lines.push(Line::from(Span::styled(format!("       {t}"), th.dim())));
            }
        }
    }
    lines.push(Line::from(Span::styled(
        " A lesson starts a new run (this one ends); from a shell: bnscope --scenario NAME",
        th.dim(),
    )));
    let h = (lines.len() as u16 + 2).min(area.height.saturating_sub(2));
    let r = Rect::new(area.x + (area.width - w) / 2, area.y + (area.height - h) / 2, w, h);
    Clear.render(r, buf);
    let block = ratatui::widgets::Block::bordered()
        .border_set(th.border_set())
        .border_style(th.title())
        .title(title_span(th, "lessons"))
        .title_bottom(
            Line::from(Span::styled(" ↑↓ choose · 1-6 or Enter start · Esc closes ", th.dim())).right_aligned(),
        );
    let inner = block.inner(r);
    block.render(r, buf);
    for (i, l) in lines.into_iter().enumerate() {
        if (i as u16) < inner.height {
            l.render(Rect::new(inner.x, inner.y + i as u16, inner.width, 1), buf);
        }
    }
}
