//! Pure rendering: `impl Widget for &App`. Nothing here changes state.
//!
//! Layout at 120×40 (and anything at least 100×30): header, accuracy | loss, layers | channel detail,
//! predictions, footer. Narrower or lower, the loss panel and the channel detail go; where the footer's keys need
//! two lines they get them (from 23 lines up); lower still the predictions go (the layers keep at least two
//! rows), then the layers shrink to one row. Below 60×16: one line.
use ratatui::buffer::Buffer;
use ratatui::layout::{Alignment, Constraint, Layout, Rect, Spacing};
use ratatui::symbols::merge::MergeStrategy;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Padding, Paragraph, Widget};

use super::app::App;
use super::theme::Theme;

pub mod compare;
pub mod compare_chart;
pub mod compare_footer;
pub mod compare_header;
pub mod compare_layers;
pub mod error;
pub mod footer;
pub mod header;
pub mod help;
pub mod history;
pub mod layers;
mod lessons;
pub mod predictions;
pub mod svg;

/// The smallest terminal bnscope draws in (below it, a line saying so).
pub const MIN_WIDTH: u16 = 60;
pub const MIN_HEIGHT: u16 = 16;
/// The lowest terminal with every panel (the predictions go first below it).
pub const FULL_HEIGHT: u16 = 22;

/// Where each panel goes (panels overlap by one cell so that their borders merge).
#[derive(Clone, Copy, Debug)]
pub struct Areas {
    pub header: Rect,
    pub accuracy: Rect,
    pub loss: Option<Rect>,
    pub layers: Rect,
    pub detail: Option<Rect>,
    /// `None` on a low terminal: the first panel to go.
    pub predictions: Option<Rect>,
    pub footer: Rect,
}

/// How many image rows the predictions panel shows for an app in an area.
fn prediction_rows(app: &App, area: Rect) -> u16 {
    let n = app.store.info.as_ref().map_or(3, |i| i.images.len().max(1)) as u16;
    let cap = if area.height >= 36 { 8 } else { 3 };
    n.min(cap)
}

impl Areas {
    /// The declarative layout: header, charts, layers, predictions and footer stacked with their borders
    /// overlapping by one cell; the layers panel takes what is left. At least 100×30 the charts and the layers
    /// split into two columns (the left one a cell wider, the shared border between them).
    pub fn compute(app: &App, area: Rect) -> Areas {
        let wide = area.width >= 100 && area.height >= 30;
        let hist_h = if wide { 7 } else { 6 };
        let pred_h = 3 + prediction_rows(app, area);
        // The opening explanation gets five lines instead of two where the screen is tall enough.
        let header_h = if app.intro_active() && area.height >= 30 { 9 } else { 6 };
        // The footer's keys take a second line where one is not enough and there is room.
        let two = area.height >= 23 && footer::lines(app, area.width.saturating_sub(4) as usize, 2).len() > 1;
        let footer_h = if two { 4 } else { 3 };
        // The layers keep two rows (a border, the heading, two layers, a border) before the predictions go.
        let with_predictions = area.height + 4 >= header_h + hist_h + 5 + pred_h + footer_h;
        let (header, hist, layers, predictions, footer) = if with_predictions {
            let [header, hist, layers, predictions, footer] = Layout::vertical([
                Constraint::Length(header_h),
                Constraint::Length(hist_h),
                Constraint::Fill(1),
                Constraint::Length(pred_h),
                Constraint::Length(footer_h),
            ])
            .spacing(Spacing::Overlap(1))
            .areas(area);
            (header, hist, layers, Some(predictions), footer)
        } else {
            let [header, hist, layers, footer] = Layout::vertical([
                Constraint::Length(header_h),
                Constraint::Length(hist_h),
                Constraint::Fill(1),
                Constraint::Length(footer_h),
            ])
            .spacing(Spacing::Overlap(1))
            .areas(area);
            (header, hist, layers, None, footer)
        };
        if !wide {
            return Areas {
                header,
                accuracy: hist,
                loss: None,
                layers,
                detail: None,
                predictions,
                footer,
            };
        }
        let columns = Layout::horizontal([Constraint::Length(area.width / 2 + 1), Constraint::Fill(1)])
            .spacing(Spacing::Overlap(1));
        let [accuracy, loss] = columns.areas(hist);
        let [layers, detail] = columns.areas(layers);
        Areas {
            header,
            accuracy,
            loss: Some(loss),
            layers,
            detail: Some(detail),
            predictions,
            footer,
        }
    }

