//! The files a user cares about: what bnscope opens, refuses, locks and replaces.
//!
//! * Only regular files are read or written: a FIFO, a device or a socket is refused up front (a FIFO would block
//!   forever, `/dev/full` would be replaced by a regular file), and opening never blocks ([`open_regular`]).
//! * Paths are compared as files ([`same_file`]), so that no output is written over an input (`--log` over
//!   `--resume`, over an image of `--data`, over `--checkpoint`).
//! * Symlinks are followed, also dangling ones ([`resolve`]): a checkpoint `latest.st → models/real.st` is written
//!   to `models/real.st`, the link stays.
//! * Advisory locks ([`lock`], [`lock_path`]) keep two processes off one log or one checkpoint; the refusal names
//!   the process that holds it (from `/proc/locks`).
use std::fs::{File, Metadata, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::error::usage;

/// What a non-regular file is, in words (`a FIFO`), or `None` for a regular file.
pub fn not_regular(meta: &Metadata) -> Option<&'static str> {
    let t = meta.file_type();
    if t.is_file() {
        None
    } else if t.is_dir() {
        Some("a directory")
    } else if t.is_fifo() {
        Some("a FIFO")
    } else if t.is_char_device() {
        Some("a character device")
    } else if t.is_block_device() {
        Some("a block device")
    } else if t.is_socket() {
        Some("a socket")
    } else {
        Some("not a regular file")
    }
}

/// Opens `path` with `opts` without blocking (`O_NONBLOCK`: a FIFO with nobody at the other end answers at once
/// instead of hanging) and refuses anything but a regular file. `what` names the flag or file in the error, which
/// is a usage error (exit 2).
pub fn open_regular(path: &Path, opts: &mut OpenOptions, what: &str) -> Result<File> {
    // Refuse what is already there before opening it: opening a device can have effects of its own.
    if let Ok(meta) = std::fs::metadata(path) {
        if let Some(kind) = not_regular(&meta) {
            return Err(usage(format!("{what}: not a regular file ({kind})")));
        }
    }
    let file = opts
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| usage(format!("{what}: {}", io_reason(&e))))?;
    // Checked again on the open file: the path may have changed in between.
    let meta = file
        .metadata()
        .map_err(|e| usage(format!("{what}: {}", io_reason(&e))))?;
    if let Some(kind) = not_regular(&meta) {
        return Err(usage(format!("{what}: not a regular file ({kind})")));
    }
    Ok(file)
}

/// What the first bytes of a file say it is, for the formats a user keeps next to a run's outputs: a
/// safetensors file (weights, a checkpoint), a PyTorch `torch.save` file (a zip archive, or a pickle in the legacy
/// format), a PNG or JPEG image. `None` for anything else.
pub fn binary_kind(head: &[u8]) -> Option<&'static str> {
    if head.starts_with(b"\x89PNG\r\n\x1a\n") {
        return Some("a PNG image");
    }
    if head.starts_with(&[0xff, 0xd8, 0xff]) {
        return Some("a JPEG image");
    }
    if head.starts_with(b"PK\x03\x04") {
        return Some("a zip archive (PyTorch's torch.save writes one)");
    }
    if head.len() >= 2 && head[0] == 0x80 && (2..=5).contains(&head[1]) {
        return Some("a Python pickle (PyTorch's legacy torch.save format)");
    }
    if head.len() >= 9 {
        let n = u64::from_le_bytes(head[..8].try_into().unwrap_or([0; 8]));
        if n > 0 && n < 100 << 20 && head[8] == b'{' {
            return Some("a safetensors file");
        }
    }
    None
}

/// The whole of a regular file (see [`open_regular`]) in memory, for the inputs that are read at once (weights, a
/// checkpoint). A file too large to hold is a one-line error naming it (`what`), not an abort.
#[cfg(feature = "train")]
pub fn read_whole(path: &Path, what: &str) -> Result<Vec<u8>> {
    use std::io::Read;
    let mut file = open_regular(path, OpenOptions::new().read(true), what)?;
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let mut bytes = Vec::new();
    usize::try_from(len)
        .ok()
        .and_then(|n| crate::alloc::fallible(|| bytes.try_reserve_exact(n)).ok())
        .ok_or_else(|| {
            usage(format!(
                "{what}: {}, more than can be held in memory here",
                crate::format::human_bytes(len)
            ))
        })?;
    file.read_to_end(&mut bytes)
        .map_err(|e| usage(format!("{what}: cannot read: {}", io_reason(&e))))?;
    Ok(bytes)
}

