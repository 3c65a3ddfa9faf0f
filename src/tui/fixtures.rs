//! Scripted trainer data for the UI's tests and snapshots (the seed story: three images, tiny ResNet,
//! momentum 0.99, train accuracy 1.0 after 5 epochs while eval with running stats stays at 0.333).
use std::sync::Arc;

use crate::protocol::{BnLayerInfo, BnLayerSnapshot, BnSnapshot, EpochMetrics, Event, Metric, RunInfo, StatsAge};

/// The tiny ResNet's BatchNorm layers.
pub const TINY_BN: &[(&str, usize)] = &[
    ("bn1", 16),
    ("layer1.0.bn1", 16),
    ("layer1.0.bn2", 16),
    ("layer2.0.bn1", 32),
    ("layer2.0.bn2", 32),
    ("layer2.0.downsample.1", 32),
    ("layer3.0.bn1", 64),
    ("layer3.0.bn2", 64),
    ("layer3.0.downsample.1", 64),
];

/// The seed run: tiny ResNet on cat, coffee, rocket.
pub fn run_info() -> Arc<RunInfo> {
    Arc::new(RunInfo {
        weights: None,
        norm: "batch".into(),
        ema: None,
        pretrain: None,
        lesson: None,
        frozen_bn: None,
        pace: None,
        model: "tiny".into(),
        image_size: 64,
        batch_size: 3,
        classes: vec!["cat".into(), "coffee".into(), "rocket".into()],
        images: vec!["cat.png".into(), "coffee.png".into(), "rocket.png".into()],
        labels: vec![0, 1, 2],
        train_images: 3,
        eval_on: crate::protocol::EvalOn::Train,
        val_data: None,
        eval_batch_size: 3,
        val_transform: "none".into(),
        data: "embedded seed3".into(),
        normalize: "none".into(),
        device: "cpu (2 threads)".into(),
        seed: 42,
        momentum: 0.99,
        cumulative: false,
        lr: 0.01,
        optimizer: "adam".into(),
        epochs: None,
        framework: "keras".into(),
        bn_eps: 1e-3,
        bn_variance: "biased".into(),
        adam_eps: 1e-7,
        resumed_from: None,
        params: 78_000,
        bn_layers: TINY_BN
            .iter()
            .map(|&(name, channels)| BnLayerInfo {
                name: name.into(),
                channels,
            })
            .collect(),
        start_epoch: 0,
    })
}

/// Epoch `e` (1-based) of the seed story.
pub fn epoch(e: usize) -> Box<EpochMetrics> {
    let ramp = [0.333f32, 0.667, 1.0, 1.0, 1.0];
    let acc = ramp[(e - 1).min(4)];
    let train_loss = 1.1 * 0.1f32.powi(e as i32 - 1);
    let running = vec![vec![0.01, 0.98, 0.01], vec![0.0, 1.0, 0.0], vec![0.02, 0.97, 0.01]];
    let batch = vec![vec![0.97, 0.02, 0.01], vec![0.01, 0.98, 0.01], vec![0.0, 0.01, 0.99]];
    Box::new(EpochMetrics {
        epoch: e,
        step: e,
        momentum: 0.99,
        cumulative: false,
        t: e as u64,
        age: age(e),
        train: Metric { loss: train_loss, acc },
        eval_running: Metric {
            loss: 1.09 + 0.01 * e as f32,
            acc: 1.0 / 3.0,
        },
        eval_batch: Metric {
            loss: train_loss * 0.9,
            acc,
        },
        predictions_running: running,
        predictions_batch: batch,
        step_ms: 8.1,
        eval_ema: None,
    })
}

/// After `e` updates at 0.99.
fn age(e: usize) -> StatsAge {
    StatsAge {
        t: e as u64,
        init_weight: 0.99f64.powi(e as i32),
        constant_momentum: (e > 0).then_some(0.99),
    }
}

/// A BatchNorm snapshot after epoch `e`: running stats ~5 % of the way to the batch stats.
pub fn bn_snapshot(e: usize) -> Arc<BnSnapshot> {
    let layers = TINY_BN
        .iter()
        .enumerate()
        .map(|(l, &(name, channels))| {
            let batch_mean: Vec<f32> = (0..channels)
                .map(|c| ((c * 7 + l * 3) % 11) as f32 / 10.0 - 0.5)
                .collect();
            let batch_var: Vec<f32> = (0..channels).map(|c| 0.5 + ((c * 5 + l) % 7) as f32 / 4.0).collect();
            let frac = 1.0 - 0.99f32.powi(e as i32);
            BnLayerSnapshot {
                name: name.into(),
                n: (3 * 32 * 32) >> (2 * (l / 3)),
                mean_gap: 0.95 - 0.01 * l as f32,
                var_gap: 0.2 + 0.02 * l as f32,
                running_mean: batch_mean.iter().map(|m| m * frac).collect(),
                running_var: batch_var.iter().map(|v| 1.0 + (v - 1.0) * frac).collect(),
                batch_mean,
                batch_var,
            }
        })
        .collect();
    Arc::new(BnSnapshot {
        epoch: e,
        t: e as u64,
        age: age(e),
        layers,
    })
}

/// The trainer's side of the seed story: `Started`, then per epoch `Epoch` + a snapshot (put into the
/// slot) + `BnReady`. Returns the events in order; `put` stores each snapshot before its `BnReady`.
pub fn seed_story(epochs: usize) -> Vec<(Event, Option<Arc<BnSnapshot>>)> {
    let mut v = vec![(Event::Started(run_info()), None)];
    for e in 1..=epochs {
        v.push((Event::Epoch(epoch(e)), None));
        v.push((Event::BnReady, Some(bn_snapshot(e))));
    }
    v
}
