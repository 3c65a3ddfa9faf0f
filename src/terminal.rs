//! Everything that puts the terminal back: the one place to change when the TUI enables another terminal mode
//! (mouse capture, bracketed paste, …).
//!
//! * [`enter`] / [`restore`]: raw mode and the alternate screen on and off (the TUI on its way in and out, and
//!   every error path of `main`).
//! * [`install_panic_hook`]: a panic anywhere but the trainer and the pool threads (whose panics are caught and
//!   shown in place, `crate::runtime::panic_is_relayed`) restores the terminal and prints one line instead of a
//!   backtrace.
//! * [`remember_cooked`] / [`restore_in_signal_handler`]: the async-signal-safe path for a second SIGINT/SIGTERM/
//!   SIGHUP (`crate::signals`), which must work even while training starves every other thread.
use std::io::{IsTerminal, Write};
use std::sync::{Once, OnceLock};

use crossterm::{cursor, event, execute, terminal};

/// Raw mode on, alternate screen entered, cursor hidden, and the mouse reported where asked. On failure the
/// terminal is restored again. [`restore`] undoes all of it (the signal handler's path leaves mouse reporting on:
/// only `write`s of fixed bytes are safe there, and it sends the sequence too).
pub fn enter(mouse: bool) -> std::io::Result<()> {
    terminal::enable_raw_mode()?;
    let mut out = std::io::stdout();
    let entered = execute!(out, terminal::EnterAlternateScreen, cursor::Hide).and_then(|()| {
        if mouse {
            execute!(out, event::EnableMouseCapture)
        } else {
            Ok(())
        }
    });
    if let Err(e) = entered {
        restore();
        return Err(e);
    }
    Ok(())
}

/// Leaves raw mode and the alternate screen and shows the cursor; harmless when none of them is active, and safe
/// to call twice.
pub fn restore() {
    let mut out = std::io::stdout();
    if out.is_terminal() {
        let _ = terminal::disable_raw_mode();
        let _ = execute!(
            out,
            event::DisableMouseCapture,
            terminal::LeaveAlternateScreen,
            cursor::Show
        );
        let _ = out.flush();
    }
}

/// Installs (once per process) the panic hook: quiet for panics that are relayed to a caller who reports them;
/// anywhere else it restores the terminal and prints `bnscope: internal error …` on one line.
pub fn install_panic_hook() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            if crate::runtime::panic_is_relayed() {
                return;
            }
            restore();
            let msg = info
                .payload()
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| info.payload().downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            let at = info
                .location()
                .map(|l| format!(" at {}:{}", l.file(), l.line()))
                .unwrap_or_default();
            eprintln!("bnscope: internal error (a bug, please report it): {msg}{at}");
        }));
    });
}

/// The terminal's settings before anything changed them, for [`restore_in_signal_handler`].
static COOKED: OnceLock<(i32, libc::termios)> = OnceLock::new();

/// Saves the terminal's current settings (stdout's, else stdin's). Call at start-up, before raw mode.
pub fn remember_cooked() {
    for fd in [1, 0] {
        // SAFETY: isatty/tcgetattr on a standard descriptor with a zeroed termios to fill.
        unsafe {
            if libc::isatty(fd) == 1 {
                let mut t: libc::termios = std::mem::zeroed();
                if libc::tcgetattr(fd, &mut t) == 0 {
                    let _ = COOKED.set((fd, t));
                    return;
                }
            }
        }
    }
}

/// Restores the settings saved by [`remember_cooked`], leaves the alternate screen, shows the cursor and writes
/// `message`. Only async-signal-safe calls (`tcsetattr`, `write`): for use inside a signal handler.
pub fn restore_in_signal_handler(message: &[u8]) {
    if let Some((fd, t)) = COOKED.get() {
        // SAFETY: restoring settings read by tcgetattr on the same descriptor.
        unsafe { libc::tcsetattr(*fd, libc::TCSANOW, t) };
        // Mouse reporting off (the modes crossterm's EnableMouseCapture sets), alternate screen left, cursor shown.
        let leave = b"\x1b[?1006l\x1b[?1015l\x1b[?1003l\x1b[?1002l\x1b[?1000l\x1b[?1049l\x1b[?25h";
        // SAFETY: write(2) of static or caller-owned buffers.
        unsafe {
            libc::write(*fd, leave.as_ptr().cast(), leave.len());
            libc::write(*fd, message.as_ptr().cast(), message.len());
        }
    }
}

/// `s` with control characters (C0, DEL, C1) written as `\x1b`-style escapes, so that a file or class name can
/// never drive the terminal (`$'\e[31mred'` as a folder name). Everything bnscope prints that came from outside
/// (names, paths, error messages that quote them) goes through here; the JSONL log escapes them as JSON does.
pub fn printable(s: &str) -> std::borrow::Cow<'_, str> {
    let bad = |c: char| c.is_control();
    if !s.chars().any(bad) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if bad(c) {
            out.push_str(&format!("\\x{:02x}", c as u32));
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn printable_escapes_control_characters() {
        assert_eq!(super::printable("cat"), "cat");
        assert_eq!(super::printable("\u{1b}[31mred"), "\\x1b[31mred");
        assert_eq!(super::printable("a\nb\u{7f}\u{9b}"), "a\\x0ab\\x7f\\x9b");
        assert_eq!(super::printable("café ✓"), "café ✓");
    }
}
