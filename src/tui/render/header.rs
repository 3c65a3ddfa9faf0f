//! The header: the setting (model, data, device, momentum in both conventions, t, 1 − mᵗ) and the diagnosis.
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Widget, Wrap};

use crate::protocol::EvalMode;

use super::{panel, title_span};
use crate::tui::app::{App, RunState};
use crate::tui::fmt;

fn model_name(model: &str) -> String {
    match model {
        "tiny" => "tiny ResNet".to_string(),
        other => match other.strip_prefix("resnet") {
            Some(depth) => format!("ResNet-{depth}"),
            None => other.to_string(),
        },
    }
}

/// `bnscope · tiny ResNet · 3 images (cat, coffee, rocket) · cpu (2 threads)`, then shorter forms for narrower
/// terminals (device details, then class names go first), so that the title is never cut in the middle.
fn left_titles(app: &App) -> Vec<String> {
    let sep = app.theme.sep();
    let Some(info) = &app.store.info else {
        let mut s = "bnscope".to_string();
        if !app.data_label.is_empty() {
            s.push_str(sep);
            s.push_str(&app.data_label);
        }
        return vec![s];
    };
    let n = info.images.len();
    let classes = if info.classes.len() <= 4 {
        format!("{n} images ({})", info.classes.join(", "))
    } else {
        format!("{n} images, {} classes", info.classes.len())
    };
    let device_short = info.device.split_whitespace().next().unwrap_or("").to_string();
    let mut model = model_name(&info.model);
    if info.weights.is_some() {
        model.push_str(" (imported)");
    }
    let join = |parts: &[&str]| parts.join(sep);
    let mut v = Vec::new();
    if let Some(f) = &info.frozen_bn {
        // Fine-tuning: what trains and how the frozen BatchNorm layers behave, before anything else is shortened.
        let frozen = format!("fc only, frozen BN: {f}");
        v.push(join(&["bnscope", &model, &frozen, &classes, &device_short]));
        v.push(join(&["bnscope", &model, &frozen, &format!("{n} images")]));
        v.push(join(&["bnscope", &model, &format!("BN {f}")]));
    }
    v.extend([
        join(&["bnscope", &model, &classes, &info.device]),
        join(&["bnscope", &model, &classes, &device_short]),
        join(&["bnscope", &model, &format!("{n} images"), &device_short]),
        join(&["bnscope", &model, &format!("{n} images")]),
        join(&["bnscope", &info.model]),
    ]);
    v
}

/// `epoch 5 · step 5 · 8.1 ms/step · ▶ running`.
fn right_title<'a>(app: &App) -> Line<'a> {
    let th = &app.theme;
    let sep = th.sep();
    let mut parts = Vec::new();
    if let Some(m) = &app.store.latest {
        let of = app
            .store
            .info
            .as_ref()
            .and_then(|i| i.epochs)
            .map_or(String::new(), |e| format!("/{e}"));
        parts.push(format!("epoch {}{of}", m.epoch));
        parts.push(format!("step {}", m.step));
        let ms = fmt::non_finite(m.step_ms).map_or_else(
            || {
                if m.step_ms >= 100.0 {
                    format!("{:.0} ms/step", m.step_ms)
                } else {
                    format!("{:.1} ms/step", m.step_ms)
                }
            },
            |s| format!("{s} ms/step"),
        );
        parts.push(ms);
    }
    let state = app.run_state();
    let (tone, word) = state.word();
    let icon = if state.held() {
        th.pause()
    } else if state == RunState::Running {
        th.play()
    } else {
        ""
    };
    let mut spans = vec![Span::raw(" ")];
    if !parts.is_empty() {
        spans.push(Span::styled(parts.join(sep), th.text()));
        spans.push(Span::raw(sep));
    }
    let state = if icon.is_empty() {
        word.to_string()
    } else {
        format!("{icon} {word}")
    };
    spans.push(Span::styled(
        state,
        th.tone(tone).add_modifier(ratatui::style::Modifier::BOLD),
    ));
    spans.push(Span::raw(" "));
    Line::from(spans).right_aligned()
}

/// The momentum line, long or short to fit `width`.
fn momentum_line<'a>(app: &App, width: usize) -> Line<'a> {
    let th = &app.theme;
    let sep = th.sep();
    let t = app.store.t();
    let value = app.momentum_words();
    let tail_long;
    let tail_short;
    if app.cumulative {
        tail_long = format!("running stats = mean of {t} batches");
        tail_short = format!("mean of {t} batches");
    } else {
        // Exact: 1 − w with w = ∏ mᵢ since the last reset; written as 1 − mᵗ while one momentum did all updates.
        let age = &app.store.age;
        let frac = fmt::percent(age.travelled());
        let product = match age.constant_momentum {
            _ if t == 0 => format!("1{}{}{}", th.minus(), fmt::momentum(app.momentum), th.power(0)),
            // Recalibrated, or cumulative from the start: nothing of the start is left.
            _ if age.init_weight == 0.0 => format!("1{}0", th.minus()),
            Some(c) => format!("1{}{}{}", th.minus(), fmt::momentum(c), th.power(t)),
            None if th.ascii => "1-prod(m_i)".to_string(),
            None => format!("1{}∏mᵢ", th.minus()),
        };
        tail_long = format!("running stats travelled {product} = {frac}");
        tail_short = format!("travelled {product} = {frac}");
    }
    let long = [
        ("momentum ".to_string(), value.clone()),
        (String::new(), format!("updates t={t}")),
        (String::new(), tail_long),
    ];
    let fits = |parts: &[(String, String)]| {
        parts
            .iter()
            .map(|(a, b)| a.chars().count() + b.chars().count())
            .sum::<usize>()
            + 3 * (parts.len() - 1)
            <= width
    };
    let parts = if fits(&long) {
        long.to_vec()
    } else {
        let value = value.replace("PyTorch/candle", "PyTorch");
        vec![
            ("m ".to_string(), value),
            (String::new(), format!("t={t}")),
            (String::new(), tail_short),
        ]
    };
    let mut spans = Vec::new();
    for (i, (label, v)) in parts.into_iter().enumerate() {
        if i > 0 {
            spans.push(Span::styled(sep, th.dim()));
        }
        if !label.is_empty() {
            spans.push(Span::styled(label, th.label()));
        }
        let style = if i == 0 { th.strong() } else { th.text() };
        spans.push(Span::styled(v, style));
    }
    Line::from(spans)
}

