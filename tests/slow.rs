//! Slow checks, run with `cargo test --release -- --ignored`.
use bnscope::data;
use bnscope::model::Preset;
use bnscope::trainer::{TrainConfig, Trainer};
use candle_core::Device;

fn trainer(preset: Preset, size: usize, momentum: f64) -> Trainer {
    let mut cfg = TrainConfig::new(preset);
    cfg.image_size = size;
    cfg.momentum = momentum;
    Trainer::new(
        cfg,
        data::embedded(size).unwrap(),
        Device::Cpu,
        "cpu".into(),
        None,
        None,
    )
    .unwrap()
}

#[test]
#[ignore = "resnet50@224 on the CPU: minutes"]
fn slow_resnet50_seed_reproduction() {
    let mut t = trainer(Preset::Resnet50, 224, 0.99);
    let mut last = None;
    for _ in 0..5 {
        let m = t.run_epoch().unwrap().0;
        eprintln!(
            "resnet50 m 0.99 epoch {}: train {:.3} eval running {:.3} eval batch {:.3} ({:.0} ms/step)",
            m.epoch, m.train.acc, m.eval_running.acc, m.eval_batch.acc, m.step_ms
        );
        last = Some(m);
    }
    let m = last.unwrap();
    assert_eq!(m.train.acc, 1.0);
    assert!(m.eval_running.acc < 1.0);
    assert_eq!(m.eval_batch.acc, 1.0);

    let mut t = trainer(Preset::Resnet50, 224, 0.01);
    let mut acc = 0.0;
    for _ in 0..20 {
        acc = t.run_epoch().unwrap().0.eval_running.acc;
    }
    eprintln!("resnet50 m 0.01 epoch 20: eval running {acc:.3}");
    assert_eq!(acc, 1.0);
}

#[test]
#[ignore = "1000 epochs of tiny: a few minutes"]
fn slow_tiny_default_momentum_converges_within_1000_epochs() {
    let mut t = trainer(Preset::Tiny, 64, 0.99);
    let mut first = None;
    for _ in 0..1000 {
        let m = t.run_epoch().unwrap().0;
        if [100, 300, 600, 1000].contains(&m.epoch) {
            eprintln!("tiny m 0.99 epoch {}: eval running {:.3}", m.epoch, m.eval_running.acc);
        }
        if first.is_none() && m.eval_running.acc == 1.0 {
            first = Some(m.epoch);
            eprintln!("first epoch with eval running acc 1.0: {}", m.epoch);
        }
    }
    assert!(first.is_some(), "never converged");
}
