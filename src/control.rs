//! The sending side of the control channel (`docs/CONTROL.md`): `bnscope watch` appends commands to the command
//! file a Python writer opened next to its log, for the user's own PyTorch or Keras run to apply at its next step.
//!
//! The file's path comes from the log, which is input: it is written to only if it is a regular file (never
//! through a symlink), owned by this user, writable by nobody else, smaller than its bound, and starts with the
//! channel's header. So a crafted log cannot make bnscope append to any other file.
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The first line of a command file.
pub const HEADER: &[u8] = b"bnscope-control 1\n";
/// The most a command file may hold.
pub const MAX_BYTES: u64 = 1 << 20;
/// The longest line, with its `\n`.
pub const MAX_LINE: usize = 200;

/// A command of the closed grammar.
#[derive(Clone, Debug, PartialEq)]
pub enum Verb {
    /// Keras convention, finite, in [0, 1).
    Momentum(f64),
    Cumulative(bool),
    Reset,
    Recalibrate,
    Pause,
    Resume,
    Step,
    Evaluate,
}

impl Verb {
    /// The command's words on the line (after `cmd ID`).
    pub fn words(&self) -> String {
        match self {
            Verb::Momentum(m) => format!("momentum {m}"),
            Verb::Cumulative(on) => format!("cumulative {}", if *on { "on" } else { "off" }),
            Verb::Reset => "reset".into(),
            Verb::Recalibrate => "recalibrate".into(),
            Verb::Pause => "pause".into(),
            Verb::Resume => "resume".into(),
            Verb::Step => "step".into(),
            Verb::Evaluate => "evaluate".into(),
        }
    }

    /// The ledger's event kind for this command (docs/CONTROL.md).
    pub fn event_kind(&self) -> &'static str {
        match self {
            Verb::Momentum(_) => "momentum",
            Verb::Cumulative(_) => "cumulative",
            Verb::Reset => "reset_stats",
            Verb::Recalibrate => "recalibrate",
            Verb::Pause => "pause",
            Verb::Resume => "resume",
            Verb::Step => "step",
            Verb::Evaluate => "evaluate",
        }
    }
}

/// An open command file.
#[derive(Debug)]
pub struct Steer {
    file: File,
    path: PathBuf,
    next: u64,
}

fn why(path: &Path, what: &str) -> String {
    format!("{}: {what}", crate::terminal::printable(&path.display().to_string()))
}

impl Steer {
    /// Opens the command file named by a log's `run` record, with every check of `docs/CONTROL.md`; the error
    /// says in words why the run cannot be steered.
    pub fn open(path: &Path) -> Result<Steer, String> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .append(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(path)
            .map_err(|e| match e.raw_os_error() {
                Some(libc::ELOOP) => why(
                    path,
                    "is a symlink: refused (the control file is never followed through a link)",
                ),
                _ => why(path, &format!("cannot open the control file: {e}")),
            })?;
        let meta = file.metadata().map_err(|e| why(path, &format!("cannot stat: {e}")))?;
        if !meta.file_type().is_file() {
            return Err(why(path, "is not a regular file: refused"));
        }
        // SAFETY: geteuid has no preconditions.
        let me = unsafe { libc::geteuid() };
        if meta.uid() != me {
            return Err(why(
                path,
                &format!("belongs to uid {}, not to you (uid {me}): refused", meta.uid()),
            ));
        }
        if meta.permissions().mode() & 0o022 != 0 {
            return Err(why(path, "is writable by others: refused"));
        }
        let mut head = vec![0u8; HEADER.len()];
        if file.read_exact_at(&mut head, 0).is_err() || head != HEADER {
            return Err(why(
                path,
                "does not start with the control header: not a bnscope control file",
            ));
        }
        Ok(Steer {
            file,
            path: path.to_path_buf(),
            next: 1,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one command as one write of one line; returns its id (`PID-N`).
    pub fn send(&mut self, verb: &Verb) -> Result<String, String> {
        if let Verb::Momentum(m) = verb {
            if !m.is_finite() || !(0.0..1.0).contains(m) {
                return Err(format!("momentum {m}: must be finite, in [0, 1)"));
            }
        }
        let len = self.file.metadata().map(|m| m.len()).unwrap_or(u64::MAX);
        let id = format!("{}-{}", std::process::id(), self.next);
        let line = format!("cmd {id} {}\n", verb.words());
        if line.len() > MAX_LINE {
            return Err("the command is too long".into());
        }
        if len.saturating_add(line.len() as u64) > MAX_BYTES {
            return Err(why(&self.path, "is full (1 MiB): start the run again to steer it"));
        }
        self.file
            .write_all(line.as_bytes())
            .map_err(|e| why(&self.path, &format!("cannot write: {e}")))?;
        self.next += 1;
        Ok(id)
    }
}

/// This machine's host name (for "steering pid N on HOST" and to know whether a pid can be checked here).
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates within it when the name fits.
    if unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } != 0 {
        return String::new();
    }
    let n = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// Whether process `pid` exists on this machine (`kill(pid, 0)`: EPERM means it exists under another user).
pub fn process_alive(pid: u64) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if pid <= 0 {
        return false;
    }
    // SAFETY: signal 0 only checks that the process exists.
    unsafe { libc::kill(pid, 0) == 0 || *libc::__errno_location() == libc::EPERM }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn made(dir: &Path, mode: u32, header: &[u8]) -> PathBuf {
        let p = dir.join("run.jsonl.control");
        std::fs::write(&p, header).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p
    }

    #[test]
    fn commands_are_whole_lines_with_ids() {
        let d = tempfile::tempdir().unwrap();
        let p = made(d.path(), 0o600, HEADER);
        let mut s = Steer::open(&p).unwrap();
        let a = s.send(&Verb::Momentum(0.9)).unwrap();
        let b = s.send(&Verb::Cumulative(true)).unwrap();
        assert_ne!(a, b);
        let text = std::fs::read_to_string(&p).unwrap();
        assert_eq!(
            text,
            format!("bnscope-control 1\ncmd {a} momentum 0.9\ncmd {b} cumulative on\n")
        );
        assert!(s.send(&Verb::Momentum(1.0)).is_err());
        assert!(s.send(&Verb::Momentum(f64::NAN)).is_err());
    }

    #[test]
    fn other_files_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let p = made(d.path(), 0o600, b"#!/bin/sh\n");
        assert!(Steer::open(&p).unwrap_err().contains("header"));
        let p = made(d.path(), 0o622, HEADER);
        assert!(Steer::open(&p).unwrap_err().contains("writable by others"));
        let p = made(d.path(), 0o600, HEADER);
        let link = d.path().join("link.control");
        std::os::unix::fs::symlink(&p, &link).unwrap();
        assert!(Steer::open(&link).unwrap_err().contains("symlink"));
        assert!(Steer::open(d.path()).is_err());
        let full = made(d.path(), 0o600, HEADER);
        std::fs::OpenOptions::new()
            .append(true)
            .open(&full)
            .unwrap()
            .set_len(MAX_BYTES)
            .unwrap();
        let mut s = Steer::open(&full).unwrap();
        assert!(s.send(&Verb::Pause).unwrap_err().contains("full"));
    }
}
