//! Evaluation on held-out data (#14): the trainer's two evaluations and its predictions read the held-out set, in
//! batches of the evaluation batch size, with `--val-transform` on their inputs; training and recalibration stay on
//! the training set.
use bnscope::data::{self, LoadOptions, ValTransform};
use bnscope::model::Preset;
use bnscope::protocol::*;
use bnscope::trainer::{TrainConfig, Trainer};
use candle_core::Device;

fn cfg(seed: u64, momentum: f64, size: usize) -> TrainConfig {
    let mut c = TrainConfig::new(Preset::Tiny);
    c.seed = seed;
    c.momentum = momentum;
    c.image_size = size;
    c
}

fn shapes(per_class: usize, split: u64, size: usize) -> data::Dataset {
    data::shapes_with(per_class, 1, split, &LoadOptions::new(size)).unwrap()
}

fn run(t: &mut Trainer, epochs: usize) -> Vec<EpochMetrics> {
    (0..epochs).map(|_| *t.run_epoch().unwrap().0).collect()
}

#[test]
fn evaluations_read_the_held_out_set_and_training_stays_on_the_training_set() {
    let mut c = cfg(3, 0.9, 32);
    c.batch_size = 6;
    let mut plain = Trainer::new(c.clone(), shapes(2, 0, 32), Device::Cpu, "cpu".into(), None, None).unwrap();
    let mut held = Trainer::new(c, shapes(2, 0, 32), Device::Cpu, "cpu".into(), None, None).unwrap();
    held.set_held_out(shapes(5, 1, 32)).unwrap();
    let info = held.info();
    assert_eq!(info.eval_on, EvalOn::Val);
    assert_eq!((info.train_images, info.images.len(), info.labels.len()), (6, 15, 15));
    assert_eq!(plain.info().eval_on, EvalOn::Train);
    let (a, b) = (run(&mut plain, 3), run(&mut held, 3));
    for (x, y) in a.iter().zip(&b) {
        // The same training: the held-out set changes no step.
        assert_eq!(x.train, y.train, "epoch {}", x.epoch);
        assert_eq!(x.predictions_running.len(), 6);
        assert_eq!(y.predictions_running.len(), 15);
        assert_eq!(y.predictions_batch.len(), 15);
        assert_ne!(x.eval_running, y.eval_running, "epoch {}", x.epoch);
    }
    // Recalibration reads the training set: the same statistics with or without a held-out set.
    plain.apply(&Command::Recalibrate).unwrap();
    held.apply(&Command::Recalibrate).unwrap();
    let (sa, sb) = (plain.snapshot().unwrap(), held.snapshot().unwrap());
    for (x, y) in sa.layers.iter().zip(&sb.layers) {
        assert_eq!(x.running_mean, y.running_mean, "{}", x.name);
        assert_eq!(x.running_var, y.running_var, "{}", x.name);
    }
    // Another class list is refused.
    let mut t = Trainer::new(cfg(1, 0.9, 32), shapes(1, 0, 32), Device::Cpu, "cpu".into(), None, None).unwrap();
    let seed3 = data::embedded(32).unwrap();
    let e = t.set_held_out(seed3).unwrap_err();
    assert!(e.to_string().contains("differ"), "{e}");
}

#[test]
fn eval_batch_size_one_changes_batch_statistics_but_not_running_ones() {
    // The seed run: three images, one batch, eval with batch statistics 1.0 at epoch 5.
    let full = cfg(1, 0.9, 64);
    let mut one = full.clone();
    one.eval_batch_size = Some(1);
    let ds = || data::embedded(64).unwrap();
    let mut a = Trainer::new(full, ds(), Device::Cpu, "cpu".into(), None, None).unwrap();
    let mut b = Trainer::new(one, ds(), Device::Cpu, "cpu".into(), None, None).unwrap();
    assert_eq!((a.info().eval_batch_size, b.info().eval_batch_size), (32, 1));
    let (ma, mb) = (run(&mut a, 8), run(&mut b, 8));
    let (x, y) = (ma.last().unwrap(), mb.last().unwrap());
    eprintln!(
        "epoch 8: eval batch acc {} (eval batch 32) vs {} (eval batch 1); eval running {} vs {}",
        x.eval_batch.acc, y.eval_batch.acc, x.eval_running.acc, y.eval_running.acc
    );
    for (p, q) in ma.iter().zip(&mb) {
        assert_eq!(p.train, q.train);
        // Running statistics do not depend on what else is in the batch.
        assert_eq!(p.eval_running.acc, q.eval_running.acc, "epoch {}", p.epoch);
        assert!(
            (p.eval_running.loss - q.eval_running.loss).abs() < 1e-4,
            "epoch {}",
            p.epoch
        );
    }
    // Each image normalised by its own statistics: another evaluation.
    assert!(
        ma.iter().zip(&mb).any(|(p, q)| p.eval_batch.acc != q.eval_batch.acc),
        "eval batch 1 should change the accuracy with batch statistics in some epoch"
    );
    assert!(ma.iter().zip(&mb).all(|(p, q)| p.eval_batch.loss != q.eval_batch.loss));
}