/// The eval-mode line.
fn eval_line<'a>(app: &App, width: usize) -> Line<'a> {
    let th = &app.theme;
    let sep = th.sep();
    let (mode, how) = match app.eval_mode {
        EvalMode::Running => ("RUNNING STATS", "model.evaluate"),
        EvalMode::Batch => ("BATCH STATS", "learning_phase=1"),
    };
    let mode_style = match app.eval_mode {
        EvalMode::Running => th.running(),
        EvalMode::Batch => th.batch(),
    }
    .add_modifier(ratatui::style::Modifier::BOLD);
    // (text, priority) in display order; the lowest priorities go first when the line is too narrow, so the same
    // facts sit in the same places at every width.
    let mut parts: Vec<(String, u8)> = vec![(app.convergence_words(), 9)];
    if let Some(p) = app.pace {
        parts.push((fmt::pace(p), 6));
    }
    if let Some(i) = &app.store.info {
        parts.push((format!("batch {}", i.batch_size), 4));
        parts.push((format!("{} lr {}", i.optimizer, i.lr), 3));
        parts.push((format!("seed {}", i.seed), 2));
    }
    let how = format!(" ({how})");
    let fixed = "eval mode: ".len() + mode.len();
    let len = |parts: &[(String, u8)], with_how: bool| {
        fixed
            + if with_how { how.len() } else { 0 }
            + parts
                .iter()
                .map(|(p, _)| p.chars().count() + sep.chars().count())
                .sum::<usize>()
    };
    let mut with_how = true;
    for floor in 0..=9u8 {
        if len(&parts, with_how) <= width {
            break;
        }
        if floor == 5 {
            with_how = false;
        }
        parts.retain(|(_, p)| *p > floor || *p == 9);
    }
    let mut spans = vec![Span::styled("eval mode: ", th.label()), Span::styled(mode, mode_style)];
    if with_how {
        spans.push(Span::styled(how, th.dim()));
    }
    for (i, (p, _)) in parts.into_iter().enumerate() {
        spans.push(Span::styled(sep, th.dim()));
        spans.push(Span::styled(p, if i == 0 { th.text() } else { th.dim() }));
    }
    Line::from(spans)
}

/// Lines a greedy word wrap of `text` takes at `width` columns.
fn wrapped_lines(text: &str, width: usize) -> usize {
    if width == 0 {
        return usize::MAX;
    }
    let mut lines = 1;
    let mut col = 0;
    for word in text.split_whitespace() {
        let n = word.chars().count();
        if col == 0 {
            col = n;
        } else if col + 1 + n <= width {
            col += 1 + n;
        } else {
            lines += 1;
            col = n;
        }
        while col > width {
            lines += 1;
            col -= width;
        }
    }
    lines
}

pub fn render(app: &App, area: Rect, buf: &mut Buffer) {
    let th = &app.theme;
    let right = right_title(app);
    let room = (area.width as usize).saturating_sub(right.width() + 6);
    let titles = left_titles(app);
    let fits = titles.iter().find(|t| t.chars().count() <= room);
    let left = fits
        .cloned()
        .unwrap_or_else(|| fmt::truncate(titles.last().expect("a title"), room, th.ellipsis()));
    let block = panel(th, title_span(th, left)).title(right);
    let inner = block.inner(area);
    block.render(area, buf);
    if inner.height == 0 {
        return;
    }
    let w = inner.width as usize;
    let rows = [momentum_line(app, w), eval_line(app, w)];
    for (i, line) in rows.into_iter().enumerate() {
        if (i as u16) < inner.height {
            line.render(Rect::new(inner.x, inner.y + i as u16, inner.width, 1), buf);
        }
    }
    if inner.height > 2 {
        let d = app.diagnosis();
        let rows = (inner.height - 2) as usize;
        let text = if wrapped_lines(&d.long, w) <= rows {
            d.long
        } else {
            d.short
        };
        Paragraph::new(text)
            .style(th.tone(d.tone))
            .wrap(Wrap { trim: true })
            .render(Rect::new(inner.x, inner.y + 2, inner.width, inner.height - 2), buf);
    }
}
