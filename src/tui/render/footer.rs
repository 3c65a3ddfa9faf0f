//! The footer: the status line (in the top border) and key hints from the binding table.
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Widget;

use super::panel;
use crate::format as fmt;
use crate::tui::app::App;
use crate::tui::keys;
use crate::tui::theme::Tone;

/// The hints that fit `width`, dropping the lowest priorities first. In a replay the keys that would change a
/// run stay (dimmed) only where there is room.
pub fn hints(app: &App, width: usize) -> Vec<keys::Hint> {
    lines(app, width, 1).into_iter().flatten().collect()
}

/// The hints laid out over at most `max_lines` lines of `width` (in footer order, each line filled before the
/// next), dropping the lowest priorities first until they fit.
pub fn lines(app: &App, width: usize, max_lines: usize) -> Vec<Vec<keys::Hint>> {
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
        // Over a log, the keys that would change a run and have no room kept for them (above) stay out.
        .filter(|h| !(log && h.binding.changes_run && !app.can_act(h.binding) && h.priority <= 2))
        .collect();
    let len = |h: &keys::Hint| h.keys.chars().count() + 1 + app.hint_words(h).chars().count();
    let wrap = |v: &[keys::Hint]| -> Vec<Vec<keys::Hint>> {
        let mut out: Vec<Vec<keys::Hint>> = vec![Vec::new()];
        let mut used = 0;
        for h in v {
            let need = len(h) + if used == 0 { 0 } else { 2 };
            if used > 0 && used + need > width {
                out.push(Vec::new());
                used = 0;
            }
            used += len(h) + if used == 0 { 0 } else { 2 };
            out.last_mut().expect("one line").push(h.clone());
        }
        out
    };
    let fits = |v: &[Vec<keys::Hint>]| {
        v.len() <= max_lines.max(1)
            && v.iter()
                .all(|l| l.iter().map(len).sum::<usize>() + 2 * l.len().saturating_sub(1) <= width)
    };
    let mut kept = all;
    let mut prio = 0u8;
    let mut laid = wrap(&kept);
    while !fits(&laid) && prio < u8::MAX {
        kept.retain(|h| h.priority > prio);
        prio += 1;
        laid = wrap(&kept);
    }
    laid.retain(|l| !l.is_empty());
    laid
}

pub fn render(app: &App, area: Rect, buf: &mut Buffer) {
    let th = &app.theme;
    let width = area.width.saturating_sub(4) as usize;
    let mut block = panel(th, "");
    let bad = app.status.as_ref().is_some_and(|(t, _)| *t == Tone::Bad);
    if let (Some(p), false) = (&app.progress, bad) {
        block = block.title(progress_title(app, p, width));
    } else if let Some((tone, text)) = &app.status {
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
    for (row, line) in lines(app, width, inner.height as usize).into_iter().enumerate() {
        let mut spans = Vec::new();
        for (i, h) in line.into_iter().enumerate() {
            if i > 0 {
                spans.push(Span::raw("  "));
            }
            // Keys that cannot act now (a run key after the trainer stopped, n while running) are dimmed.
            let style = if app.can_act(h.binding) { th.key() } else { th.dim() };
            let words = app.hint_words(&h);
            spans.push(Span::styled(h.keys, style));
            spans.push(Span::styled(format!(" {words}"), th.dim()));
        }
        let at = Rect::new(inner.x, inner.y + row as u16, inner.width, 1);
        Line::from(spans).render(at, buf);
    }
}

/// A slow phase in the status line: `pre-training the backbone on x·0.5 + 0.5: epoch 12 of 30 ███░░░ 38 % · q quits`;
/// the words are cut first, the gauge and the quit last (an inspection, one step long, has no gauge).
fn progress_title<'a>(app: &App, p: &crate::protocol::Progress, width: usize) -> Line<'a> {
    let th = &app.theme;
    let sep = th.sep();
    let words = p.words();
    let quit = format!("{sep}q quits");
    let gauge = if p.total > 1 {
        let frac = p.fraction.clamp(0.0, 1.0);
        let cells = 12;
        let full = (frac * cells as f64).round() as usize;
        format!(
            " {}{} {:.0} %",
            th.gauge_full().repeat(full),
            th.gauge_empty().repeat(cells - full),
            100.0 * frac
        )
    } else {
        String::new()
    };
    let room = width
        .saturating_sub(2 + gauge.chars().count() + quit.chars().count())
        .max(8);
    let words = fmt::truncate(&words, room, th.ellipsis());
    Line::from(vec![
        Span::styled(format!(" {words}"), th.tone(Tone::Info)),
        Span::styled(gauge, th.strong()),
        Span::styled(format!("{quit} "), th.dim()),
    ])
}
