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
/// What the second signal prints on stderr, built before the handlers are installed (no allocation in a handler).
static SECOND_NOTE: OnceLock<Vec<u8>> = OnceLock::new();

/// The first signal received, if any (for the exit status).
pub fn first_signal() -> Option<i32> {
    match FIRST_SIGNAL.load(Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
}

/// Only async-signal-safe calls: the terminal's restore (`crate::terminal`) and `_exit`.
fn second_signal_exit(sig: i32) {
    if SEEN.fetch_add(1, Ordering::SeqCst) == 0 {
        return;
    }
    crate::terminal::restore_in_signal_handler(b"\r\n");
    let note: &[u8] = SECOND_NOTE
        .get()
        .map_or(b"bnscope: second signal; exiting without waiting\n", |v| v);
    // SAFETY: write(2) of a buffer that lives for the whole process.
    unsafe { libc::write(2, note.as_ptr().cast(), note.len()) };
    // SAFETY: _exit is async-signal-safe and ends the process at once.
    unsafe { libc::_exit(exit_status(sig)) };
}

/// Installs the handlers and returns the channel the front end selects on. `checkpoint`: the `--checkpoint` a
/// second signal leaves unwritten, which its stderr line then names.
pub fn install(checkpoint: Option<&std::path::Path>) -> Result<Receiver<i32>> {
    let note = match checkpoint {
        Some(c) => format!(
            "bnscope: error: second signal; exiting without waiting: the checkpoint {} was not written\n",
            crate::terminal::printable(&c.display().to_string())
        ),
        None => "bnscope: second signal; exiting without waiting\n".to_string(),
    };
    let _ = SECOND_NOTE.set(note.into_bytes());
    crate::terminal::remember_cooked();
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

/// Exit status for a run ended by `sig` (the shell convention, 128 + signal number).
pub fn exit_status(sig: i32) -> i32 {
    128 + sig
}
