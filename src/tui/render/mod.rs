//! Pure rendering: `impl Widget for &App`. Nothing here changes state.
//!
//! Layout at 120×40 (and anything at least 100×30): header, accuracy | loss, layers | channel detail,
//! predictions, footer. At 80×24 the loss panel and the channel detail go. Below 80×24: one line.
use ratatui::buffer::Buffer;
use ratatui::layout::{Alignment, Constraint, Layout, Rect, Spacing};
use ratatui::symbols::merge::MergeStrategy;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Padding, Paragraph, Widget};

use super::app::App;
use super::theme::Theme;

pub mod error;
pub mod footer;
pub mod header;
pub mod help;
pub mod history;
pub mod layers;
mod lessons;
pub mod predictions;

/// The smallest terminal the full screen needs.
pub const MIN_WIDTH: u16 = 80;
pub const MIN_HEIGHT: u16 = 24;

/// Where each panel goes (panels overlap by one cell so that their borders merge).
#[derive(Clone, Copy, Debug)]
pub struct Areas {
    pub header: Rect,
    pub accuracy: Rect,
    pub loss: Option<Rect>,
    pub layers: Rect,
    pub detail: Option<Rect>,
    pub predictions: Rect,
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
        let [header, hist, layers, predictions, footer] = Layout::vertical([
            Constraint::Length(header_h),
            Constraint::Length(hist_h),
            Constraint::Fill(1),
            Constraint::Length(pred_h),
            Constraint::Length(3),
        ])
        .spacing(Spacing::Overlap(1))
        .areas(area);
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

    /// The hand-computed layout this replaced, kept to check the declarative one cell for cell.
    #[cfg(test)]
    fn compute_by_hand(app: &App, area: Rect) -> Areas {
        let wide = area.width >= 100 && area.height >= 30;
        let header_h = 6;
        let hist_h = if wide { 7 } else { 6 };
        let pred_h = 3 + prediction_rows(app, area);
        let footer_h = 3;
        // Four shared borders.
        let layers_h = (area.height + 4).saturating_sub(header_h + hist_h + pred_h + footer_h);
        let x = area.x;
        let w = area.width;
        let header = Rect::new(x, area.y, w, header_h);
        let hist_y = header.bottom() - 1;
        let layers_y = hist_y + hist_h - 1;
        let pred_y = layers_y + layers_h - 1;
        let footer_y = pred_y + pred_h - 1;
        let footer = Rect::new(x, footer_y, w, area.bottom().saturating_sub(footer_y));
        let predictions = Rect::new(x, pred_y, w, pred_h);
        let (left_w, right_w) = (w / 2 + 1, w - w / 2);
        let right_x = x + left_w - 1;
        if wide {
            Areas {
                header,
                accuracy: Rect::new(x, hist_y, left_w, hist_h),
                loss: Some(Rect::new(right_x, hist_y, right_w, hist_h)),
                layers: Rect::new(x, layers_y, left_w, layers_h),
                detail: Some(Rect::new(right_x, layers_y, right_w, layers_h)),
                predictions,
                footer,
            }
        } else {
            Areas {
                header,
                accuracy: Rect::new(x, hist_y, w, hist_h),
                loss: None,
                layers: Rect::new(x, layers_y, w, layers_h),
                detail: None,
                predictions,
                footer,
            }
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
        predictions::render(self, a.predictions, buf);
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
            "bnscope needs {MIN_WIDTH}{x}{MIN_HEIGHT}{}q quits",
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

    #[test]
    fn declarative_layout_matches_the_hand_computed_one() {
        let app = App::new(&crate::tui::TuiOptions::default(), Default::default());
        for w in MIN_WIDTH..=220 {
            for h in MIN_HEIGHT..=70 {
                let area = Rect::new(0, 0, w, h);
                let (a, b) = (Areas::compute(&app, area), Areas::compute_by_hand(&app, area));
                assert_eq!(format!("{a:?}"), format!("{b:?}"), "{w}x{h}");
            }
        }
    }
}
