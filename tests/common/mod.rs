//! Helpers shared by the test files that run the binary (`mod common;`).
#![allow(dead_code)]
use std::process::{Command, Output, Stdio};

pub const BIN: &str = env!("CARGO_BIN_EXE_bnscope");

/// The binary with `args` and `env`, its address space limited to `bytes` (as `ulimit -v` does: an allocation
/// past it fails where a machine without that much memory would fail).
pub fn limited(bytes: u64, args: &[&str], env: &[(&str, &str)]) -> Command {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new(BIN);
    cmd.args(args).env("RAYON_NUM_THREADS", "2");
    for (k, v) in env {
        cmd.env(k, v);
    }
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            let lim = libc::rlimit {
                rlim_cur: bytes,
                rlim_max: bytes,
            };
            libc::setrlimit(libc::RLIMIT_AS, &lim);
            Ok(())
        });
    }
    cmd
}

/// [`limited`], run to its end.
pub fn run_limited(bytes: u64, args: &[&str], env: &[(&str, &str)]) -> Output {
    limited(bytes, args, env)
        .stdin(Stdio::null())
        .output()
        .expect("binary runs")
}

/// The lines of `out`'s stderr that report an error.
pub fn error_lines(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.contains("error"))
        .map(String::from)
        .collect()
}

/// Exit 2 with exactly one `bnscope: error:` line and no panic, abort or backtrace.
pub fn assert_one_line_exit_2(out: &Output, what: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{what}: {:?}\n{err}", out.status);
    let errors = error_lines(out);
    assert_eq!(errors.len(), 1, "{what}: {err}");
    assert!(errors[0].starts_with("bnscope: error: "), "{what}: {err}");
    for bad in ["panicked", "backtrace", "memory allocation of", "Aborted"] {
        assert!(!err.contains(bad), "{what}: {bad:?} in {err}");
    }
}
