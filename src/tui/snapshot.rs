//! `x` (#27): what the screen shows, written as text (`.txt`: the cells' symbols, no escape codes) and the charts as
//! SVG (`.svg`, [`super::render::svg`]) into the current directory, under a name that never overwrites a file
//! (`bnscope-YYYYMMDD-HHMMSS[-N]`); the status line says where.
use std::fs::OpenOptions;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use ratatui::buffer::Buffer;
use ratatui::widgets::Widget;
use unicode_width::UnicodeWidthStr;

use super::app::App;
use super::theme::Tone;

/// The buffer as lines of text: each cell's symbol, the cells a wide character covers once, trailing blanks
/// dropped.
pub fn buffer_text(buf: &Buffer) -> String {
    let area = buf.area;
    let mut out = String::new();
    for y in area.top()..area.bottom() {
        let mut line = String::new();
        let mut covered = 0usize;
        for x in area.left()..area.right() {
            let sym = buf[(x, y)].symbol();
            if covered > 0 {
                covered -= 1;
                continue;
            }
            line.push_str(sym);
            covered = sym.width().saturating_sub(1);
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Local time as `YYYYMMDD-HHMMSS`.
pub fn timestamp() -> String {
    // SAFETY: `time` and `localtime_r` write only into the locals they are given.
    unsafe {
        let now = libc::time(std::ptr::null_mut());
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&now, &mut tm).is_null() {
            return format!("{now}");
        }
        format!(
            "{:04}{:02}{:02}-{:02}{:02}{:02}",
            tm.tm_year + 1900,
            tm.tm_mon + 1,
            tm.tm_mday,
            tm.tm_hour,
            tm.tm_min,
            tm.tm_sec
        )
    }
}

/// Writes `text` and `svg` as `dir/bnscope-STAMP[-N].txt` and `.svg`, the first `N` for which neither exists
/// (created with `O_EXCL`: a file that appears meanwhile is not written over either). Returns both paths.
pub fn write_pair(dir: &Path, stamp: &str, text: &str, svg: &str) -> io::Result<(PathBuf, PathBuf)> {
    let create = |p: &Path| OpenOptions::new().write(true).create_new(true).open(p);
    for n in 0..1000 {
        let base = if n == 0 {
            format!("bnscope-{stamp}")
        } else {
            format!("bnscope-{stamp}-{n}")
        };
        let (t, s) = (dir.join(format!("{base}.txt")), dir.join(format!("{base}.svg")));
        let mut tf = match create(&t) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        };
        let mut sf = match create(&s) {
            Ok(f) => f,
            Err(e) => {
                // Ours, empty: not left behind.
                let _ = std::fs::remove_file(&t);
                if e.kind() == io::ErrorKind::AlreadyExists {
                    continue;
                }
                return Err(e);
            }
        };
        tf.write_all(text.as_bytes())?;
        sf.write_all(svg.as_bytes())?;
        return Ok((t, s));
    }
    Err(io::Error::other("a thousand exports this second already"))
}

impl App {
    /// The screen as it is drawn now (its size as last reported).
    pub fn screen_buffer(&self) -> Buffer {
        let mut buf = Buffer::empty(self.screen);
        self.render(self.screen, &mut buf);
        buf
    }

    /// `x`: writes the screen and the charts into the current directory and says where in the status line.
    pub(super) fn export_screen(&mut self) {
        let text = buffer_text(&self.screen_buffer());
        let svg = super::render::svg::to_svg(
            "bnscope: accuracy and loss per epoch (momentum in the Keras convention)",
            &super::render::svg::charts(self),
        );
        match export_here(&text, &svg) {
            Ok(words) => self.set_status(Tone::Good, words),
            Err(words) => self.set_status(Tone::Bad, words),
        }
    }
}

/// `x` in any view: `text` and `svg` written into the current directory ([`write_pair`]); the status line's words,
/// where they went (`Ok`) or why not (`Err`).
pub fn export_here(text: &str, svg: &str) -> Result<String, String> {
    let dir = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let name = |p: &Path| crate::terminal::printable(&p.file_name().unwrap_or_default().to_string_lossy()).into_owned();
    match write_pair(&dir, &timestamp(), text, svg) {
        Ok((t, s)) => Ok(format!("wrote {} and {} in the current directory", name(&t), name(&s))),
        Err(e) => Err(format!(
            "x: cannot write into {}: {}",
            crate::terminal::printable(&dir.display().to_string()),
            crate::files::io_reason(&e)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_never_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("bnscope-1-1.svg"), "keep").unwrap();
        let a = write_pair(dir.path(), "1", "a", "<svg/>").unwrap();
        let b = write_pair(dir.path(), "1", "b", "<svg/>").unwrap();
        let c = write_pair(dir.path(), "1", "c", "<svg/>").unwrap();
        let names: Vec<String> = [a.0, b.0, c.0, c.1]
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            ["bnscope-1.txt", "bnscope-1-2.txt", "bnscope-1-3.txt", "bnscope-1-3.svg"]
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("bnscope-1-1.svg")).unwrap(),
            "keep"
        );
        // Nothing left half-made where the .svg was taken.
        assert!(!dir.path().join("bnscope-1-1.txt").exists());
        assert_eq!(
            std::fs::read_to_string(dir.path().join("bnscope-1-2.txt")).unwrap(),
            "b"
        );
    }

    #[test]
    fn wide_characters_are_written_once() {
        let mut buf = Buffer::empty(ratatui::layout::Rect::new(0, 0, 6, 2));
        buf.set_string(
            0,
            0,
            "a漢b",
            ratatui::style::Style::new().fg(ratatui::style::Color::Red),
        );
        assert_eq!(buffer_text(&buf), "a漢b\n\n");
    }
}