/// An I/O error in words, for messages that already name the file.
pub fn io_reason(e: &io::Error) -> String {
    io_reason_naming(e, "file or directory")
}

/// [`io_reason`] naming what is missing (`no such directory` where only a directory will do): the one place an
/// I/O error becomes words.
pub fn io_reason_naming(e: &io::Error, missing: &str) -> String {
    match e.kind() {
        io::ErrorKind::NotFound => format!("no such {missing}"),
        io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

/// `path` with every symlink followed, the last one too even when it points nowhere yet (a checkpoint link to a
/// file that a run will create), as an absolute path whose directory is canonical. Errors when the directory does
/// not exist or a link loops.
pub fn resolve(path: &Path) -> io::Result<PathBuf> {
    let mut p = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()?.join(path)
    };
    for _ in 0..40 {
        let name = p
            .file_name()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a file name"))?
            .to_os_string();
        let parent = p.parent().unwrap_or(Path::new("/"));
        let dir = std::fs::canonicalize(parent)?;
        let full = dir.join(&name);
        match std::fs::symlink_metadata(&full) {
            Ok(m) if m.file_type().is_symlink() => {
                let target = std::fs::read_link(&full)?;
                p = if target.is_absolute() { target } else { dir.join(target) };
            }
            _ => return Ok(full),
        }
    }
    Err(io::Error::other("too many levels of symbolic links"))
}

/// Whether `a` and `b` are the same file: the same inode when both exist (hard links too), else the same resolved
/// path (two names for a file that does not exist yet).
pub fn same_file(a: &Path, b: &Path) -> bool {
    if let (Ok(ma), Ok(mb)) = (std::fs::metadata(a), std::fs::metadata(b)) {
        return (ma.dev(), ma.ino()) == (mb.dev(), mb.ino());
    }
    match (resolve(a), resolve(b)) {
        (Ok(ra), Ok(rb)) => ra == rb,
        _ => false,
    }
}

/// `(device, inode)` of an open file or a path, to compare against the inputs.
pub fn file_id(meta: &Metadata) -> (u64, u64) {
    (meta.dev(), meta.ino())
}

/// Takes an exclusive advisory lock (`flock`) on an open file, without waiting: held by another process, it is
/// refused with a line naming that process. The lock lasts as long as the file stays open.
pub fn lock(file: &File, what: &str, why: &str) -> Result<()> {
    // SAFETY: flock on a descriptor we own.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() != Some(libc::EWOULDBLOCK) {
        // No locking on this file system (some network mounts): go on without.
        return Ok(());
    }
    let by = file
        .metadata()
        .ok()
        .and_then(|m| holder(&m))
        .unwrap_or_else(|| "another process".into());
    Err(usage(format!("{what}: in use by {by}; {why}")))
}

/// A lock on a path that may not exist yet and whose file is replaced by rename (a checkpoint): a lock file in
/// the user's runtime directory (`$XDG_RUNTIME_DIR/bnscope`, else `/tmp/bnscope-UID`), named after the resolved
/// path, so nothing is written next to the checkpoint. Held until dropped, which removes the lock file again.
/// `None` where no lock directory can be made (then there is no lock, and no error).
pub fn lock_path(resolved: &Path, what: &str, why: &str) -> Result<Option<PathLock>> {
    let Some(dir) = lock_dir() else { return Ok(None) };
    let path = dir.join(format!("{:016x}.lock", fnv1a(resolved.as_os_str().as_encoded_bytes())));
    // A holder removes the file while it still holds the lock: a lock taken on a file that is no longer at the
    // path is worthless, so look again until the locked file is the one there.
    for _ in 0..100 {
        let Ok(file) = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
        else {
            return Ok(None);
        };
        lock(&file, what, why)?;
        let held = file.metadata().ok().map(|m| file_id(&m));
        if held.is_some() && held == std::fs::symlink_metadata(&path).ok().map(|m| file_id(&m)) {
            return Ok(Some(PathLock { path, _file: file }));
        }
    }
    Ok(None)
}

/// See [`lock_path`].
pub struct PathLock {
    path: PathBuf,
    _file: File,
}