#[test]
fn scale255_on_the_evaluation_inputs_breaks_running_statistics_not_batch_ones() {
    // A trained tiny run (momentum 0.9: the running statistics have converged) evaluated on its own images.
    let clean = cfg(1, 0.9, 64);
    let mut shifted = clean.clone();
    shifted.val_transform = ValTransform::Scale255;
    let ds = || data::embedded(64).unwrap();
    let mut a = Trainer::new(clean, ds(), Device::Cpu, "cpu".into(), None, None).unwrap();
    let mut b = Trainer::new(shifted, ds(), Device::Cpu, "cpu".into(), None, None).unwrap();
    assert_eq!(b.info().val_transform, "scale255");
    let (ma, mb) = (run(&mut a, 25), run(&mut b, 25));
    let (x, y) = (ma.last().unwrap(), mb.last().unwrap());
    eprintln!(
        "epoch 25: eval running {} → {} with scale255; eval batch {} → {}",
        x.eval_running.acc, y.eval_running.acc, x.eval_batch.acc, y.eval_batch.acc
    );
    assert_eq!(x.train, y.train, "training never sees the transform");
    assert!(
        x.eval_running.acc > 0.5,
        "the clean run should have learnt: {}",
        x.eval_running.acc
    );
    assert!(
        y.eval_running.acc < x.eval_running.acc,
        "scale255 should lower eval running"
    );
    assert!(y.eval_running.loss > x.eval_running.loss);
    // The batch's own statistics absorb the scale (AdaBN): better than the running statistics.
    assert!(
        y.eval_batch.acc > y.eval_running.acc,
        "{} vs {}",
        y.eval_batch.acc,
        y.eval_running.acc
    );
    // Recalibration reads untransformed training data: the clean run's statistics after `c`.
    a.apply(&Command::Recalibrate).unwrap();
    b.apply(&Command::Recalibrate).unwrap();
    let (sa, sb) = (a.snapshot().unwrap(), b.snapshot().unwrap());
    assert_eq!(sa.layers[0].running_mean, sb.layers[0].running_mean);
}

mod common;
use common::BIN;

#[test]
fn the_log_and_the_lines_say_val_and_replay_reads_them() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("run.jsonl");
    let l = log.display().to_string();
    let out = std::process::Command::new(BIN)
        .args([
            "--data",
            "shapes:2",
            "--headless",
            "--epochs",
            "2",
            "--image-size",
            "32",
        ])
        .args(["--eval-batch-size", "2", "--seed", "4", "--log", &l])
        .env("RAYON_NUM_THREADS", "2")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stdout.contains("| val running: loss") && stdout.contains("| val batch: loss"),
        "{stdout}"
    );
    assert!(!stdout.contains("eval running"), "{stdout}");
    assert!(
        stdout.contains("shapes:2 (seed 4)") && stdout.contains("6 images"),
        "{stdout}"
    );
    assert!(
        stdout.contains("evaluating on 6 held-out images") && stdout.contains("eval batch size 2"),
        "{stdout}"
    );
    let text = std::fs::read_to_string(&log).unwrap();
    let run: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(run["eval_on"], "val");
    assert_eq!(run["val_images"], 6);
    assert_eq!(run["train_images"], 6);
    assert_eq!(run["images"], 6);
    assert_eq!(run["eval_batch_size"], 2);
    assert_eq!(run["batch_size"], 32);
    assert_eq!(run["val_transform"], "none");
    assert_eq!(run["schema"], 1);
    assert!(run["val_data"].as_str().unwrap().contains("held-out"), "{run}");
    let replay = std::process::Command::new(BIN)
        .args(["replay", "--headless", &l])
        .output()
        .unwrap();
    let r = String::from_utf8_lossy(&replay.stdout);
    assert_eq!(replay.status.code(), Some(0));
    assert!(
        r.contains("evaluated on 6 held-out images") && r.contains("| val running: loss"),
        "{r}"
    );
    assert!(r.contains("val with running stats"), "{r}");

    // The embedded images: evaluated on the training set, said so.
    let log2 = dir.path().join("seed.jsonl");
    let out = std::process::Command::new(BIN)
        .args(["--headless", "--epochs", "1", "--log", &log2.display().to_string()])
        .env("RAYON_NUM_THREADS", "2")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("| eval running: loss"));
    let text = std::fs::read_to_string(&log2).unwrap();
    let run: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(run["eval_on"], "train");
    assert!(run.get("val_images").is_none());
}

#[test]
fn val_split_evaluates_on_the_last_images_of_each_class() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("data");
    // Two classes of five images, named so that sorting matters (10 sorts before 2).
    for (class, names) in [("a", ["1", "10", "2", "3", "4"]), ("b", ["5", "6", "7", "8", "9"])] {
        std::fs::create_dir_all(root.join(class)).unwrap();
        for (k, n) in names.iter().enumerate() {
            image::RgbImage::from_pixel(8, 8, image::Rgb([k as u8 * 40, 9, 200]))
                .save(root.join(class).join(format!("{n}.png")))
                .unwrap();
        }
    }
    let log = dir.path().join("run.jsonl");
    let out = std::process::Command::new(BIN)
        .args([
            "--data",
            &root.display().to_string(),
            "--val-split",
            "0.3",
            "--image-size",
            "16",
        ])
        .args(["--headless", "--epochs", "1", "--log", &log.display().to_string()])
        .env("RAYON_NUM_THREADS", "2")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let text = std::fs::read_to_string(&log).unwrap();
    let run: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    // ⌈0.3·5⌉ = 2 of each class, the last by sorted name.
    assert_eq!(
        run["image_names"],
        serde_json::json!(["3.png", "4.png", "8.png", "9.png"])
    );
    assert_eq!(run["labels"], serde_json::json!([0, 0, 1, 1]));
    assert_eq!(
        (run["train_images"].as_u64(), run["val_images"].as_u64()),
        (Some(6), Some(4))
    );
    let epoch: serde_json::Value = serde_json::from_str(text.lines().nth(1).unwrap()).unwrap();
    assert_eq!(epoch["predictions_running"].as_array().unwrap().len(), 4);
}
