//! Whether a watched log's writer is still there (#23): how long ago the last record arrived, and, when the `run`
//! record names a process on this host, whether that process still exists. Updated in `App::handle_writer_tick`
//! (once a second while watching), drawn by the header.
use std::time::{Duration, Instant};

/// Below this the header says only "following".
pub const QUIET: Duration = Duration::from_secs(10);
/// How often the writer's process is looked for.
const LOOK_EVERY: Duration = Duration::from_secs(1);

/// This machine's name, looked up once.
pub fn this_host() -> &'static str {
    static HOST: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HOST.get_or_init(crate::control::hostname)
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct WriterWatch {
    /// When the last records of the shown file arrived (`None`: none yet).
    pub last_record: Option<Instant>,
    /// Whole seconds since then, as of the last tick (what the header shows, when ≥ [`QUIET`]).
    pub quiet_secs: Option<u64>,
    /// The `run` record's process on this host, gone: its pid.
    pub exited: Option<u64>,
    next_look: Option<Instant>,
}

impl WriterWatch {
    /// Records of the shown file arrived.
    pub fn saw_records(&mut self, now: Instant) {
        self.last_record = Some(now);
        self.quiet_secs = Some(0);
    }

    /// A file started over: nothing is known of the new writer yet.
    pub fn start_over(&mut self) {
        *self = WriterWatch::default();
    }

    /// Time passed: the quiet time in whole seconds, and (at most once a second) whether `pid` on `host` still
    /// runs (`host` is compared with this machine's name; another host's process cannot be looked at). Returns
    /// whether anything the header shows changed.
    pub fn tick(&mut self, now: Instant, writer: Option<(u64, &str)>, this_host: &str) -> bool {
        let before = (self.quiet_secs, self.exited);
        if let Some(at) = self.last_record {
            self.quiet_secs = Some(now.saturating_duration_since(at).as_secs());
        }
        if self.next_look.is_none_or(|t| now >= t) {
            self.next_look = Some(now + LOOK_EVERY);
            self.exited = match writer {
                Some((pid, host)) if host == this_host && !crate::control::process_alive(pid) => Some(pid),
                _ => None,
            };
        }
        let shown = |q: Option<u64>| q.filter(|s| *s >= QUIET.as_secs());
        (shown(before.0), before.1) != (shown(self.quiet_secs), self.exited)
    }

    /// When the next tick can change what is shown (the next whole second of quiet, or the next look).
    pub fn deadline(&self) -> Option<Instant> {
        let second = self.last_record.map(|at| {
            let q = self.quiet_secs.unwrap_or(0);
            at + Duration::from_secs(q + 1)
        });
        match (second, self.next_look) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The header's words for a watch that follows the newest epoch: `following`, `following · last record 40 s
    /// ago`, or `the writer (pid 12) has exited · last record 3:07 ago`; the second value: whether it is a warning.
    pub fn words(&self, ended: bool) -> (String, bool) {
        let quiet = self.quiet_secs.filter(|s| *s >= QUIET.as_secs()).map(|s| {
            format!(
                "last record {} ago",
                crate::tui::clock::duration(Duration::from_secs(s))
            )
        });
        match (self.exited.filter(|_| !ended), quiet) {
            (Some(pid), Some(q)) => (format!("the writer (pid {pid}) has exited · {q}"), true),
            (Some(pid), None) => (format!("the writer (pid {pid}) has exited"), true),
            (None, Some(q)) => (format!("following · {q}"), false),
            (None, None) => ("following".into(), false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_time_and_an_exited_writer_are_said() {
        let t0 = Instant::now();
        let mut w = WriterWatch::default();
        w.saw_records(t0);
        assert!(!w.tick(t0 + Duration::from_secs(3), None, "h"));
        assert_eq!(w.words(false), ("following".into(), false));
        assert!(w.tick(t0 + Duration::from_secs(40), None, "h"));
        assert_eq!(w.words(false), ("following · last record 40 s ago".into(), false));
        // This test's own process exists; a pid past the kernel's limit does not.
        w.tick(
            t0 + Duration::from_secs(42),
            Some((std::process::id() as u64, "h")),
            "h",
        );
        assert_eq!(w.exited, None);
        let gone = 4_194_304 + 7;
        assert!(w.tick(t0 + Duration::from_secs(44), Some((gone, "h")), "h"));
        assert_eq!(
            w.words(false),
            (
                format!("the writer (pid {gone}) has exited · last record 44 s ago"),
                true
            )
        );
        // Another host's pid cannot be looked at; a run that wrote its end record is not a writer that went away.
        assert!(!w.words(true).1);
        assert!(w.tick(t0 + Duration::from_secs(46), Some((gone, "elsewhere")), "h"));
        assert_eq!(w.exited, None);
        w.saw_records(t0 + Duration::from_secs(50));
        w.tick(t0 + Duration::from_secs(51), None, "h");
        assert_eq!(w.words(false), ("following".into(), false));
    }
}
