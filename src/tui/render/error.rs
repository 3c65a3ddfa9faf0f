//! The red error panel drawn over the body when the trainer failed or went away (like trippy's bsod).
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph, Widget, Wrap};

use crate::tui::app::App;

pub fn render(app: &App, area: Rect, buf: &mut Buffer) {
    let th = &app.theme;
    let style = th.error_panel();
    let r = Rect::new(
        area.x + 2,
        area.y + 1,
        area.width.saturating_sub(4),
        area.height.saturating_sub(2),
    );
    if r.width < 10 || r.height < 3 {
        return;
    }
    Clear.render(r, buf);
    let (title, body) = match &app.store.error {
        Some(msg) => ("trainer error", msg.clone()),
        None => (
            "trainer disconnected",
            "The trainer's event channel closed without a Finished event: the trainer thread is gone.".to_string(),
        ),
    };
    let mut lines: Vec<Line> = vec![Line::from(Span::styled(
        "The trainer stopped training:",
        style.add_modifier(ratatui::style::Modifier::BOLD),
    ))];
    lines.push(Line::from(""));
    lines.extend(body.lines().map(|l| Line::from(l.to_string())));
    lines.push(Line::from(""));
    lines.push(Line::from(
        "The screen stays as it was so that you can read it. Press q to quit.",
    ));
    let block = Block::bordered()
        .border_set(th.border_set())
        .title(format!(" {} {title} ", th.warn()))
        .style(style);
    Paragraph::new(lines)
        .block(block)
        .style(style)
        .wrap(Wrap { trim: false })
        .render(r, buf);
}
