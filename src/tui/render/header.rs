//! The header: the setting (model, data, device, momentum in both conventions, t, 1 − mᵗ) and the diagnosis.
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Widget, Wrap};

use crate::protocol::EvalMode;

use super::{panel, title_span};
use crate::format as fmt;
use crate::tui::app::{App, RunState};
use crate::tui::timeline::Timeline;

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
    if let Some(tl) = &app.log {
        return log_titles(app, tl);
    }
    let Some(info) = &app.store.info else {
        let mut s = "bnscope".to_string();
        if !app.data_label.is_empty() {
            s.push_str(sep);
            s.push_str(&app.data_label);
        }
        return vec![s];
    };
    let n = info.train_images;
    let held = held_out_words(info);
    let classes = if info.classes.is_empty() {
        format!("{n} images{held}")
    } else if info.classes.len() <= 4 {
        format!("{n} images ({}){held}", info.classes.join(", "))
    } else {
        format!("{n} images, {} classes{held}", info.classes.len())
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

/// ` + 60 held-out` when the evaluations are on held-out images.
fn held_out_words(info: &crate::protocol::RunInfo) -> String {
    match info.eval_on {
        crate::protocol::EvalOn::Val => format!(" + {} held-out", info.images.len()),
        crate::protocol::EvalOn::Train => String::new(),
    }
}

/// `REPLAY · run.jsonl · ResNet-18 · torch · 3 images (cat, coffee, rocket)`, then shorter forms.
fn log_titles(app: &App, tl: &Timeline) -> Vec<String> {
    let sep = app.theme.sep();
    let word = if tl.watch { "WATCH" } else { "REPLAY" };
    let first = tl.files.first().map_or("", |f| f.shown.as_str());
    let file = match tl.files.len() {
        0 | 1 => first.to_string(),
        n => format!("{first} +{} rank log{}", n - 1, if n == 2 { "" } else { "s" }),
    };
    // `N` chose another rank for the layers and channel panels: said with the file's name, in every form.
    let detail = match tl.files.get(tl.detail) {
        Some(f) if tl.detail > 0 => format!("{sep}layers: {}", f.shown.rsplit('/').next().unwrap_or(&f.shown)),
        _ => String::new(),
    };
    let file = format!("{file}{detail}");
    let steering = match (app.steer.pid, &app.steer.host) {
        _ if !app.steering() => String::new(),
        (Some(pid), Some(host)) => format!("{sep}steering pid {pid} on {host}"),
        (Some(pid), None) => format!("{sep}steering pid {pid}"),
        _ => format!("{sep}steering"),
    };
    let word = if app.steering() { "WATCHING" } else { word };
    let head = format!("{word}{steering}{sep}{file}");
    // Narrow: the file's own name, without its directory or the rank count.
    let base = first.rsplit('/').next().unwrap_or(first);
    let short = format!("{word}{steering}{sep}{base}{detail}");
    let bare = format!("{word}{steering}{detail}");
    let Some(info) = &app.store.info else {
        return vec![head, short, bare, word.to_string()];
    };
    let model = model_name(&info.model);
    let n = info.train_images;
    let held = held_out_words(info);
    let mut facts: Vec<String> = Vec::new();
    if !model.is_empty() {
        facts.push(model.clone());
    }
    facts.push(info.framework.clone());
    let classes = match (n, info.classes.len()) {
        (0, 0) => None,
        (0, c) => Some(format!("{c} classes")),
        (n, 0) => Some(format!("{n} images{held}")),
        (n, c) if c <= 4 => Some(format!("{n} images ({}){held}", info.classes.join(", "))),
        (n, c) => Some(format!("{n} images, {c} classes{held}")),
    };
    let mut long = facts.clone();
    long.extend(classes);
    let join = |parts: &[String]| {
        std::iter::once(head.clone())
            .chain(parts.iter().cloned())
            .collect::<Vec<_>>()
            .join(sep)
    };
    vec![
        join(&long),
        join(&facts),
        join(&facts[..1]),
        head.clone(),
        short,
        bare,
        word.to_string(),
    ]
}

/// The log's side of the header: `epoch 12 (12 of 200) · step 12 · ❚❚ at epoch 12`, `▶ playing`, `following`.
fn log_right<'a>(app: &App, tl: &Timeline) -> Line<'a> {
    use crate::tui::theme::Tone;
    use crate::tui::timeline::FileState;
    let th = &app.theme;
    let sep = th.sep();
    let mut parts = Vec::new();
    if let Some(m) = &app.store.latest {
        parts.push(format!("epoch {} ({} of {})", m.epoch, tl.cursor + 1, tl.entries.len()));
        if let Some(s) = m.step {
            parts.push(format!("step {s}"));
        }
        if let Some(ms) = m.step_ms {
            parts.push(ms_text(ms));
        }
    }
    let refused = tl.files.iter().find_map(|f| match &f.state {
        FileState::Refused(_) => Some(f.shown.clone()),
        _ => None,
    });
    let waiting = tl.files.iter().find(|f| f.state == FileState::Waiting);
    let (tone, state) = if let Some(f) = refused {
        (Tone::Bad, format!("{} {f}: not a bnscope log", th.warn()))
    } else if let Some(f) = waiting {
        (Tone::Warn, format!("waiting for {}…", f.shown))
    } else if tl.playing {
        (Tone::Good, format!("{} playing", th.play()))
    } else if app.steering() && app.steer.paused {
        (Tone::Warn, format!("{} run paused (space resumes it)", th.pause()))
    } else if tl.watch && tl.following {
        // How long the log has been quiet, and whether its writer (the `run` record's pid on this host) still runs.
        let (words, warn) = app.writer.words(tl.end.is_some());
        (if warn { Tone::Warn } else { Tone::Good }, words)
    } else if let (false, Some((_, reason))) = (tl.watch, &tl.end) {
        if tl.following {
            // At the last epoch: how the run ended (its epochs are in "N of N").
            (Tone::Info, format!("end: {}", crate::terminal::printable(reason)))
        } else {
            (Tone::Info, format!("{} cursor", th.pause()))
        }
    } else if tl.watch {
        (Tone::Warn, format!("{} scrolled back (End follows)", th.pause()))
    } else if tl.following && tl.entries.is_empty() {
        (Tone::Info, "no epochs".to_string())
    } else {
        (Tone::Info, format!("{} cursor", th.pause()))
    };
    let mut spans = vec![Span::raw(" ")];
    if !parts.is_empty() {
        spans.push(Span::styled(parts.join(sep), th.text()));
        spans.push(Span::raw(sep));
    }
    spans.push(Span::styled(
        state,
        th.tone(tone).add_modifier(ratatui::style::Modifier::BOLD),
    ));
    spans.push(Span::raw(" "));
    Line::from(spans).right_aligned()
}

fn ms_text(ms: f64) -> String {
    fmt::non_finite(ms).map_or_else(
        || {
            if ms >= 100.0 {
                format!("{ms:.0} ms/step")
            } else {
                format!("{ms:.1} ms/step")
            }
        },
        |s| format!("{s} ms/step"),
    )
}

/// `epoch 5 · step 5 · 8.1 ms/step · ▶ running`; `compact` (below 80 columns): `epoch 5 · ▶ running`; `wide`
/// adds the clock and the memory: `epoch 40/100 · 12 s, ETA 18 s · RSS 84 MB · step 40 · …`.
fn right_title<'a>(app: &App, compact: bool, wide: bool) -> Line<'a> {
    if let Some(tl) = &app.log {
        return log_right(app, tl);
    }
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
        if let (true, Some(c)) = (wide, &app.clock) {
            let mut t = crate::tui::clock::duration(c.elapsed);
            if let (Some(eta), false) = (c.eta, app.paused) {
                t.push_str(&format!(", ETA {}", crate::tui::clock::duration(eta)));
            }
            parts.push(t);
            if let Some(b) = c.rss {
                parts.push(format!("RSS {}", crate::tui::clock::megabytes(b)));
            }
        }
        if !compact {
            parts.push(format!("step {}", m.step.unwrap_or(0)));
            parts.push(ms_text(m.step_ms.unwrap_or(0.0)));
        }
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
    let missing = fmt::MISSING;
    if app.store.from_log && app.store.latest.is_none() {
        return Line::from(Span::styled("waiting for the log's first epoch…", th.dim()));
    }
    if let Some(norm) = app.store.norm_without_running() {
        // Nothing to travel: each image is normalised by its own statistics, in training and evaluation alike.
        let long = format!("{norm}: no running statistics{sep}each image normalised by its own, train and eval alike");
        let text = if long.chars().count() <= width {
            long
        } else {
            format!("{norm}: no running statistics")
        };
        return Line::from(Span::styled(text, th.strong()));
    }
    let value = if app
        .store
        .latest
        .as_ref()
        .is_some_and(|m| m.momentum.is_none() && !m.cumulative)
    {
        missing.to_string()
    } else {
        app.momentum_words()
    };
    let tail_long;
    let tail_short;
    let Some(t) = app.store.t() else {
        // A log without `t` (or a momentum): how far the running statistics moved is not known.
        let mut line = vec![Span::styled("momentum ", th.label()), Span::styled(value, th.strong())];
        if app.store.latest.is_some() {
            line.push(Span::styled(sep, th.dim()));
            line.push(Span::styled(format!("updates t: {missing}"), th.text()));
        }
        return Line::from(line);
    };
    if app.cumulative {
        let start = app.store.age.map_or(0.0, |a| a.init_weight);
        (tail_long, tail_short) = fmt::cumulative_words(t, start);
    } else {
        // Exact: 1 − w with w = ∏ mᵢ since the last reset; written as 1 − mᵗ while one momentum did all updates.
        let age = app.store.age.unwrap_or(crate::protocol::StatsAge::START);
        let frac = fmt::percent(age.travelled());
        let product = match age.constant_momentum {
            _ if t == 0 => format!("1{}{}{}", th.minus(), fmt::momentum(app.momentum), th.power(0)),
            // Recalibrated, or cumulative from the start: nothing of the start is left.
            _ if age.init_weight == 0.0 => format!("1{}0", th.minus()),
            Some(c) => format!("1{}{}{}", th.minus(), fmt::momentum(c), th.power(t)),
            None if th.ascii => "1-prod(m_i)".to_string(),
            None => format!("1{}∏mᵢ", th.minus()),
        };
        if age.init_weight == 0.0 && t > 0 {
            // A recalibration (or cumulative averaging from a reset) left no weight on the start (0, 1): the
            // statistics are the data's estimate, and "travelled 100%" would read as "converged".
            tail_long = "running stats = the data's estimate (no start left)".to_string();
            tail_short = "no start left".to_string();
        } else {
            tail_long = format!("running stats travelled {product} = {frac}");
            tail_short = format!("travelled {product} = {frac}");
        }
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
    let short_value = value.replace("PyTorch/candle", "PyTorch");
    let short = vec![
        ("m ".to_string(), short_value.clone()),
        (String::new(), format!("t={t}")),
        (String::new(), tail_short.clone()),
    ];
    // Narrower still (60 columns): one convention (the first shown), then without t (the power shows it).
    let first_only = short_value.split(" = ").next().unwrap_or(&short_value).to_string();
    let narrow = vec![
        ("m ".to_string(), first_only.clone()),
        (String::new(), format!("t={t}")),
        (String::new(), tail_short.clone()),
    ];
    let narrowest = vec![("m ".to_string(), first_only), (String::new(), tail_short)];
    let parts = [long.to_vec(), short, narrow]
        .into_iter()
        .find(|p| fits(p))
        .unwrap_or(narrowest);
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
    // (Without an age, the momentum line already says that t is not in this log.)
    let mut parts: Vec<(String, u8)> = Vec::new();
    // (GroupNorm: the momentum line already says there are no running statistics.)
    if app.store.age.is_some() && app.store.norm_without_running().is_none() {
        parts.push((app.convergence_words(), 9));
    }
    if let Some(p) = app.pace {
        // Over a log the pace is the playback's (space).
        let text = if app.store.from_log {
            fmt::pace(p).replacen("pace", "playback", 1)
        } else {
            fmt::pace(p)
        };
        parts.push((text, 6));
    }
    if let Some(tl) = &app.log {
        // Only what the log says.
        if let Some(run) = tl.current().and_then(|e| tl.runs.get(e.run as usize)).map(|r| &r.run) {
            if let Some(b) = run.batch_size {
                parts.push((format!("batch {b}"), 4));
            }
            if let Some(e) = run.eval_batch_size.filter(|&e| Some(e) != run.batch_size) {
                parts.push((format!("eval batch {e}"), 7));
            }
            if let Some(t) = run.val_transform.as_deref().filter(|t| *t != "none") {
                parts.push((format!("eval input {}", crate::terminal::printable(t)), 7));
            }
            match (&run.optimizer, run.lr) {
                (Some(o), Some(lr)) => parts.push((format!("{} lr {lr}", crate::terminal::printable(o)), 3)),
                (None, Some(lr)) => parts.push((format!("lr {lr}"), 3)),
                (Some(o), None) => parts.push((crate::terminal::printable(o).into_owned(), 3)),
                (None, None) => {}
            }
            if let Some(seed) = run.seed {
                parts.push((format!("seed {seed}"), 2));
            }
        }
    } else if let Some(i) = &app.store.info {
        parts.push((format!("batch {}", i.batch_size), 4));
        if i.eval_batch_size != i.batch_size {
            parts.push((format!("eval batch {}", i.eval_batch_size), 7));
        }
        if i.val_transform != "none" {
            parts.push((format!("eval input {}", i.val_transform), 7));
        }
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
    // Narrow: "eval: " instead of "eval mode: ", so that the convergence words stay whole.
    let label = if len(&parts, with_how) > width {
        "eval: "
    } else {
        "eval mode: "
    };
    let mut spans = vec![Span::styled(label, th.label()), Span::styled(mode, mode_style)];
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
    let titles = left_titles(app);
    // The clock and the memory where the whole left title (or its first shorter form) still fits beside them.
    let wide = right_title(app, false, true);
    let room_wide = (area.width as usize).saturating_sub(wide.width() + 6);
    let right = if area.width >= 80 && titles.iter().take(2).any(|t| t.chars().count() <= room_wide) {
        wide
    } else {
        right_title(app, area.width < 80, false)
    };
    let room = (area.width as usize).saturating_sub(right.width() + 6);
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