    /// Everything between the header and the footer.
    pub fn body(&self) -> Rect {
        let top = self.accuracy.y;
        let bottom = self.footer.y + 1;
        Rect::new(self.header.x, top, self.header.width, bottom.saturating_sub(top))
    }
}

/// A bordered panel whose borders merge with its neighbours'.
pub(crate) fn panel<'a>(theme: &Theme, title: impl Into<Line<'a>>) -> Block<'a> {
    Block::bordered()
        .border_set(theme.border_set())
        .border_style(theme.border())
        .merge_borders(if theme.ascii {
            MergeStrategy::Replace
        } else {
            MergeStrategy::Exact
        })
        .padding(Padding::horizontal(1))
        .title(title)
}

/// ` text ` as a title span.
pub(crate) fn title_span<'a>(theme: &Theme, text: impl Into<String>) -> Span<'a> {
    Span::styled(format!(" {} ", text.into()), theme.title())
}

/// A title of fields (one span each) that fits `width` columns: whole fields go from the end, so that a title is
/// never cut in the middle of a number ("gap train−eval running 0.").
pub(crate) fn fit_title<'a>(mut spans: Vec<Span<'a>>, width: usize) -> Line<'a> {
    while spans.len() > 1 && spans.iter().map(Span::width).sum::<usize>() > width {
        spans.pop();
    }
    Line::from(spans)
}

/// Writes one symbol into a cell if the position is inside the buffer.
pub(crate) fn put(buf: &mut Buffer, x: u16, y: u16, symbol: &str, style: ratatui::style::Style) {
    if let Some(cell) = buf.cell_mut((x, y)) {
        cell.set_symbol(symbol).set_style(style);
    }
}

impl Widget for &App {
    fn render(self, area: Rect, buf: &mut Buffer) {
        if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
            too_small(self, area, buf);
            return;
        }
        let a = Areas::compute(self, area);
        header::render(self, a.header, buf);
        history::render(self, a.accuracy, a.loss, buf);
        layers::render(self, a.layers, buf);
        if let Some(d) = a.detail {
            layers::render_detail(self, d, buf);
        }
        if let Some(p) = a.predictions {
            predictions::render(self, p, buf);
        }
        footer::render(self, a.footer, buf);
        let trainer_lost = self.store.disconnected && !self.store.finished();
        if self.store.error.is_some() || trainer_lost {
            error::render(self, a.body(), buf);
        }
        if self.show_help {
            help::render(self, area, buf);
        }
        lessons::render(self, area, buf);
    }
}

fn too_small(app: &App, area: Rect, buf: &mut Buffer) {
    if area.height == 0 || area.width == 0 {
        return;
    }
    let x = if app.theme.ascii { "x" } else { "×" };
    let lines = vec![
        Line::from(format!("terminal too small: {}{x}{}", area.width, area.height)),
        Line::from(format!(
            "bnscope needs at least {MIN_WIDTH}{x}{MIN_HEIGHT}{}q quits",
            app.theme.sep()
        )),
    ];
    let h = 2.min(area.height);
    let top = area.y + (area.height - h) / 2;
    Paragraph::new(lines)
        .style(app.theme.tone(super::theme::Tone::Warn))
        .alignment(Alignment::Center)
        .render(Rect::new(area.x, top, area.width, h), buf);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every size from the minimum up: the panels tile the screen (borders shared), none is empty, and the
    /// predictions go only where the layers would otherwise have fewer than two rows.
    #[test]
    fn layout_tiles_every_size_from_the_minimum() {
        let app = App::new(&crate::tui::TuiOptions::default(), Default::default());
        for w in MIN_WIDTH..=220 {
            for h in MIN_HEIGHT..=70 {
                let area = Rect::new(0, 0, w, h);
                let a = Areas::compute(&app, area);
                assert_eq!(a.header.y, 0);
                assert_eq!(a.footer.bottom(), h, "{w}x{h}");
                assert!(a.layers.height >= 4, "{w}x{h}: {a:?}");
                assert_eq!(a.accuracy.y, a.header.bottom() - 1);
                assert_eq!(a.layers.y, a.accuracy.bottom() - 1);
                match a.predictions {
                    Some(p) => {
                        assert_eq!(p.y, a.layers.bottom() - 1);
                        assert_eq!(a.footer.y, p.bottom() - 1);
                        assert!(a.layers.height >= 5, "{w}x{h}: {a:?}");
                    }
                    None => {
                        assert_eq!(a.footer.y, a.layers.bottom() - 1);
                        assert!(h < FULL_HEIGHT, "{w}x{h}: predictions dropped");
                    }
                }
            }
        }
    }
}
