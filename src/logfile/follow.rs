//! Following a log as it grows (`bnscope watch`), or reading a finished one in the background (`bnscope replay`
//! in the TUI): like `tail -F`, in bounded pieces, so that the screen and the keys get a turn after every piece.
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

use super::read::Reader;
use super::schema::Record;

/// How often `watch` looks at the file while nothing is written (a `stat` call: ~0 % CPU).
pub const WATCH_POLL: std::time::Duration = std::time::Duration::from_millis(250);

/// The most one [`Follower::poll`] reads: the rest waits for the next poll, which the caller makes at once
/// ([`Follower::behind`]), after giving the screen and the keys a turn.
pub const POLL_BYTES: usize = 4 << 20;

/// How many bytes at the file's start and before the read position identify it: a file truncated and written
/// again past the position within one poll differs there.
const MARK: usize = 64;

/// The file being followed: where we are in it, and which file it is.
struct Open {
    file: std::fs::File,
    offset: u64,
    ino: u64,
    dev: u64,
    /// The first bytes read (up to [`MARK`]), and the last ones before `offset`.
    head: Vec<u8>,
    tail: Vec<u8>,
    /// The reader refused this file (not a bnscope log): wait until it is replaced or truncated.
    refused: bool,
}

/// What one look at a followed file found.
#[derive(Clone, Debug, PartialEq)]
pub enum Followed {
    /// The file does not exist (yet); said once per wait.
    Waiting,
    /// The file is there and being read from its start.
    Following,
    /// The file was truncated or replaced (a new run, a rotation): what follows starts over.
    StartingOver { replaced: bool },
    /// Records of lines completed since the last look.
    Records(Vec<Record>),
    /// The reader's counts of skipped lines changed: lines that are not JSON records, records of unknown types,
    /// lines too long to read.
    Skipped {
        bad_lines: u64,
        unknown: u64,
        long_lines: u64,
    },
    /// How far a file being read has got (said while a poll leaves more to read).
    Progress { read: u64, size: u64 },
    /// The file cannot be shown (not a bnscope log, not a regular file, a symlink loop, unreadable): the message,
    /// naming the file. Said once; the follower waits for the file to be replaced or truncated.
    Refused(String),
}

/// Follows a growing log like `tail -F`: each [`Follower::poll`] reads on from where the last one stopped (at
/// most [`POLL_BYTES`]); a file that does not exist yet is waited for, a truncated or replaced one is read again
/// from its start (also when it grew past the old position within one poll: its first bytes, or those before the
/// position, differ), a partial last line waits for its end, and a file that cannot be shown is said once and
/// waited on.
pub struct Follower {
    path: PathBuf,
    shown: String,
    cur: Option<Open>,
    reader: Reader,
    full: bool,
    waiting_said: bool,
    /// What was last refused, so that it is said once.
    refused_said: Option<String>,
    /// Something of the current or an earlier file was shown: a change starts over.
    shown_any: bool,
    skipped: (u64, u64, u64),
    buf: Vec<u8>,
    behind: bool,
}

impl Follower {
    /// A follower whose records keep spans instead of arrays (see [`Reader::lite`]).
    pub fn new(path: &Path) -> Self {
        Follower::with_depth(path, false)
    }

    /// `full`: records keep every array (tests, small logs).
    pub fn with_depth(path: &Path, full: bool) -> Self {
        Follower {
            path: path.to_path_buf(),
            shown: crate::terminal::printable(&path.display().to_string()).into_owned(),
            cur: None,
            reader: Reader::new(full),
            full,
            waiting_said: false,
            refused_said: None,
            shown_any: false,
            skipped: (0, 0, 0),
            buf: Vec::new(),
            behind: false,
        }
    }

    /// The file's name as shown (control characters escaped).
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The last poll stopped before the end of the file: poll again at once.
    pub fn behind(&self) -> bool {
        self.behind
    }

    fn refuse(&mut self, out: &mut Vec<Followed>, msg: String) {
        if self.refused_said.as_deref() != Some(msg.as_str()) {
            out.push(Followed::Refused(msg.clone()));
            self.refused_said = Some(msg);
        }
    }