impl Drop for PathLock {
    fn drop(&mut self) {
        // Removed while still locked (the file closes after this), so nobody can lock it in between.
        let _ = std::fs::remove_file(&self.path);
    }
}

fn lock_dir() -> Option<PathBuf> {
    // SAFETY: getuid cannot fail.
    let uid = unsafe { libc::getuid() };
    let dir = match std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        Some(d) => PathBuf::from(d).join("bnscope"),
        None => std::env::temp_dir().join(format!("bnscope-{uid}")),
    };
    let _ = std::fs::DirBuilder::new().mode(0o700).create(&dir);
    // Only a directory of ours: in a shared /tmp anyone could have made it first.
    let meta = std::fs::symlink_metadata(&dir).ok()?;
    (meta.is_dir() && meta.uid() == uid).then_some(dir)
}

/// FNV-1a, 64 bits: a lock file's name must be the same in every bnscope build (std's hasher may change).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

/// `process 1234 (bnscope)` for the process holding a lock on the file, from `/proc/locks` (Linux).
fn holder(meta: &Metadata) -> Option<String> {
    let locks = std::fs::read_to_string("/proc/locks").ok()?;
    let dev = meta.dev();
    let (major, minor) = (libc::major(dev) as u64, libc::minor(dev) as u64);
    let pid = locks.lines().find_map(|line| {
        // `1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF` (waiters have a `->` after the number).
        let fields: Vec<&str> = line.split_whitespace().filter(|f| *f != "->").collect();
        let (pid, id) = (fields.get(4)?, fields.get(5)?);
        let mut parts = id.split(':');
        let maj = u64::from_str_radix(parts.next()?, 16).ok()?;
        let min = u64::from_str_radix(parts.next()?, 16).ok()?;
        let ino: u64 = parts.next()?.parse().ok()?;
        ((maj, min, ino) == (major, minor, meta.ino())).then(|| pid.to_string())
    })?;
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    let comm = crate::terminal::printable(comm.trim()).into_owned();
    Some(if comm.is_empty() {
        format!("process {pid}")
    } else {
        format!("process {pid} ({comm})")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_follows_dangling_links() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("models")).unwrap();
        std::os::unix::fs::symlink("models/real.st", d.path().join("latest.st")).unwrap();
        let want = std::fs::canonicalize(d.path()).unwrap().join("models/real.st");
        assert_eq!(resolve(&d.path().join("latest.st")).unwrap(), want);
        assert!(same_file(
            &d.path().join("latest.st"),
            &d.path().join("models/../models/real.st")
        ));
        std::os::unix::fs::symlink("loop", d.path().join("loop")).unwrap();
        assert!(resolve(&d.path().join("loop")).is_err());
    }

    #[test]
    fn path_locks_exclude_each_other_and_clean_up() {
        let d = tempfile::tempdir().unwrap();
        let target = d.path().join("ck.st");
        let a = lock_path(&target, "--checkpoint ck.st", "why")
            .unwrap()
            .expect("a lock directory");
        let path = a.path.clone();
        assert!(path.exists());
        let e = lock_path(&target, "--checkpoint ck.st", "why").err().expect("held");
        // Named from /proc/locks where it lists the holder; under a parallel test run it sometimes does not (seen
        // in CI runs), and the message then says "another process".
        let e = e.to_string();
        assert!(
            e.starts_with("--checkpoint ck.st: in use by ") && e.ends_with("; why"),
            "{e}"
        );
        drop(a);
        assert!(!path.exists(), "the lock file goes with the lock");
        assert!(lock_path(&target, "--checkpoint ck.st", "why").unwrap().is_some());
    }

    #[test]
    fn a_second_lock_names_the_holder() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x");
        let a = File::create(&p).unwrap();
        lock(&a, "--log x", "why").unwrap();
        // flock locks belong to the open file: a second open of the same file conflicts, even in one process.
        let b = File::open(&p).unwrap();
        let e = lock(&b, "--log x", "two runs cannot share one log")
            .unwrap_err()
            .to_string();
        let me = std::process::id().to_string();
        assert!(e.starts_with("--log x: in use by "), "{e}");
        assert!(e.ends_with("two runs cannot share one log"), "{e}");
        // The holder is named where /proc/locks lists it (seen flaky once in a full parallel run: then the
        // message says "another process" instead).
        if e.contains("in use by process ") {
            assert!(e.contains(&me), "{e}");
        }
    }
}
