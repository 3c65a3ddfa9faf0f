//! `--csv FILE` (#27): the per-epoch table of a log, through the real binary; what it refuses to write over.
mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

fn bnscope(args: &[&str]) -> Output {
    Command::new(common::BIN)
        .args(args)
        .env("RAYON_NUM_THREADS", "1")
        .env("XDG_CONFIG_HOME", "/nonexistent-bnscope-test")
        .stdin(Stdio::null())
        .output()
        .expect("binary runs")
}

fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/logs/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// The figures of every `epoch` record of a log, as (epoch, column, value) with the CSV's column names.
fn figures(log: &str) -> Vec<(u64, String, f64)> {
    let mut out = Vec::new();
    for line in std::fs::read_to_string(log).unwrap().lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        if v["type"] != "epoch" {
            continue;
        }
        let e = v["epoch"].as_u64().unwrap();
        let mut put = |col: &str, x: &Value| {
            if let Some(x) = x.as_f64() {
                out.push((e, col.to_string(), x));
            }
        };
        put("step", &v["step"]);
        put("momentum_keras", &v["momentum"]);
        put("t_updates", &v["t"]);
        put("init_weight", &v["init_weight"]);
        put("step_ms", &v["step_ms"]);
        for m in ["train", "eval_running", "eval_batch", "eval_ema"] {
            put(&format!("{m}_loss"), &v[m]["loss"]);
            put(&format!("{m}_acc"), &v[m]["acc"]);
        }
    }
    out
}

fn replay_csv(logs: &[&str], csv: &Path) -> Output {
    let csv = csv.display().to_string();
    let mut args = vec!["replay", "--headless", "--csv", &csv];
    args.extend_from_slice(logs);
    bnscope(&args)
}

#[test]
fn every_epoch_and_figure_of_a_log_appears_once() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["bnscope_seed.jsonl", "torch_resnet18.jsonl", "keras_small.jsonl"] {
        let log = fixture(name);
        let csv = dir.path().join(format!("{name}.csv"));
        let out = replay_csv(&[&log], &csv);
        assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
        let mut r = csv::Reader::from_path(&csv).unwrap();
        let header: Vec<String> = r.headers().unwrap().iter().map(String::from).collect();
        assert!(header.contains(&"momentum_keras".to_string()), "{header:?}");
        let rows: Vec<csv::StringRecord> = r.records().map(Result::unwrap).collect();
        let col = |row: &csv::StringRecord, name: &str| row[header.iter().position(|h| h == name).unwrap()].to_string();
        let want = figures(&log);
        let epochs: std::collections::BTreeSet<u64> = want.iter().map(|(e, _, _)| *e).collect();
        // One row an epoch, each epoch once.
        let got: Vec<u64> = rows.iter().map(|r| col(r, "epoch").parse().unwrap()).collect();
        assert_eq!(got, epochs.iter().copied().collect::<Vec<_>>(), "{name}");
        for (e, name_, x) in &want {
            let row = rows.iter().find(|r| col(r, "epoch") == e.to_string()).unwrap();
            let cell: f64 = col(row, name_)
                .parse()
                .unwrap_or_else(|_| panic!("{name}: epoch {e} {name_}: {:?}", col(row, name_)));
            assert_eq!(cell, *x, "{name}: epoch {e} {name_}");
        }
        // Nothing more than the log has: every number in the table is one of the log's (or a row's key).
        let filled: usize = rows
            .iter()
            .map(|r| {
                header
                    .iter()
                    .enumerate()
                    .filter(|(i, h)| {
                        !["file", "run", "rank", "eval_on", "epoch", "cumulative"].contains(&h.as_str())
                            && !r[*i].is_empty()
                    })
                    .count()
            })
            .sum();
        assert_eq!(filled, want.len(), "{name}: cells filled without a figure in the log");
    }
}

#[test]
fn rank_logs_give_a_row_per_epoch_and_rank() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("ranks.csv");
    let out = replay_csv(&[&fixture("ddp.rank0.jsonl"), &fixture("ddp.rank1.jsonl")], &csv);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let text = std::fs::read_to_string(&csv).unwrap();
    let mut r = csv::Reader::from_reader(text.as_bytes());
    let ranks: Vec<String> = r.records().map(|x| x.unwrap()[2].to_string()).collect();
    assert_eq!(ranks.iter().filter(|r| *r == "0").count(), 5, "{text}");
    assert_eq!(ranks.iter().filter(|r| *r == "1").count(), 5, "{text}");
}

#[test]
fn the_table_never_writes_over_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("run.jsonl");
    std::fs::copy(fixture("keras_small.jsonl"), &log).unwrap();
    let before = std::fs::read(&log).unwrap();
    let log_s = log.display().to_string();
    // The log itself, a hard link to it, a symlink to it, an unrelated existing file.
    let hard = dir.path().join("hard.csv");
    std::fs::hard_link(&log, &hard).unwrap();
    let soft = dir.path().join("soft.csv");
    std::os::unix::fs::symlink(&log, &soft).unwrap();
    let old = dir.path().join("old.csv");
    std::fs::write(&old, "keep me").unwrap();
    for (what, target, words) in [
        ("the log", log.clone(), "the same file as the log"),
        ("a hard link", hard, "the same file as the log"),
        ("a symlink", soft, "the same file as the log"),
        ("an existing file", old.clone(), "already exists"),
    ] {
        for headless in [true, false] {
            let t = target.display().to_string();
            let mut args = vec!["replay", "--csv", &t, &log_s];
            if headless {
                args.insert(1, "--headless");
            }
            let out = bnscope(&args);
            common::assert_one_line_exit_2(&out, what);
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains("--csv") && err.contains(words), "{what}: {err}");
        }
    }
    assert_eq!(std::fs::read(&log).unwrap(), before);
    assert_eq!(std::fs::read_to_string(&old).unwrap(), "keep me");
}
