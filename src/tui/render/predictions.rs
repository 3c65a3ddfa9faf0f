//! Predictions: the softmax matrix in the headline evaluation mode, argmax marked right or wrong.
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Modifier;
use ratatui::text::{Line, Span};
use ratatui::widgets::Widget;

use crate::protocol::EvalMode;

use super::{panel, title_span};
use crate::format as fmt;
use crate::tui::app::{argmax, App};
use crate::tui::theme::Tone;

fn mode_words(mode: EvalMode) -> &'static str {
    match mode {
        EvalMode::Running => "running stats",
        EvalMode::Batch => "batch stats",
    }
}

/// The predictions panel as a widget (the whole bordered block).
pub struct Predictions<'a>(pub &'a App);

impl Widget for Predictions<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        render(self.0, area, buf);
    }
}

pub fn render(app: &App, area: Rect, buf: &mut Buffer) {
    let th = &app.theme;
    let mode = app.eval_mode;
    let sep = th.sep();
    let mut title = vec![title_span(th, format!("predictions{sep}eval: {}", mode_words(mode)))];
    let count = app.right_count(mode);
    if let Some((k, n)) = count {
        title.push(Span::styled(
            format!("{}{k} of {n} right ", sep.trim_start()),
            th.tone(if k == n { Tone::Good } else { Tone::Bad })
                .add_modifier(Modifier::BOLD),
        ));
    }
    let block = panel(th, Line::from(title));
    let inner = block.inner(area);
    block.render(area, buf);
    if inner.height == 0 {
        return;
    }
    let (Some(info), Some(preds)) = (&app.store.info, app.predictions(mode)) else {
        let words = if app.store.from_log && app.store.latest.is_some() {
            "predictions: not in this log"
        } else {
            "waiting for the first epoch…"
        };
        buf.set_stringn(inner.x + 1, inner.y, words, inner.width as usize, th.dim());
        return;
    };
    // A log without class names (a Keras callback given none): the columns by class index.
    let by_index: Vec<String>;
    let classes = if info.classes.is_empty() {
        by_index = (0..preds.first().map_or(0, |r| r.len()))
            .map(|j| format!("class {j}"))
            .collect();
        &by_index
    } else {
        &info.classes
    };
    let name_w = info
        .images
        .iter()
        .map(|s| s.chars().count())
        .max()
        .unwrap_or(5)
        .clamp(5, 18) as u16;
    let class_w = classes
        .iter()
        .map(|c| c.chars().count() + 1)
        .max()
        .unwrap_or(8)
        .clamp(8, 11) as u16;
    let side_w: u16 = 34;
    let matrix_room = inner.width.saturating_sub(name_w + 1 + side_w);
    let fit = ((matrix_room / class_w) as usize).max(1);
    let shown_classes = classes.len().min(fit);
    let x0 = inner.x + name_w + 1;
    // Header row: class names.
    for (j, c) in classes.iter().take(shown_classes).enumerate() {
        let x = x0 + j as u16 * class_w;
        let text = if j + 1 == shown_classes && shown_classes < classes.len() {
            th.ellipsis().to_string()
        } else {
            fmt::truncate(c, class_w as usize - 1, th.ellipsis())
        };
        buf.set_stringn(x, inner.y, text, class_w as usize - 1, th.label());
    }
    let rows = inner.height.saturating_sub(1) as usize;
    let n = preds.len().min(info.images.len());
    let shown = if n > rows { rows.saturating_sub(1) } else { n };
    for (i, row) in preds.iter().take(shown).enumerate() {
        let y = inner.y + 1 + i as u16;
        let name = fmt::truncate(&info.images[i], name_w as usize, th.ellipsis());
        buf.set_stringn(inner.x, y, name, name_w as usize, th.text());
        let label = info.labels.get(i).copied();
        let best = argmax(row);
        for (j, p) in row.iter().take(shown_classes).enumerate() {
            let x = x0 + j as u16 * class_w;
            if j + 1 == shown_classes && shown_classes < classes.len() {
                buf.set_string(x, y, th.ellipsis(), th.dim());
                continue;
            }
            let mut style = if p.is_finite() { th.text() } else { th.tone(Tone::Bad) };
            if Some(j) == label {
                style = style.add_modifier(Modifier::UNDERLINED);
            }
            let mut spans = vec![Span::styled(fmt::prob(*p), style)];
            if Some(j) == best {
                let (mark, tone) = if best == label {
                    (th.check(), Tone::Good)
                } else {
                    (th.cross(), Tone::Bad)
                };
                spans.push(Span::styled(format!(" {mark}"), th.tone(tone)));
            }
            Line::from(spans).render(Rect::new(x, y, class_w - 1, 1), buf);
        }
    }
    if shown < n {
        let y = inner.y + 1 + shown as u16;
        let wrong = preds
            .iter()
            .zip(&info.labels)
            .skip(shown)
            .filter(|(r, &l)| argmax(r) != Some(l))
            .count();
        buf.set_stringn(
            inner.x,
            y,
            format!("{} {} more images, {wrong} wrong", th.ellipsis(), n - shown),
            (inner.width.saturating_sub(side_w)) as usize,
            th.dim(),
        );
    }
    // The summary beside the matrix.
    let matrix_end = x0 + shown_classes as u16 * class_w;
    let xs = (matrix_end + 4).min(inner.right().saturating_sub(side_w) + 1);
    if let Some((k, n)) = count {
        let tone = if k == n { Tone::Good } else { Tone::Bad };
        let mut lines = vec![Line::from(vec![
            Span::styled(format!("{k} of {n} right"), th.tone(tone).add_modifier(Modifier::BOLD)),
            Span::styled(format!(" with {}", mode_words(mode)), th.dim()),
        ])];
        if let Some((k2, n2)) = app.right_count(mode.toggled()) {
            lines.push(Line::from(Span::styled(
                format!("{}: {k2} of {n2} (press e)", mode_words(mode.toggled())),
                th.dim(),
            )));
        }
        lines.push(Line::from(Span::styled(
            format!("{} argmax = label  {} wrong", th.check(), th.cross()),
            th.dim(),
        )));
        for (i, l) in lines.into_iter().enumerate() {
            let y = inner.y + i as u16;
            if y < inner.bottom() {
                l.render(Rect::new(xs, y, side_w - 1, 1), buf);
            }
        }
    }
}
