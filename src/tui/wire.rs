//! Fewer bytes on the wire: a backend wrapper for the real terminal.
//!
//! Why: ratatui sends only the cells that changed, but each run of changed cells costs a cursor move
//! (`ESC[row;colH`, ~8 bytes) and usually a colour change. Numbers that tick every epoch ("0.307" → "0.312")
//! change a digit here and a digit there, so over SSH most of the bytes were cursor moves (46 % of 82 KB in a
//! 10 s capture at 120×40) and colour codes (38 %), not text (12 %). Where two changed cells on a row are
//! separated by a few unchanged cells of the same style, re-sending those cells is cheaper than the move; this
//! wrapper keeps a copy of what the screen shows and fills such gaps. What the terminal shows is unchanged
//! (tested), only the encoding is shorter.
use ratatui::backend::{Backend, ClearType, WindowSize};
use ratatui::buffer::{Buffer, Cell};
use ratatui::layout::{Position, Rect, Size};
use unicode_width::UnicodeWidthStr;

/// Wraps a backend; see the module documentation.
pub struct Coalescing<B> {
    inner: B,
    /// What the terminal shows, where known.
    screen: Buffer,
    known: Vec<bool>,
}

impl<B: Backend> Coalescing<B> {
    pub fn new(inner: B) -> Self {
        Self {
            inner,
            screen: Buffer::empty(Rect::ZERO),
            known: Vec::new(),
        }
    }

    pub fn inner_mut(&mut self) -> &mut B {
        &mut self.inner
    }

    /// Forgets the screen (its size changed, or part of it was cleared by something we did not draw).
    fn forget(&mut self, size: Size) {
        self.screen = Buffer::empty(Rect::new(0, 0, size.width, size.height));
        self.known = vec![false; self.screen.content.len()];
    }

    fn index(&self, x: u16, y: u16) -> Option<usize> {
        let a = self.screen.area;
        (x < a.width && y < a.height).then(|| y as usize * a.width as usize + x as usize)
    }

    /// The cells to re-send between a changed cell at `(px, y)` and the next one at `(x, y)`, if that is cheaper
    /// than a cursor move: every gap cell known, one column wide and in the style of the cell before the gap.
    fn gap(&self, prev: &Cell, px: u16, x: u16, y: u16) -> Option<Vec<(u16, Cell)>> {
        if prev.symbol().width() != 1 {
            return None;
        }
        // What the move would cost: ESC [ row ; col H.
        let move_cost = 4 + digits(y + 1) + digits(x + 1);
        let mut bytes = 0;
        let mut cells = Vec::new();
        for gx in px + 1..x {
            let i = self.index(gx, y)?;
            let c = &self.screen.content[i];
            bytes += c.symbol().len();
            if !self.known[i] || c.symbol().width() != 1 || !same_style(c, prev) || bytes > move_cost {
                return None;
            }
            cells.push((gx, c.clone()));
        }
        Some(cells)
    }
}

fn digits(v: u16) -> usize {
    v.to_string().len()
}

fn same_style(a: &Cell, b: &Cell) -> bool {
    a.fg == b.fg && a.bg == b.bg && a.modifier == b.modifier && a.underline_color == b.underline_color
}

impl<B: Backend> Backend for Coalescing<B> {
    type Error = B::Error;

