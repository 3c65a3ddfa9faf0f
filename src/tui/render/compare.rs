//! The compare view's layout (`impl Widget for &CompareView`) and each run's colour and marker. Each panel has its
//! own file and takes the narrow view it draws: `compare_header.rs`, `compare_chart.rs`, `compare_layers.rs`,
//! `compare_footer.rs` (footer and help).
//!
//! Layout: the header (a line of what differs, a line per run), accuracy | loss overlaid, the layers side by side,
//! the footer. Below 60×16: one line.
use ratatui::buffer::Buffer;
use ratatui::layout::{Alignment, Rect};
use ratatui::style::{Color, Style};
use ratatui::text::Line;
use ratatui::widgets::{Paragraph, Widget};

use super::compare_chart::{Overlay, Trace};
use super::compare_header::{Header, RunLine};
use super::compare_layers::{Column, LayersPanel};
use super::{MIN_HEIGHT, MIN_WIDTH};
use crate::compare::{differences, letter, Point};
use crate::logfile::Metric;
use crate::tui::compare::CompareView;
use crate::tui::theme::{Theme, Tone};

const COLORS: [Color; crate::compare::MAX_RUNS] = [
    Color::Cyan,
    Color::Yellow,
    Color::Magenta,
    Color::Green,
    Color::Red,
    Color::Blue,
    Color::LightCyan,
    Color::White,
];

/// Run `i`'s colour (none under `NO_COLOR`).
pub fn run_style(theme: &Theme, i: usize) -> Style {
    if theme.color {
        Style::new().fg(COLORS[i % COLORS.len()])
    } else {
        Style::new()
    }
}

/// Run `i`'s marker: a different shape per run, so that the runs stay apart without colour (and under `--ascii`);
/// `*` is a cell several runs share ([`super::compare_chart::SHARED`]).
pub fn run_glyph(theme: &Theme, i: usize) -> &'static str {
    const UNICODE: [&str; crate::compare::MAX_RUNS] = ["●", "✕", "▲", "■", "◆", "○", "+", "□"];
    const ASCII: [&str; crate::compare::MAX_RUNS] = ["o", "x", "^", "#", "@", "%", "+", "&"];
    if theme.ascii {
        ASCII[i % ASCII.len()]
    } else {
        UNICODE[i % UNICODE.len()]
    }
}

/// The rows the header gives to run lines at this height.
fn run_rows(runs: usize, height: u16) -> usize {
    let most = if height >= 40 {
        8
    } else if height >= 30 {
        5
    } else {
        3
    };
    runs.min(most)
}

fn figure(m: Option<Metric>, f: fn(&Metric) -> Option<f64>) -> Option<f64> {
    m.as_ref().and_then(f)
}

impl Widget for &CompareView {
    fn render(self, area: Rect, buf: &mut Buffer) {
        if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
            let x = self.theme.times();
            Paragraph::new(vec![
                Line::from(format!("terminal too small: {}{x}{}", area.width, area.height)),
                Line::from(format!(
                    "bnscope compare needs at least {MIN_WIDTH}{x}{MIN_HEIGHT}; q quits"
                )),
            ])
            .style(self.theme.tone(Tone::Warn))
            .alignment(Alignment::Center)
            .render(area, buf);
            return;
        }
        let theme = &self.theme;
        let runs: Vec<Option<&crate::logfile::Run>> = self.series.iter().map(|s| s.run.as_deref()).collect();
        let diff = differences(&runs);
        let epoch = self.epoch();

