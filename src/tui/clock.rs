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
}

impl Timer {
    pub fn new(now: Instant) -> Self {
        Timer {
            started: now,
            first: None,
        }
    }

    /// The clock at `now`, after epoch `epoch` of `epochs`.
    pub fn at(&mut self, now: Instant, epoch: usize, epochs: Option<usize>) -> Clock {
        let (t0, e0) = *self.first.get_or_insert((now, epoch));
        let eta = match epochs {
            Some(total) if epoch > e0 => {
                let per = now.duration_since(t0).as_secs_f64() / (epoch - e0) as f64;
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
