//! `--version`, `completions`, `man`, and what the viewer-only build (`--no-default-features`) says when asked to
//! train. Runs in both builds: `cargo test --release --no-default-features --test about` checks the viewer.
use std::process::{Command, Output};

mod common;
use common::BIN;

fn run(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().expect("run bnscope")
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

#[test]
fn version_says_the_version_commit_features_and_cpu_kernels() {
    let o = run(&["--version"]);
    assert!(o.status.success());
    let text = stdout(&o);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], format!("bnscope {}", env!("CARGO_PKG_VERSION")), "{text}");
    let commit = lines[1].strip_prefix("commit: ").expect("a commit line");
    assert!(
        commit == "unknown" || (commit.len() >= 7 && commit.chars().all(|c| c.is_ascii_hexdigit())),
        "{text}"
    );
    let features = lines[2].strip_prefix("features: ").expect("a features line");
    assert_eq!(features.contains("train"), cfg!(feature = "train"), "{text}");
    assert_eq!(features.contains("cuda"), cfg!(feature = "cuda"), "{text}");
    let kernels = lines[3].strip_prefix("cpu kernels: ").expect("a cpu kernels line");
    if cfg!(feature = "train") && std::arch::is_x86_feature_detected!("avx2") {
        assert!(kernels.contains("avx2"), "{text}");
    }
    // -V stays one line.
    assert_eq!(
        stdout(&run(&["-V"])),
        format!("bnscope {}\n", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn completions_for_bash_zsh_and_fish_know_the_subcommands() {
    for shell in ["bash", "zsh", "fish"] {
        let o = run(&["completions", shell]);
        assert!(o.status.success(), "{shell}");
        let text = stdout(&o);
        for sub in ["replay", "watch", "completions", "man"] {
            assert!(text.contains(sub), "{shell} completions lack {sub}");
        }
        assert_eq!(text.contains("inspect"), cfg!(feature = "train"), "{shell}");
    }
    let o = run(&["completions", "tcsh"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn man_prints_a_roff_page() {
    let o = run(&["man"]);
    assert!(o.status.success());
    let text = stdout(&o);
    assert!(text.contains(".TH bnscope 1"), "{}", &text[..text.len().min(300)]);
    assert!(text.contains(".SH SYNOPSIS") && text.contains("watch"));
}

#[cfg(not(feature = "train"))]
#[test]
fn the_viewer_refuses_to_train_in_one_line_with_exit_2() {
    for args in [
        &[][..],
        &["--epochs", "3"],
        &["inspect", "--weights", "w.safetensors"],
        &["bench"],
    ] {
        let o = run(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8(o.stderr).unwrap();
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(
            err.contains("viewer only") && err.contains("pip install bnscope"),
            "{err}"
        );
        assert!(o.stdout.is_empty());
    }
    // What it does do.
    assert!(run(&["--help"]).status.success());
    assert!(run(&["watch", "--help"]).status.success());
    let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/logs/bnscope_seed.jsonl");
    let o = run(&["replay", "--headless", fixture]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(stdout(&o).lines().any(|l| l.starts_with("epoch 5 ")));
}
