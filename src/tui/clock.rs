//! The header's clock and memory: the run's elapsed time, an ETA for `--epochs` runs, and the process's resident
//! memory. Sampled in `App::handle_trainer` (a state change), never while drawing.
use std::time::{Duration, Instant};

/// What the header shows about time and memory, as of the newest epoch.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Clock {
    /// Since the trainer said `Started` (the pre-training phase included).
    pub elapsed: Duration,
    /// Until the last of `--epochs`, at the pace of the epochs so far (`None`: no `--epochs`, or one epoch only).
    pub eta: Option<Duration>,
    /// The process's resident set size in bytes (`/proc/self/statm`; `None` where there is none).
    pub rss: Option<u64>,
}

/// When the run started and its first epoch's arrival (the ETA's rate counts from there, so that a pre-training
/// phase does not skew it).
#[derive(Clone, Copy, Debug)]
pub struct Timer {
    pub started: Instant,
    pub first: Option<(Instant, usize)>,
    /// Paused since (the run's pause, `space`): that time does not count toward the ETA's rate.
    paused_at: Option<Instant>,
    /// Time paused since the first epoch.
    paused_total: Duration,
}

impl Timer {
    pub fn new(now: Instant) -> Self {
        Timer {
            started: now,
            first: None,
            paused_at: None,
            paused_total: Duration::ZERO,
        }
    }

    /// The run was paused or resumed at `now` (called with the current state; repeats change nothing).
    pub fn set_paused(&mut self, now: Instant, paused: bool) {
        match (paused, self.paused_at) {
            (true, None) => self.paused_at = Some(now),
            (false, Some(at)) => {
                self.paused_at = None;
                self.paused_total += self.since_first(now, at);
            }
            _ => {}
        }
    }

    pub fn paused(&self) -> bool {
        self.paused_at.is_some()
    }

    /// The part of `at..now` after the first epoch.
    fn since_first(&self, now: Instant, at: Instant) -> Duration {
        match self.first {
            Some((t0, _)) => now.saturating_duration_since(at.max(t0)),
            None => Duration::ZERO,
        }
    }

    /// The clock at `now`, after epoch `epoch` of `epochs`; the ETA's rate leaves out the time paused.
    pub fn at(&mut self, now: Instant, epoch: usize, epochs: Option<usize>) -> Clock {
        let (t0, e0) = *self.first.get_or_insert((now, epoch));
        let paused = self.paused_total + self.paused_at.map_or(Duration::ZERO, |at| self.since_first(now, at));
        let eta = match epochs {
            Some(total) if epoch > e0 => {
                let per = now.duration_since(t0).saturating_sub(paused).as_secs_f64() / (epoch - e0) as f64;
                Some(Duration::from_secs_f64(per * total.saturating_sub(epoch) as f64))
            }
            _ => None,
        };
        Clock {
            elapsed: now.duration_since(self.started),
            eta,
            rss: rss_bytes(),
        }
    }
}

/// Resident set size from `/proc/self/statm` (its second field, in pages). Read by hand: one small file, and
/// the crates that do this (sysinfo, procfs) pull in far more than this one number needs.
pub fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * u64::try_from(page).ok().filter(|&p| p > 0).unwrap_or(4096))
}

/// `42 s`, `3:07`, `1:02:03`.
pub fn duration(d: Duration) -> String {
    let s = d.as_secs();
    if s < 60 {
        format!("{s} s")
    } else if s < 3600 {
        format!("{}:{:02}", s / 60, s % 60)
    } else {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    }
}

/// `84 MB` (decimal megabytes, as `ps` and `top` users read them).
pub fn megabytes(b: u64) -> String {
    format!("{:.0} MB", b as f64 / 1e6)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eta_from_the_epochs_since_the_first() {
        let t0 = Instant::now();
        let mut t = Timer::new(t0);
        // A 10 s phase, then epoch 1; then 4 more epochs in 2 s: 0.5 s each, 95 to go.
        assert_eq!(t.at(t0 + Duration::from_secs(10), 1, Some(100)).eta, None);
        let c = t.at(t0 + Duration::from_secs(12), 5, Some(100));
        assert_eq!(c.elapsed, Duration::from_secs(12));
        assert_eq!(c.eta, Some(Duration::from_secs_f64(47.5)));
        assert_eq!(t.at(t0 + Duration::from_secs(12), 5, None).eta, None);
    }

    #[test]
    fn time_paused_does_not_count_toward_the_eta() {
        let t0 = Instant::now();
        let s = |x: u64| t0 + Duration::from_secs(x);
        let mut t = Timer::new(t0);
        t.at(s(0), 1, Some(100));
        // Paused from 2 s to 62 s; epochs 1 → 5 in 4 s of running: 1 s each, 95 to go.
        t.set_paused(s(2), true);
        t.set_paused(s(30), true);
        assert!(t.paused());
        t.set_paused(s(62), false);
        assert_eq!(t.at(s(64), 5, Some(100)).eta, Some(Duration::from_secs(95)));
        // Paused again and still paused: the time so far is left out too.
        t.set_paused(s(64), true);
        assert_eq!(t.at(s(100), 5, Some(100)).eta, Some(Duration::from_secs(95)));
    }

    #[test]
    fn words() {
        assert_eq!(duration(Duration::from_secs(42)), "42 s");
        assert_eq!(duration(Duration::from_secs(187)), "3:07");
        assert_eq!(duration(Duration::from_secs(3723)), "1:02:03");
        assert_eq!(megabytes(84_400_000), "84 MB");
    }

    #[test]
    fn rss_is_read_on_linux() {
        if cfg!(target_os = "linux") {
            let b = rss_bytes().expect("statm");
            assert!(b > 1_000_000 && b < 100_000_000_000, "{b}");
        }
    }
}