    /// Whether the open file is still the one we read: same inode, not shorter than what we read, and the same
    /// bytes at its start and just before the read position.
    fn same_file(f: &Open, m: &std::fs::Metadata) -> (bool, bool) {
        if m.ino() != f.ino || m.dev() != f.dev {
            return (false, true);
        }
        if m.len() < f.offset {
            return (false, false);
        }
        let mut head = vec![0u8; f.head.len()];
        if f.file.read_exact_at(&mut head, 0).is_err() || head != f.head {
            return (false, false);
        }
        let mut tail = vec![0u8; f.tail.len()];
        let at = f.offset - f.tail.len() as u64;
        if f.file.read_exact_at(&mut tail, at).is_err() || tail != f.tail {
            return (false, false);
        }
        (true, false)
    }

    /// One look at the file, reading at most [`POLL_BYTES`].
    pub fn poll(&mut self) -> Vec<Followed> {
        let mut out = Vec::new();
        self.behind = false;
        loop {
            let meta = std::fs::metadata(&self.path);
            let meta = match meta {
                Ok(m) => Some(m),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => {
                    // A symlink loop, a permission problem: the same words as `replay`.
                    if self.cur.take().is_some() && self.shown_any {
                        out.push(Followed::StartingOver { replaced: true });
                        self.shown_any = false;
                    }
                    let msg = format!("{}: cannot read the log: {e}", self.shown);
                    self.refuse(&mut out, msg);
                    return out;
                }
            };
            match (&mut self.cur, meta) {
                (None, None) => {
                    if !self.waiting_said {
                        out.push(Followed::Waiting);
                        self.waiting_said = true;
                    }
                    self.refused_said = None;
                    return out;
                }
                (None, Some(m)) => {
                    if let Some(what) = crate::files::not_regular(&m) {
                        let msg = format!("{}: {what}, not a log file", self.shown);
                        self.refuse(&mut out, msg);
                        return out;
                    }
                    let file = match std::fs::File::open(&self.path) {
                        Ok(f) => f,
                        Err(e) => {
                            let msg = format!("{}: cannot read the log: {e}", self.shown);
                            self.refuse(&mut out, msg);
                            return out;
                        }
                    };
                    out.push(Followed::Following);
                    self.waiting_said = false;
                    self.refused_said = None;
                    self.cur = Some(Open {
                        file,
                        offset: 0,
                        ino: m.ino(),
                        dev: m.dev(),
                        head: Vec::new(),
                        tail: Vec::new(),
                        refused: false,
                    });
                    self.reader = Reader::new(self.full);
                    self.skipped = (0, 0, 0);
                }
                (Some(f), m) => {
                    let (same, replaced) = match &m {
                        None => (false, true),
                        Some(m) => Self::same_file(f, m),
                    };
                    if !same {
                        if self.shown_any || f.offset > 0 {
                            out.push(Followed::StartingOver { replaced });
                        }
                        self.shown_any = false;
                        self.cur = None;
                        self.waiting_said = false;
                        continue;
                    }
                    if f.refused {
                        return out;
                    }
                    let size = m.as_ref().map_or(0, |m| m.len());
                    if size == f.offset {
                        return out;
                    }
                    let want = ((size - f.offset) as usize).min(POLL_BYTES);
                    if self.buf.len() < want {
                        self.buf.resize(want, 0);
                    }
                    let n = match f
                        .file
                        .seek(SeekFrom::Start(f.offset))
                        .and_then(|_| f.file.read(&mut self.buf[..want]))
                    {
                        Ok(n) => n,
                        Err(e) => {
                            f.refused = true;
                            let msg = format!("{}: cannot read the log: {e}", self.shown);
                            self.refuse(&mut out, msg);
                            return out;
                        }
                    };
                    if n == 0 {
                        return out;
                    }
                    if f.head.len() < MARK {
                        let take = (MARK - f.head.len()).min(n);
                        if f.offset == f.head.len() as u64 {
                            f.head.extend_from_slice(&self.buf[..take]);
                        }
                    }
                    f.offset += n as u64;
                    let keep = n.min(MARK);
                    if keep == MARK {
                        f.tail.clear();
                    } else {
                        let drop = (f.tail.len() + keep).saturating_sub(MARK);
                        f.tail.drain(..drop);
                    }
                    f.tail.extend_from_slice(&self.buf[n - keep..n]);
                    let mut records = Vec::new();
                    match self.reader.push_into(&self.buf[..n], &mut records) {
                        Ok(()) => {}
                        Err(e) => {
                            f.refused = true;
                            let msg = format!("{}: {e}", self.shown);
                            if !records.is_empty() {
                                out.push(Followed::Records(records));
                            }
                            self.refuse(&mut out, msg);
                            return out;
                        }
                    }
                    if !records.is_empty() {
                        self.shown_any = true;
                        out.push(Followed::Records(records));
                    }
                    let skipped = (self.reader.bad_lines, self.reader.unknown, self.reader.long_lines);
                    if skipped != self.skipped {
                        self.skipped = skipped;
                        out.push(Followed::Skipped {
                            bad_lines: skipped.0,
                            unknown: skipped.1,
                            long_lines: skipped.2,
                        });
                    }
                    if f.offset < size {
                        self.behind = true;
                        out.push(Followed::Progress { read: f.offset, size });
                    }
                    if self.buf.len() > POLL_BYTES {
                        self.buf.truncate(POLL_BYTES);
                    }
                    return out;
                }
            }
        }
    }