    fn draw<'a, I>(&mut self, content: I) -> Result<(), B::Error>
    where
        I: Iterator<Item = (u16, u16, &'a Cell)>,
    {
        let size = self.inner.size()?;
        if self.screen.area.width != size.width || self.screen.area.height != size.height {
            self.forget(size);
        }
        let mut out: Vec<(u16, u16, Cell)> = Vec::new();
        for (x, y, cell) in content {
            if let Some((px, py, prev)) = out.last() {
                if *py == y && x > px + 1 {
                    if let Some(fill) = self.gap(prev, *px, x, y) {
                        out.extend(fill.into_iter().map(|(gx, c)| (gx, y, c)));
                    }
                }
            }
            out.push((x, y, cell.clone()));
        }
        for (x, y, cell) in &out {
            if let Some(i) = self.index(*x, *y) {
                self.screen.content[i] = cell.clone();
                self.known[i] = true;
            }
        }
        self.inner.draw(out.iter().map(|(x, y, c)| (*x, *y, c)))
    }

    fn append_lines(&mut self, n: u16) -> Result<(), B::Error> {
        let size = self.inner.size()?;
        self.forget(size);
        self.inner.append_lines(n)
    }

    fn hide_cursor(&mut self) -> Result<(), B::Error> {
        self.inner.hide_cursor()
    }

    fn show_cursor(&mut self) -> Result<(), B::Error> {
        self.inner.show_cursor()
    }

    fn get_cursor_position(&mut self) -> Result<Position, B::Error> {
        self.inner.get_cursor_position()
    }

    fn set_cursor_position<P: Into<Position>>(&mut self, position: P) -> Result<(), B::Error> {
        self.inner.set_cursor_position(position)
    }

    fn clear(&mut self) -> Result<(), B::Error> {
        // A cleared screen is blank in the default style: exactly an empty buffer.
        let size = self.inner.size()?;
        self.forget(size);
        self.known.iter_mut().for_each(|k| *k = true);
        self.inner.clear()
    }

    fn clear_region(&mut self, clear_type: ClearType) -> Result<(), B::Error> {
        if clear_type == ClearType::All {
            return self.clear();
        }
        let size = self.inner.size()?;
        self.forget(size);
        self.inner.clear_region(clear_type)
    }

    fn size(&self) -> Result<Size, B::Error> {
        self.inner.size()
    }

    fn window_size(&mut self) -> Result<WindowSize, B::Error> {
        self.inner.window_size()
    }

    fn flush(&mut self) -> Result<(), B::Error> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratatui::backend::{CrosstermBackend, TestBackend};
    use ratatui::style::{Color, Style};
    use ratatui::Terminal;
    use std::io;

    /// Frames with scattered digit changes, like the TUI's numbers.
    fn frames() -> Vec<Vec<(u16, u16, String, Style)>> {
        (0..30u16)
            .map(|f| {
                let mut v = Vec::new();
                for row in 0..10u16 {
                    let n = (f as u32 * 7919 + row as u32 * 104_729) % 100_000;
                    v.push((
                        2,
                        row,
                        format!("epoch {n:05} · 0.{n:03} → {:.3}", n as f32 / 7.0),
                        Style::new(),
                    ));
                    let tone = if n.is_multiple_of(2) {
                        Color::Green
                    } else {
                        Color::Yellow
                    };
                    v.push((
                        50,
                        row,
                        format!("{}▇▅▃ {n}", "█".repeat((n % 9) as usize)),
                        Style::new().fg(tone),
                    ));
                }
                v
            })
            .collect()
    }

    fn draw_all<B: Backend>(t: &mut Terminal<B>) {
        for frame in frames() {
            t.draw(|f| {
                for (x, y, s, st) in &frame {
                    f.buffer_mut().set_string(*x, *y, s, *st);
                }
            })
            .unwrap();
        }
    }

    #[test]
    fn the_screen_is_the_same_with_fewer_bytes() {
        let mut plain = Terminal::new(TestBackend::new(80, 12)).unwrap();
        let mut wrapped = Terminal::new(Coalescing::new(TestBackend::new(80, 12))).unwrap();
        draw_all(&mut plain);
        draw_all(&mut wrapped);
        assert_eq!(plain.backend().buffer(), wrapped.backend().inner.buffer());

        // The bytes a real terminal would get.
        let (raw_bytes, less_bytes) = (Shared::default(), Shared::default());
        let mut raw = Terminal::new(Fixed(CrosstermBackend::new(raw_bytes.clone()))).unwrap();
        let mut less = Terminal::new(Coalescing::new(Fixed(CrosstermBackend::new(less_bytes.clone())))).unwrap();
        draw_all(&mut raw);
        draw_all(&mut less);
        let (a, b) = (raw_bytes.0.borrow().len(), less_bytes.0.borrow().len());
        assert!(b < a, "{b} bytes with the wrapper, {a} without");
    }

    /// Bytes written, readable after the terminal took the writer.
    #[derive(Clone, Default)]
    struct Shared(std::rc::Rc<std::cell::RefCell<Vec<u8>>>);

    impl io::Write for Shared {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.borrow_mut().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// A crossterm backend with a fixed size (off a terminal the size query fails).
    struct Fixed<B>(B);

    impl<B: Backend<Error = io::Error>> Backend for Fixed<B> {
        type Error = io::Error;
        fn draw<'a, I: Iterator<Item = (u16, u16, &'a Cell)>>(&mut self, content: I) -> io::Result<()> {
            self.0.draw(content)
        }
        fn hide_cursor(&mut self) -> io::Result<()> {
            Ok(())
        }
        fn show_cursor(&mut self) -> io::Result<()> {
            Ok(())
        }
        fn get_cursor_position(&mut self) -> io::Result<Position> {
            Ok(Position::ORIGIN)
        }
        fn set_cursor_position<P: Into<Position>>(&mut self, _: P) -> io::Result<()> {
            Ok(())
        }
        fn clear(&mut self) -> io::Result<()> {
            Ok(())
        }
        fn clear_region(&mut self, _: ClearType) -> io::Result<()> {
            Ok(())
        }
        fn size(&self) -> io::Result<Size> {
            Ok(Size::new(80, 12))
        }
        fn window_size(&mut self) -> io::Result<WindowSize> {
            Ok(WindowSize {
                columns_rows: Size::new(80, 12),
                pixels: Size::new(0, 0),
            })
        }
        fn flush(&mut self) -> io::Result<()> {
            self.0.flush()
        }
    }
}