        // The header.
        let lines: Vec<RunLine> = self
            .series
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let p: Option<&Point> = self.point(i);
                RunLine {
                    glyph: run_glyph(theme, i),
                    style: run_style(theme, i),
                    letter: letter(i),
                    file: &s.file,
                    label: &diff.labels[i],
                    epoch: p.map(|p| p.epoch),
                    running: p.and_then(|p| figure(p.running, |m| m.acc)),
                    batch: p.and_then(|p| figure(p.batch, |m| m.acc)),
                    travelled: p.and_then(|p| p.travelled),
                    caught_up: s.caught_up.filter(|e| *e <= epoch),
                    shown: self.shown[i],
                    refused: self.refused[i].as_deref(),
                }
            })
            .collect();
        let rows = run_rows(lines.len(), area.height);
        let header_h = 1 + rows as u16;
        let footer_h = 1;
        let rest = area.height - header_h - footer_h;
        // The layers panel takes what its rows need (up to 45 %), the charts the rest.
        let layer_rows = self.layers.iter().flatten().map(Vec::len).max().unwrap_or(1) as u16;
        let layers_h = (layer_rows + 3).min(rest * 9 / 20).min(rest.saturating_sub(7)).max(3);
        let chart_h = rest - layers_h;
        let header_area = Rect::new(area.x, area.y, area.width, header_h);
        let chart_area = Rect::new(area.x, area.y + header_h, area.width, chart_h);
        let layers_area = Rect::new(area.x, chart_area.bottom(), area.width, layers_h);
        let footer_area = Rect::new(area.x, layers_area.bottom(), area.width, footer_h);
        Header {
            theme,
            epoch,
            newest: self.newest(),
            following: self.watching && self.cursor.is_none(),
            phrases: &diff.phrases,
            known: runs.iter().all(Option::is_some),
            runs: &lines,
            rows,
        }
        .render(header_area, buf);

        // The charts: every shown run's evaluation with running statistics.
        let traces = |f: fn(&Metric) -> Option<f64>| -> Vec<Trace> {
            self.series
                .iter()
                .enumerate()
                .filter(|(i, _)| self.shown[*i])
                .map(|(i, s)| Trace {
                    glyph: run_glyph(theme, i),
                    style: run_style(theme, i),
                    points: s
                        .epochs()
                        .filter_map(|p| Some((p.epoch, figure(p.running, f)?)))
                        .collect(),
                })
                .collect()
        };
        let first = self
            .series
            .iter()
            .filter_map(|s| s.epochs().next().map(|p| p.epoch))
            .min()
            .unwrap_or(0);
        let x = (first, self.newest().max(first + 1));
        let acc = traces(|m| m.acc);
        let loss = traces(|m| m.loss);
        let top = loss
            .iter()
            .flat_map(|t| t.points.iter().map(|p| p.1))
            .filter(|v| v.is_finite())
            .fold(0.0f64, f64::max);
        let (left, right) = if chart_area.width >= 80 {
            let w = chart_area.width / 2;
            (
                Rect::new(chart_area.x, chart_area.y, w + 1, chart_area.height),
                Some(Rect::new(
                    chart_area.x + w,
                    chart_area.y,
                    chart_area.width - w,
                    chart_area.height,
                )),
            )
        } else {
            (chart_area, None)
        };
        Overlay {
            theme,
            title: "accuracy: eval with running statistics (model.eval())",
            traces: &acc,
            x,
            y: (0.0, 1.0),
            cursor: epoch,
        }
        .render(left, buf);
        if let Some(r) = right {
            Overlay {
                theme,
                title: "loss: eval with running statistics",
                traces: &loss,
                x,
                y: (0.0, if top > 0.0 { top * 1.05 } else { 1.0 }),
                cursor: epoch,
            }
            .render(r, buf);
        }

        // The layers, per shown run.
        let columns: Vec<Column> = self
            .series
            .iter()
            .enumerate()
            .filter(|(i, _)| self.shown[*i])
            .map(|(i, _)| Column {
                glyph: run_glyph(theme, i),
                style: run_style(theme, i),
                letter: letter(i),
                layers: self.layers[i].as_ref(),
            })
            .collect();
        LayersPanel {
            theme,
            epoch,
            columns: &columns,
            offset: self.layer_offset,
        }
        .render(layers_area, buf);
        super::compare_footer::Footer {
            theme,
            status: self.status.as_deref(),
        }
        .render(footer_area, buf);
        if self.help {
            super::compare_footer::Help { theme }.render(area, buf);
        }
    }
}
