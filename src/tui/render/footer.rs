//! The footer: the status line (in the top border) and key hints from the binding table.
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Widget;

use super::panel;
use crate::tui::app::App;
use crate::tui::fmt;
use crate::tui::keys;
use crate::tui::theme::Tone;

/// The hints that fit `width`, dropping the lowest priorities first. In a replay the keys that would change a
/// run stay (dimmed) only where there is room.
pub fn hints(app: &App, width: usize) -> Vec<keys::Hint> {
    let log = app.store.from_log;
    let all: Vec<_> = keys::footer_hints(log)
        .map(|mut h| {
            if log {
                use keys::Action::*;
                // Over a log: the cursor and playback first; of the keys that would change a run, the momentum
                // and the reset stay (dimmed) where there is room; the convention toggle goes early.
                h.priority = match h.binding.action {
                    PauseResume => 8,
                    EpochOn10 => 5,
                    Slower | Faster => 6,
                    MomentumUp | MomentumDown | ResetStats => 3,
                    ToggleConvention => 1,
                    _ if h.binding.changes_run && !app.can_act(h.binding) => 2,
                    _ => h.priority,
                };
            }
            h
        })
        .collect();
    let len = |v: &[keys::Hint]| -> usize {
        v.iter().map(|h| h.keys.len() + 1 + h.words.len()).sum::<usize>() + 2 * v.len().saturating_sub(1)
    };
    let mut kept = all;
    let mut prio = 0u8;
    while len(&kept) > width && prio < u8::MAX {
        kept.retain(|h| h.priority > prio);
        prio += 1;
    }
    kept
}

pub fn render(app: &App, area: Rect, buf: &mut Buffer) {
    let th = &app.theme;
    let width = area.width.saturating_sub(4) as usize;
    let mut block = panel(th, "");
    if let Some((tone, text)) = &app.status {
        let icon = match tone {
            Tone::Good => th.check(),
            Tone::Bad | Tone::Warn => th.warn(),
            Tone::Info => "",
        };
        let text = if icon.is_empty() {
            text.clone()
        } else {
            format!("{icon} {text}")
        };
        let text = fmt::truncate(&text, width.saturating_sub(2), th.ellipsis());
        block = block.title(Span::styled(format!(" {text} "), th.tone(*tone)));
    }
    let inner = block.inner(area);
    block.render(area, buf);
    if inner.height == 0 {
        return;
    }
    let mut spans = Vec::new();
    for (i, h) in hints(app, width).into_iter().enumerate() {
        if i > 0 {
            spans.push(Span::raw("  "));
        }
        // Keys that cannot act now (a run key after the trainer stopped, n while running) are dimmed.
        let style = if app.can_act(h.binding) { th.key() } else { th.dim() };
        let words = app.hint_words(&h);
        spans.push(Span::styled(h.keys, style));
        spans.push(Span::styled(format!(" {words}"), th.dim()));
    }
    Line::from(spans).render(inner, buf);
}
