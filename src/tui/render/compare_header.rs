//! The compare view's header: what differs between the runs (from their `run` records), then a line per run with
//! its marker, its settings that differ, both evaluations at the cursor and how far its running statistics have
//! come.
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::Widget;

use crate::compare::percent;
use crate::format as fmt;
use crate::tui::theme::{Theme, Tone};

/// One run's line.
pub struct RunLine<'a> {
    pub glyph: &'static str,
    pub style: Style,
    pub letter: char,
    pub file: &'a str,
    /// Its values of the settings that differ (empty: none differ).
    pub label: &'a str,
    /// Its epoch under the cursor.
    pub epoch: Option<u64>,
    pub running: Option<f64>,
    pub batch: Option<f64>,
    pub travelled: Option<f64>,
    /// The epoch its running statistics came within 1 % of the way, if by the cursor.
    pub caught_up: Option<u64>,
    /// Drawn in the charts and layers (the run picker).
    pub shown: bool,
    pub refused: Option<&'a str>,
}

/// The header's narrow view.
pub struct Header<'a> {
    pub theme: &'a Theme,
    pub epoch: u64,
    pub newest: u64,
    pub following: bool,
    pub phrases: &'a [String],
    /// Every run's `run` record has been read (else what differs is not known yet).
    pub known: bool,
    pub runs: &'a [RunLine<'a>],
    /// Lines for runs (the rest are summed up on the last).
    pub rows: usize,
}

fn acc(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |v| fmt::acc(v as f32))
}

impl Widget for Header<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let t = self.theme;
        let w = area.width as usize;
        let sep = t.sep();
        let what = if !self.known {
            "waiting for every log's `run` record".to_string()
        } else if self.phrases.is_empty() {
            "the runs' settings are the same".to_string()
        } else {
            self.phrases.join("; ")
        };
        let at = if self.following {
            format!("epoch {} (newest)", self.epoch)
        } else {
            format!("epoch {} of {}", self.epoch, self.newest)
        };
        let first = Line::from(vec![
            Span::styled("bnscope compare", t.title()),
            Span::styled(sep.to_string(), t.dim()),
            Span::styled(at, t.strong()),
            Span::styled(sep.to_string(), t.dim()),
            Span::styled(what, t.text()),
        ]);
        buf.set_line(area.x, area.y, &first, area.width);
        for (k, r) in self.runs.iter().take(self.rows).enumerate() {
            let y = area.y + 1 + k as u16;
            if k + 1 == self.rows && self.runs.len() > self.rows {
                let more = self.runs.len() - self.rows + 1;
                let line = format!(
                    "{} more runs ({}-{}): 1-8 show or hide a run, ? lists the keys",
                    more,
                    self.runs[self.rows - 1].letter,
                    self.runs[self.runs.len() - 1].letter
                );
                buf.set_stringn(area.x, y, line, w, t.dim());
                break;
            }
            // The settings that differ name the run; the file comes last (the first thing cut at 80 columns).
            let base = std::path::Path::new(r.file)
                .file_name()
                .map_or(r.file.to_string(), |f| f.to_string_lossy().into_owned());
            let name = if r.label.is_empty() {
                base.clone()
            } else {
                r.label.to_string()
            };
            let mut spans = vec![
                Span::styled(format!("{} {} ", r.glyph, r.letter), r.style),
                Span::styled(name, if r.shown { t.strong() } else { t.dim() }),
            ];
            if !r.shown {
                // Said first, so that it is never cut off: the run picker's key brings it back.
                spans.push(Span::styled(
                    format!("{sep}hidden ({})", (r.letter as u8 - b'A' + 1)),
                    t.dim(),
                ));
            }
            if let Some(msg) = r.refused {
                spans.push(Span::styled(format!("{sep}{msg}"), t.tone(Tone::Bad)));
            } else if r.epoch.is_none() {
                spans.push(Span::styled(format!("{sep}no epoch yet"), t.dim()));
            } else {
                let (words, tone) = match (r.caught_up, r.travelled) {
                    (Some(e), _) => (format!("{sep}running stats 99% caught up at epoch {e}"), Tone::Good),
                    (None, Some(v)) => (format!("{sep}running stats {} of the way", percent(v)), Tone::Warn),
                    (None, None) => (format!("{sep}running stats: {}", fmt::MISSING), Tone::Info),
                };
                spans.push(Span::styled(words, t.tone(tone)));
                spans.push(Span::styled(
                    format!("{sep}eval acc running {} / batch {}", acc(r.running), acc(r.batch)),
                    t.text(),
                ));
            }
            if !r.label.is_empty() {
                spans.push(Span::styled(format!("{sep}{base}"), t.dim()));
            }
            if !r.shown {
                spans.push(Span::styled(
                    format!("{sep}hidden ({})", (r.letter as u8 - b'A' + 1)),
                    t.dim(),
                ));
            }
            buf.set_line(area.x, y, &Line::from(spans), area.width);
        }
    }
}
