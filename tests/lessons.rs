//! The lessons (`--scenario`): each runs headless with `--log` and its log shows the story the README tells. The
//! checks are directions and sizes of effects, not exact numbers.
use std::path::Path;
use std::process::Command;

use bnscope::data;
use bnscope::model::Preset;
use bnscope::protocol::Command as TrainerCommand;
use bnscope::trainer::{TrainConfig, Trainer};
use candle_core::Device;
use serde_json::Value;

mod common;
use common::BIN;

struct Epoch {
    train: f64,
    running: f64,
    batch: f64,
    running_loss: f64,
    train_loss: f64,
}

/// Runs a lesson headless for `epochs` and returns the log's run record and epochs.
fn lesson(name: &str, epochs: usize, extra: &[&str]) -> (Value, Vec<Epoch>) {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("run.jsonl");
    let started = std::time::Instant::now();
    let out = Command::new(BIN)
        .args([
            "--headless",
            "--scenario",
            name,
            "--epochs",
            &epochs.to_string(),
            "--log",
        ])
        .arg(&log)
        .args(extra)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    eprintln!("{name} {extra:?}: {:.1} s", started.elapsed().as_secs_f64());
    read(&log)
}

/// The `what` of every `event` record, kept in the run value under `_events` by [`read`].
fn run_events(run: &Value) -> Vec<String> {
    run["_events"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

fn read(log: &Path) -> (Value, Vec<Epoch>) {
    let text = std::fs::read_to_string(log).unwrap();
    let records: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let mut run = records.iter().find(|r| r["type"] == "run").unwrap().clone();
    run["_events"] = records
        .iter()
        .filter(|r| r["type"] == "event")
        .map(|r| r["what"].clone())
        .collect();
    let acc = |r: &Value, k: &str| r[k]["acc"].as_f64().unwrap();
    let epochs = records
        .iter()
        .filter(|r| r["type"] == "epoch")
        .map(|r| Epoch {
            train: acc(r, "train"),
            running: acc(r, "eval_running"),
            batch: acc(r, "eval_batch"),
            running_loss: r["eval_running"]["loss"].as_f64().unwrap(),
            train_loss: r["train"]["loss"].as_f64().unwrap(),
        })
        .collect();
    (run, epochs)
}

/// The mean of `f` over the last `k` epochs.
fn last(e: &[Epoch], k: usize, f: impl Fn(&Epoch) -> f64) -> f64 {
    let tail = &e[e.len() - k..];
    tail.iter().map(f).sum::<f64>() / k as f64
}

#[test]
fn seed_lesson_is_the_seed() {
    let (run, e) = lesson("seed", 5, &[]);
    assert_eq!(run["lesson"], "seed");
    let l = &e[4];
    assert_eq!((l.train, l.batch), (1.0, 1.0));
    assert!(l.running < 1.0, "eval running {}", l.running);
}

#[test]
fn small_batch_evaluation_at_batch_one_falls_to_chance() {
    let (run, e) = lesson("small-batch", 10, &[]);
    assert_eq!(
        (run["batch_size"].as_u64(), run["eval_batch_size"].as_u64()),
        (Some(2), Some(1))
    );
    assert_eq!(run["eval_on"], "val");
    let batch = last(&e, 5, |x| x.batch);
    let running = last(&e, 5, |x| x.running);
    eprintln!("small-batch: val batch {batch:.3}, val running {running:.3}");
    assert!(
        batch < 0.4,
        "evaluation with one image's statistics is about chance: {batch}"
    );
    assert!(
        running - batch >= 0.1,
        "the running statistics do better: {running} vs {batch}"
    );
    assert!(
        run_events(&run).iter().any(|w| w == "one_value_in_evaluation"),
        "the one-value warning for evaluation batches is in the log"
    );
}

#[test]
fn frozen_backbone_train_frozen_stats_gap_and_inference_agreement() {
    let (run, e) = lesson("frozen-backbone", 8, &[]);
    assert_eq!(run["frozen_bn"], "train-frozen-stats");
    assert!(run["pretrain"].is_string());
    let gap = last(&e, 3, |x| x.train - x.running);
    eprintln!("frozen-backbone train-frozen-stats: train − val running {gap:.3}");
    assert!(gap >= 0.3, "train − eval running {gap}");
    let (_, e) = lesson("frozen-backbone", 8, &["--frozen-bn", "inference"]);
    let gap = last(&e, 3, |x| (x.train - x.running).abs());
    eprintln!("frozen-backbone inference: |train − val running| {gap:.3}");
    assert!(
        gap <= 0.15,
        "with inference-mode BatchNorm training and evaluation agree: {gap}"
    );
}

#[test]
fn shifted_eval_collapses_with_running_stats_and_adabn_recovers() {
    let (run, e) = lesson("shifted-eval", 8, &[]);
    assert_eq!(run["val_transform"], "scale255");
    let running = last(&e, 3, |x| x.running);
    let batch = last(&e, 3, |x| x.batch);
    let loss = last(&e, 3, |x| x.running_loss);
    eprintln!("shifted-eval: val running {running:.3} (loss {loss:.0}), val batch {batch:.3}");
    assert!(
        batch - running >= 0.2,
        "the held-out batch's own statistics recover: {batch} vs {running}"
    );
    assert!(
        loss > 10.0,
        "the running statistics see inputs 255 times too large: loss {loss}"
    );
}

#[test]
fn groupnorm_evaluation_equals_training_from_the_first_epoch() {
    let (run, e) = lesson("groupnorm", 6, &[]);
    assert_eq!(run["norm"], "group");
    for x in &e {
        assert_eq!(
            x.running, x.batch,
            "no running statistics: both evaluations are the same pass"
        );
    }
    // One full batch an epoch: the training pass of epoch e + 1 sees the weights that epoch e's evaluation saw,
    // and with per-image normalisation it computes the same thing.
    for w in e.windows(2) {
        assert!(
            (w[1].train_loss - w[0].running_loss).abs() < 1e-4 * (1.0 + w[0].running_loss),
            "train {} vs the evaluation before {}",
            w[1].train_loss,
            w[0].running_loss
        );
    }
}

#[test]
fn ema_with_copied_buffers_scores_worse_than_after_recalibration() {
    // The lesson's settings, through the engine (a headless run cannot press c).
    let opts = data::LoadOptions::new(32);
    let train = data::shapes_with(150, 1, 0, &opts).unwrap();
    let val = data::shapes_with(150, 1, 1, &opts).unwrap();
    let mut cfg = TrainConfig::new(Preset::Tiny);
    cfg.image_size = 32;
    cfg.momentum = 0.9;
    cfg.ema = Some(0.99);
    let mut t = Trainer::new(cfg, train, Device::Cpu, "cpu".into(), None, None).unwrap();
    t.set_held_out(val).unwrap();
    let mut before = 0.0;
    for _ in 0..8 {
        before = t
            .run_epoch()
            .unwrap()
            .0
            .eval_ema
            .expect("an EMA figure every epoch")
            .acc;
    }
    t.apply(&TrainerCommand::Recalibrate).unwrap();
    let after = t.refresh().unwrap().eval_ema.unwrap().acc;
    eprintln!("ema: {before:.3} with copied buffers, {after:.3} after recalibrating");
    // With Keras 3's Adam (ε on the uncorrected √v, #23) the gain here is 0.471 → 0.551; it was ≥ 0.1 with
    // PyTorch's form. The lesson's numbers are to be retuned with its wording (#23's EMA item).
    assert!(
        after - before >= 0.05,
        "recalibrating the EMA model's statistics helps: {before} → {after}"
    );
}
