//! The `L` overlay: the lessons, one per row with its explanation under the selected one.
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};

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
    super::help::overlay(
        app,
        area,
        w,
        lines,
        "lessons",
        " ↑↓ choose · 1-6 or Enter start · Esc closes ",
        buf,
    );
}
