//! SIGINT, SIGTERM and SIGHUP: the first one is forwarded to the front end, which shuts down in order (end record,
//! checkpoint, terminal restored). A second one restores the terminal and exits at once, from inside the signal
//! handler, so it works even when every core is busy training and the forwarding thread would be scheduled late.
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};
use std::sync::OnceLock;

use anyhow::Result;
use crossbeam_channel::Receiver;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

static FIRST_SIGNAL: AtomicI32 = AtomicI32::new(0);
static SEEN: AtomicUsize = AtomicUsize::new(0);
/// The terminal's settings before anything changed them (for the handler's restore).
static COOKED: OnceLock<(i32, libc::termios)> = OnceLock::new();

/// The first signal received, if any (for the exit status).
pub fn first_signal() -> Option<i32> {
    match FIRST_SIGNAL.load(Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
}

/// Only async-signal-safe calls: `tcsetattr`, `write`, `_exit`.
fn second_signal_exit(sig: i32) {
    if SEEN.fetch_add(1, Ordering::SeqCst) == 0 {
        return;
    }
    if let Some((fd, t)) = COOKED.get() {
        // SAFETY: restoring settings read by tcgetattr on the same descriptor.
        unsafe { libc::tcsetattr(*fd, libc::TCSANOW, t) };
        // Leave the alternate screen, show the cursor, then say why.
        let msg = b"\x1b[?1049l\x1b[?25h\r\nbnscope: second signal; exiting without waiting\r\n";
        // SAFETY: write(2) of a static buffer.
        unsafe { libc::write(*fd, msg.as_ptr().cast(), msg.len()) };
    }
    // SAFETY: _exit is async-signal-safe and ends the process at once.
    unsafe { libc::_exit(exit_status(sig)) };
}

/// Installs the handlers and returns the channel the front end selects on.
pub fn install() -> Result<Receiver<i32>> {
    for fd in [1, 0] {
        // SAFETY: isatty/tcgetattr on a standard descriptor with a zeroed termios to fill.
        unsafe {
            if libc::isatty(fd) == 1 {
                let mut t: libc::termios = std::mem::zeroed();
                if libc::tcgetattr(fd, &mut t) == 0 {
                    let _ = COOKED.set((fd, t));
                    break;
                }
            }
        }
    }
    for sig in [SIGINT, SIGTERM, SIGHUP] {
        // SAFETY: the action only uses async-signal-safe calls (see `second_signal_exit`).
        unsafe { signal_hook::low_level::register(sig, move || second_signal_exit(sig))? };
    }
    let mut signals = Signals::new([SIGINT, SIGTERM, SIGHUP])?;
    let (tx, rx) = crossbeam_channel::unbounded();
    std::thread::Builder::new()
        .name("bnscope-signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                let _ = FIRST_SIGNAL.compare_exchange(0, sig, Ordering::SeqCst, Ordering::SeqCst);
                let _ = tx.send(sig);
            }
        })?;
    Ok(rx)
}

/// Leaves raw mode and the alternate screen and shows the cursor; harmless when none of them is active.
pub fn restore_terminal() {
    use std::io::IsTerminal;
    if std::io::stdout().is_terminal() {
        let _ = crossterm::terminal::disable_raw_mode();
        let _ = crossterm::execute!(
            std::io::stdout(),
            crossterm::event::DisableMouseCapture,
            crossterm::terminal::LeaveAlternateScreen,
            crossterm::cursor::Show
        );
    }
}

/// Exit status for a run ended by `sig` (the shell convention, 128 + signal number).
pub fn exit_status(sig: i32) -> i32 {
    128 + sig
}
