//! The `?` overlay, generated from the binding table.
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Widget};

use super::title_span;
use crate::format as fmt;
use crate::tui::app::{App, LADDER};
use crate::tui::keys::{self, Action};

/// The help's width in `area`.
fn width(area: Rect) -> u16 {
    88.min(area.width.saturating_sub(2))
}

/// Lines the help shows at once in `area`.
fn visible(area: Rect) -> usize {
    area.height.saturating_sub(4) as usize
}

/// The furthest the help scrolls in `area` (0 when it fits).
pub fn max_scroll(app: &App, area: Rect) -> usize {
    lines(app, area).len().saturating_sub(visible(area))
}

pub fn render(app: &App, area: Rect, buf: &mut Buffer) {
    let th = &app.theme;
    let all = lines(app, area);
    let room = visible(area);
    let first = app.help_scroll.min(all.len().saturating_sub(room));
    let n = all.len();
    let shown: Vec<Line> = all.into_iter().skip(first).take(room).collect();
    let bottom = if n > room {
        let (d, up, down) = if th.ascii {
            ("-", "Up", "Down")
        } else {
            ("–", "↑", "↓")
        };
        format!(
            " {}{d}{} of {n} · {up}{down} PgUp PgDn scroll · ? or Esc closes ",
            first + 1,
            first + shown.len()
        )
        .replace(" · ", th.sep())
    } else {
        " ? or Esc closes ".to_string()
    };
    overlay(app, area, width(area), shown, "keys", &bottom, buf);
}

/// Every line of the help, wrapped to its width (each key's text under its own column).
fn lines<'a>(app: &App, area: Rect) -> Vec<Line<'a>> {
    let th = &app.theme;
    let ladder: Vec<String> = LADDER.iter().map(|&m| fmt::momentum(m)).collect();
    // The layer-navigation keys share one row, so that the whole table fits 80×24.
    let nav = [
        Action::Up,
        Action::Down,
        Action::PageUp,
        Action::PageDown,
        Action::Home,
        Action::End,
    ];
    let w = width(area);
    let note_w = (w as usize).saturating_sub(3).max(10);
    let note = |lines: &mut Vec<Line<'a>>, text: String| {
        for part in wrap(text.trim_start(), note_w) {
            lines.push(Line::from(Span::styled(format!(" {part}"), th.dim())));
        }
    };
    let text_w = (w as usize).saturating_sub(2 + 14 + 1).max(10);
    let mut lines: Vec<Line> = Vec::new();
    let row = |lines: &mut Vec<Line<'a>>, keys: String, help: &str| {
        for (i, part) in wrap(&help.replace("<->", th.arrow()), text_w).into_iter().enumerate() {
            let k = if i == 0 { keys.clone() } else { String::new() };
            lines.push(Line::from(vec![
                Span::styled(format!(" {k:<13} "), th.key()),
                Span::styled(part, th.text()),
            ]));
        }
    };
    let log = app.store.from_log;
    for b in keys::table() {
        if b.log_only && !log {
            continue;
        }
        if log && b.changes_run && !app.can_act(b) {
            // Over a log these change nothing: listed once, dimmed.
            continue;
        }
        if nav.contains(&b.action) {
            if b.action == Action::Up {
                let (up, down) = (keys::binding(Action::Up), keys::binding(Action::Down));
                let built_in =
                    |b: &keys::Binding| keys::BINDINGS.iter().any(|o| o.action == b.action && o.keys == b.keys);
                let label = if !built_in(up) || !built_in(down) {
                    // Remapped in the config file: its keys, as the footer shows them.
                    format!("{} / {}", up.keys_label(), down.keys_label())
                } else if log {
                    "Up/Down j/k".into()
                } else {
                    "arrows j/k".into()
                };
                row(
                    &mut lines,
                    label,
                    if log {
                        "select a BatchNorm layer (PgUp/PgDn: ten); Home/End: the first/newest epoch"
                    } else {
                        "select a BatchNorm layer (PgUp/PgDn: ten, Home/End)"
                    },
                );
            }
            continue;
        }
        // Over a log some keys do the log's version of their job.
        let help = match b.action {
            Action::PauseResume if log => "play the log back from the cursor at the pace / stop",
            Action::Slower if log => "slower playback",
            Action::Faster if log => "faster playback",
            Action::Help if log => "this help (? or Esc closes it)",
            Action::Quit if log => "quit",
            _ => b.help,
        };
        row(&mut lines, b.keys_label(), help);
    }
    if log {
        let dimmed: Vec<String> = keys::table()
            .iter()
            .filter(|b| b.changes_run && !app.can_act(b))
            .map(|b| b.keys_label())
            .collect();
        note(
            &mut lines,
            format!(" {}: change a live run; a log is read-only", dimmed.join(" ")),
        );
    }
    note(&mut lines, format!(" momentum ladder: {}", ladder.join(" ")));
    note(
        &mut lines,
        " Keras m = 1 - PyTorch m: running = m*running + (1-m)*batch (Keras)".into(),
    );
    if let Some(info) = app
        .store
        .info
        .as_ref()
        .filter(|i| i.eval_on == crate::protocol::EvalOn::Val)
    {
        note(
            &mut lines,
            format!(
                " val running / val batch: evaluated on {} held-out images; training and c use the {} training images",
                info.images.len(),
                info.train_images
            ),
        );
    }
    // The legend of the symbols on screen, as far as there is room.
    let (rm, bm, both) = th.markers();
    let legend = format!(
        "{} headline evaluation, {rm} running, {bm} batch, {both} both, {} zero. Charts: the whole run, each column's \
         bar the mean of its epochs, shaded where their min and max spread wider; a replay's cursor reversed, {} under \
         it. Events row: e eval mode, m momentum, u cumulative, r reset, c recalibrate, R restart, ! diverged. Gauges: \
         mean, how close running is to batch (1 - |r-b|/|b|); var, how many times apart.",
        th.left_mark(),
        th.axis(),
        th.cursor_mark()
    );
    for l in wrap(&legend, w.saturating_sub(3) as usize) {
        lines.push(Line::from(Span::styled(format!(" {l}"), th.dim())));
    }
    lines
}

/// A bordered box of width `w`, centred in `area`, holding `lines` (as many as fit), with a title and a note at
/// the bottom right: the help's and the lessons' overlays.
pub(super) fn overlay(app: &App, area: Rect, w: u16, lines: Vec<Line>, title: &str, bottom: &str, buf: &mut Buffer) {
    let th = &app.theme;
    let h = (lines.len() as u16 + 2).min(area.height.saturating_sub(2));
    let r = Rect::new(area.x + (area.width - w) / 2, area.y + (area.height - h) / 2, w, h);
    Clear.render(r, buf);
    let block = ratatui::widgets::Block::bordered()
        .border_set(th.border_set())
        .border_style(th.title())
        .title(title_span(th, title))
        .title_bottom(Line::from(Span::styled(bottom.to_string(), th.dim())).right_aligned());
    let inner = block.inner(r);
    block.render(r, buf);
    for (i, l) in lines.into_iter().enumerate() {
        if (i as u16) < inner.height {
            l.render(Rect::new(inner.x, inner.y + i as u16, inner.width, 1), buf);
        }
    }
}

/// `text` in lines of at most `width` characters, broken at spaces.
pub(super) fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut cur = String::new();
    for word in text.split_whitespace() {
        if !cur.is_empty() && cur.chars().count() + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut cur));
        }
        if !cur.is_empty() {
            cur.push(' ');
        }
        cur.push_str(word);
    }
    if !cur.is_empty() {
        lines.push(cur);
    }
    lines
}