    /// The last line of a finished file that has no `\n` (a replay reads it; a watch waits for the newline).
    pub fn finish(&mut self) -> Vec<Followed> {
        match self.reader.finish() {
            Ok(r) if r.is_empty() => Vec::new(),
            Ok(r) => vec![Followed::Records(r)],
            Err(e) => vec![Followed::Refused(format!("{}: {e}", self.shown))],
        }
    }

    /// Whether the file has a `run` record (the first look of a replay refuses a file without one).
    pub fn seen_run(&self) -> bool {
        self.reader.seen_run()
    }
}

/// `2 lines that are not JSON records and 1 record of an unknown type`.
pub fn skipped_words(bad_lines: u64, unknown: u64, long_lines: u64) -> String {
    let mut skipped = Vec::new();
    if bad_lines > 0 {
        skipped.push(format!("{bad_lines} line(s) that are not JSON records"));
    }
    if unknown > 0 {
        skipped.push(format!("{unknown} record(s) of an unknown type"));
    }
    if long_lines > 0 {
        skipped.push(format!(
            "{long_lines} line(s) longer than {} MiB",
            super::read::MAX_LINE >> 20
        ));
    }
    skipped.join(" and ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    const RUN: &str = "{\"type\":\"run\",\"schema\":1,\"model\":\"a\"}\n";

    fn epoch(e: u64) -> String {
        format!("{{\"type\":\"epoch\",\"epoch\":{e},\"train\":{{\"loss\":1,\"acc\":0.5}}}}\n")
    }

    fn epochs(found: &[Followed]) -> Vec<u64> {
        found
            .iter()
            .filter_map(|f| match f {
                Followed::Records(r) => Some(r),
                _ => None,
            })
            .flatten()
            .filter_map(|r| match r {
                Record::Epoch(e) => Some(e.epoch),
                _ => None,
            })
            .collect()
    }

    /// #21: `tail -F`'s cases one after the other on one follower: a missing file is waited on (said once), then
    /// followed from its start; appended lines are read on from the position; a truncation starts over in place
    /// (`replaced: false`); a rotation (the log renamed away, a new one at the path) starts over as a replacement,
    /// and the old file, though written to again, is never read.
    #[test]
    fn waits_then_follows_a_truncation_and_a_rotation() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("run.jsonl");
        let append = |path: &Path, text: &str| {
            let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
            f.write_all(text.as_bytes()).unwrap();
        };
        let mut f = Follower::new(&p);
        let found = f.poll();
        assert!(found.contains(&Followed::Waiting), "{found:?}");
        let found = f.poll();
        assert!(!found.contains(&Followed::Waiting), "said once per wait: {found:?}");

        std::fs::write(&p, format!("{RUN}{}", epoch(1))).unwrap();
        let found = f.poll();
        assert!(found.contains(&Followed::Following), "{found:?}");
        assert_eq!(epochs(&found), [1]);
        append(&p, &epoch(2));
        assert_eq!(
            epochs(&f.poll()),
            [2],
            "read on from the position, not again from the start"
        );

        // Truncated in place (the same file, shorter): starts over, nothing invented in between.
        std::fs::write(&p, RUN).unwrap();
        let found = f.poll();
        assert!(found.contains(&Followed::StartingOver { replaced: false }), "{found:?}");
        assert!(epochs(&found).is_empty(), "{found:?}");
        append(&p, &epoch(3));
        assert_eq!(epochs(&f.poll()), [3]);

        // Rotated: the log moves away and a new run writes a new file at the path.
        let old = d.path().join("run.jsonl.1");
        std::fs::rename(&p, &old).unwrap();
        std::fs::write(&p, format!("{RUN}{}", epoch(10))).unwrap();
        let mut found = f.poll();
        found.extend(f.poll());
        assert!(found.contains(&Followed::StartingOver { replaced: true }), "{found:?}");
        assert_eq!(epochs(&found), [10]);
        append(&old, &epoch(99));
        append(&p, &epoch(11));
        assert_eq!(epochs(&f.poll()), [11], "the rotated-away file is not read again");
    }

    /// #24: a file truncated and written again past the read position within one poll is a new file: the
    /// follower starts over (its first bytes differ, or those before the position), never glues the runs.
    #[test]
    fn a_rewrite_past_the_position_starts_over() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("run.jsonl");
        std::fs::write(&p, format!("{RUN}{}{}", epoch(1), epoch(2))).unwrap();
        let mut f = Follower::new(&p);
        assert_eq!(epochs(&f.poll()), [1, 2]);
        // The same first record (a rerun of the same script), longer than before, other epochs.
        std::fs::write(&p, format!("{RUN}{}{}{}", epoch(7), epoch(8), epoch(9))).unwrap();
        let found = f.poll();
        assert!(found.contains(&Followed::StartingOver { replaced: false }), "{found:?}");
        let mut all = epochs(&found);
        all.extend(epochs(&f.poll()));
        assert_eq!(all, [7, 8, 9]);
    }

    /// #24: replaced by something that cannot be shown, then by a good log: said once, waited on, then a clean
    /// start; a symlink loop is named as `replay` names it.
    #[test]
    fn a_refused_file_is_waited_on_and_a_good_one_starts_clean() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("run.jsonl");
        std::fs::write(&p, format!("{RUN}{}", epoch(1))).unwrap();
        let mut f = Follower::new(&p);
        assert_eq!(epochs(&f.poll()), [1]);
        std::fs::remove_file(&p).unwrap();
        std::fs::create_dir(&p).unwrap();
        let found = f.poll();
        assert!(found.contains(&Followed::StartingOver { replaced: true }), "{found:?}");
        assert!(
            found
                .iter()
                .any(|x| matches!(x, Followed::Refused(m) if m.contains("directory"))),
            "{found:?}"
        );
        assert!(f.poll().is_empty(), "said once");
        std::fs::remove_dir(&p).unwrap();
        std::fs::write(&p, format!("{RUN}{}", epoch(5))).unwrap();
        let found = f.poll();
        assert!(found.contains(&Followed::Following), "{found:?}");
        assert_eq!(epochs(&found), [5]);
        // Not a log: refused once; a loop: the OS's words, as replay says them.
        let q = d.path().join("notes.txt");
        std::fs::write(&q, "hello\n").unwrap();
        let mut g = Follower::new(&q);
        assert!(g
            .poll()
            .iter()
            .any(|x| matches!(x, Followed::Refused(m) if m.contains("not a bnscope log"))));
        assert!(g.poll().is_empty());
        let l = d.path().join("loop1");
        std::os::unix::fs::symlink(&l, &l).unwrap();
        let mut h = Follower::new(&l);
        let found = h.poll();
        let replay = crate::logfile::read::open(&l).unwrap_err().to_string();
        assert!(
            found.iter().any(|x| matches!(x, Followed::Refused(m) if *m == replay)),
            "{found:?} vs {replay}"
        );
    }

    /// #24: a character split across two reads is whole once its line is.
    #[test]
    fn a_character_split_across_reads_survives() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("run.jsonl");
        let text = "{\"type\":\"run\",\"model\":\"café\"}\n";
        let cut = text.find('é').unwrap() + 1;
        std::fs::write(&p, &text.as_bytes()[..cut]).unwrap();
        let mut f = Follower::new(&p);
        f.poll();
        std::fs::OpenOptions::new()
            .append(true)
            .open(&p)
            .unwrap()
            .write_all(&text.as_bytes()[cut..])
            .unwrap();
        let found = f.poll();
        let run = found.iter().find_map(|x| match x {
            Followed::Records(r) => r.iter().find_map(|r| match r {
                Record::Run(run) => run.model.clone(),
                _ => None,
            }),
            _ => None,
        });
        assert_eq!(run.as_deref(), Some("café"));
    }
}
