//! The footer: the status line (in the top border) and key hints from the binding table.
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Widget;

use super::super::app::App;
use super::super::fmt;
use super::super::keys;
use super::super::theme::Tone;
use super::panel;

/// The hints that fit `width`, dropping the lowest priorities first.
pub fn hints(width: usize) -> Vec<(&'static str, &'static str)> {
    let all: Vec<_> = keys::footer_hints().collect();
    let len = |v: &[(&str, &str, u8)]| -> usize {
        v.iter().map(|(k, w, _)| k.len() + 1 + w.len()).sum::<usize>() + 2 * v.len().saturating_sub(1)
    };
    let mut kept = all.clone();
    let mut prio = 0u8;
    while len(&kept) > width && prio < u8::MAX {
        kept.retain(|h| h.2 > prio);
        prio += 1;
    }
    kept.into_iter().map(|(k, w, _)| (k, w)).collect()
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
    for (i, (k, w)) in hints(width).into_iter().enumerate() {
        if i > 0 {
            spans.push(Span::raw("  "));
        }
        spans.push(Span::styled(k, th.key()));
        spans.push(Span::styled(format!(" {w}"), th.dim()));
    }
    Line::from(spans).render(inner, buf);
}
