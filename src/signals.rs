//! SIGINT, SIGTERM and SIGHUP: the first one is forwarded to the front end, which shuts down in order (end record,
//! checkpoint, terminal restored). A second one restores the terminal and exits at once.
use anyhow::Result;
use crossbeam_channel::Receiver;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

static FIRST_SIGNAL: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

/// The first signal received, if any (for the exit status).
pub fn first_signal() -> Option<i32> {
    match FIRST_SIGNAL.load(std::sync::atomic::Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
}

/// Installs the handlers and returns the channel the front end selects on.
pub fn install() -> Result<Receiver<i32>> {
    let mut signals = Signals::new([SIGINT, SIGTERM, SIGHUP])?;
    let (tx, rx) = crossbeam_channel::unbounded();
    std::thread::Builder::new()
        .name("bnscope-signals".into())
        .spawn(move || {
            let mut seen = 0;
            for sig in signals.forever() {
                seen += 1;
                if seen >= 2 {
                    restore_terminal();
                    eprintln!("bnscope: second signal; exiting without waiting");
                    std::process::exit(128 + sig);
                }
                FIRST_SIGNAL.store(sig, std::sync::atomic::Ordering::SeqCst);
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
