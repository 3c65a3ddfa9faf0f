//! The trainer reproduces the seed's experiment, deterministically.
use bnscope::data;
use bnscope::model::BnMode;
use bnscope::model::Preset;
use bnscope::protocol::*;
use bnscope::trainer::{TrainConfig, Trainer};
use candle_core::Device;

fn trainer(seed: u64, momentum: f64, lr: f64) -> Trainer {
    let mut cfg = TrainConfig::new(Preset::Tiny);
    cfg.seed = seed;
    cfg.momentum = momentum;
    cfg.lr = lr;
    let ds = data::embedded(64).unwrap();
    Trainer::new(cfg, ds, Device::Cpu, "cpu".into(), None, None).unwrap()
}

fn run(t: &mut Trainer, epochs: usize) -> Vec<EpochMetrics> {
    (0..epochs).map(|_| *t.run_epoch().unwrap().0).collect()
}

#[test]
fn seed_reproduction_tiny() {
    for seed in 0..=2 {
        let mut t = trainer(seed, 0.99, 1e-3);
        let m = run(&mut t, 5);
        let last = &m[4];
        eprintln!(
            "seed {seed}, m 0.99, epoch 5: train {:.3}, eval running {:.3}, eval batch {:.3}",
            last.train.acc, last.eval_running.acc, last.eval_batch.acc
        );
        assert_eq!(last.train.acc, 1.0, "seed {seed}");
        assert!(last.eval_running.acc < 1.0, "seed {seed}: {}", last.eval_running.acc);
        assert_eq!(last.eval_batch.acc, 1.0, "seed {seed}");
        assert_eq!(last.t, 5);
        // One batch holds all three images: each epoch is one step and one update.
        assert_eq!(last.step, 5);
        assert_eq!(last.predictions_running.len(), 3);
        for row in last.predictions_running.iter().chain(&last.predictions_batch) {
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-4);
        }

        let mut t = trainer(seed, 0.01, 1e-3);
        let m = run(&mut t, 20);
        eprintln!(
            "seed {seed}, m 0.01, epoch 20: eval running {:.3}",
            m[19].eval_running.acc
        );
        assert_eq!(m[19].eval_running.acc, 1.0, "seed {seed}");
    }
}

#[test]
fn same_seed_same_numbers() {
    let a = run(&mut trainer(7, 0.99, 1e-3), 3);
    let b = run(&mut trainer(7, 0.99, 1e-3), 3);
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x.train, y.train);
        assert_eq!(x.eval_running, y.eval_running);
        assert_eq!(x.eval_batch, y.eval_batch);
        assert_eq!(x.predictions_running, y.predictions_running);
    }
    let c = run(&mut trainer(8, 0.99, 1e-3), 3);
    assert_ne!(a[2].train, c[2].train, "a different seed gives a different run");
}

#[test]
fn frozen_weights_show_the_closed_form_in_every_layer() {
    let m = 0.9;
    let mut t = trainer(0, m, 0.0);
    let first = t.run_epoch().unwrap().1;
    let mut snap = first.clone();
    for _ in 1..12 {
        snap = t.run_epoch().unwrap().1;
    }
    assert_eq!(snap.t, 12);
    let f = 1.0 - m.powi(12);
    for (l, l0) in snap.layers.iter().zip(&first.layers) {
        // With lr 0 every layer sees the same batch each epoch.
        assert_eq!(l.batch_mean, l0.batch_mean, "{}", l.name);
        for c in 0..l.running_mean.len() {
            let want_m = f * l.batch_mean[c] as f64;
            let want_v = m.powi(12) + f * l.batch_var[c] as f64;
            // Each epoch shuffles the three images, so the f32 sums behind the batch mean round differently from
            // epoch to epoch; where channel means nearly cancel that is a few 1e-5 of the result.
            let tol = 1e-4 * want_m.abs().max(1e-2);
            assert!(
                (l.running_mean[c] as f64 - want_m).abs() < tol,
                "{} ch {c}: {} vs {want_m}",
                l.name,
                l.running_mean[c]
            );
            assert!(
                (l.running_var[c] as f64 - want_v).abs() < 1e-5 * want_v,
                "{} ch {c}",
                l.name
            );
        }
        let expected_gap = m.powi(12) as f32;
        assert!(
            (l.mean_gap - expected_gap).abs() < 1e-4,
            "{}: gap {} vs {expected_gap}",
            l.name,
            l.mean_gap
        );
    }
}

#[test]
fn evaluation_never_moves_the_running_stats() {
    let mut t = trainer(0, 0.99, 1e-3);
    t.run_epoch().unwrap();
    let before = t.snapshot().unwrap();
    t.evaluate(BnMode::EvalRunning).unwrap();
    t.evaluate(BnMode::EvalBatch).unwrap();
    let after = t.snapshot().unwrap();
    for (a, b) in before.layers.iter().zip(&after.layers) {
        assert_eq!(a.running_mean, b.running_mean);
        assert_eq!(a.running_var, b.running_var);
    }
    assert_eq!(before.t, after.t);
}

#[test]
fn recalibrate_on_a_constant_batch_yields_its_stats_and_fixes_eval() {
    let mut t = trainer(1, 0.99, 1e-3);
    let m = run(&mut t, 5);
    assert!(m[4].eval_running.acc < 1.0);
    t.apply(&Command::Recalibrate).unwrap();
    let snap = t.snapshot().unwrap();
    assert_eq!(snap.t, 1, "one batch holds the whole data set");
    for l in &snap.layers {
        for c in 0..l.running_mean.len() {
            assert!(
                (l.running_mean[c] - l.batch_mean[c]).abs() <= 1e-6 * l.batch_mean[c].abs().max(1.0),
                "{}",
                l.name
            );
            assert!(
                (l.running_var[c] - l.batch_var[c]).abs() <= 1e-6 * l.batch_var[c].abs().max(1.0),
                "{}",
                l.name
            );
        }
    }
    // Twice the same batch: still exactly its stats (cumulative average of equal values).
    let x = candle_core::Tensor::from_slice(&data::embedded(64).unwrap().pixels, (3, 3, 64, 64), &Device::Cpu).unwrap();
    t.model_mut().recalibrate(&[x.clone(), x]).unwrap();
    let snap2 = t.snapshot().unwrap();
    assert_eq!(snap2.t, 2);
    for (a, b) in snap.layers.iter().zip(&snap2.layers) {
        for c in 0..a.running_mean.len() {
            assert!((a.running_mean[c] - b.running_mean[c]).abs() <= 1e-6 * a.running_mean[c].abs().max(1.0));
        }
    }
    let (eval, _) = t.evaluate(BnMode::EvalRunning).unwrap();
    let (batch, _) = t.evaluate(BnMode::EvalBatch).unwrap();
    // Running stats now equal the batch stats of the whole set, so both evaluations agree, up to the n/(n−1)
    // factor: the running variance is the unbiased one, batch-mode normalisation uses the biased one.
    assert_eq!(eval.acc, batch.acc);
    assert!(
        (eval.loss - batch.loss).abs() < 0.02 * batch.loss,
        "{} vs {}",
        eval.loss,
        batch.loss
    );
}

#[test]
fn commands_change_the_run() {
    let mut t = trainer(2, 0.99, 1e-3);
    run(&mut t, 2);
    t.apply(&Command::SetMomentum(0.5)).unwrap();
    assert_eq!(t.model().bn_layers()[0].momentum(), 0.5);
    t.apply(&Command::ResetStats).unwrap();
    assert_eq!(t.snapshot().unwrap().t, 0);
    let m = run(&mut t, 1);
    assert_eq!(m[0].t, 1);
    assert_eq!(m[0].momentum, 0.5);
    t.apply(&Command::SetCumulative(true)).unwrap();
    assert!(t.model().bn_layers()[0].cumulative());
    t.apply(&Command::Restart).unwrap();
    assert_eq!(t.epoch(), 0);
    assert_eq!(t.info().seed, 3);
}

#[test]
fn the_thread_speaks_the_protocol() {
    let (link, handle) = trainer(0, 0.99, 1e-3).spawn().unwrap();
    let mut epochs = 0;
    let mut started = 0;
    let mut applied_at = None;
    loop {
        match link
            .events
            .recv_timeout(std::time::Duration::from_secs(60))
            .expect("trainer is alive")
        {
            Event::Started(info) => {
                started += 1;
                assert_eq!(info.bn_layers.len(), 9);
                assert_eq!(info.classes, vec!["cat", "coffee", "rocket"]);
            }
            Event::Epoch(m) => {
                epochs += 1;
                assert_eq!(m.epoch, epochs, "no epoch is dropped");
                if epochs == 2 {
                    link.commands.send(Command::SetMomentum(0.5)).unwrap();
                }
                match applied_at {
                    // Every epoch after the acknowledgement used the new momentum.
                    Some(e) if m.epoch > e => {
                        assert_eq!(m.momentum, 0.5);
                        if m.epoch >= e + 2 {
                            let _ = link.commands.send(Command::Quit(EndReason::Quit));
                        }
                    }
                    _ => assert_eq!(m.momentum, 0.99),
                }
            }
            Event::BnReady => {
                assert!(link.bn.take().is_some());
            }
            Event::Applied { what, epoch, .. } => {
                assert_eq!(what, EventKind::Momentum);
                applied_at = Some(epoch);
            }
            Event::Finished { reason, .. } => {
                assert_eq!(reason, EndReason::Quit);
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(started, 1);
    assert!(epochs >= 3);
    handle.join().unwrap();
}

#[test]
fn pace_caps_epochs_per_second() {
    let mut cfg = TrainConfig::new(Preset::Tiny);
    cfg.pace = Some(10.0);
    cfg.image_size = 16;
    let t = Trainer::new(cfg, data::embedded(16).unwrap(), Device::Cpu, "cpu".into(), None, None).unwrap();
    let (link, handle) = t.spawn().unwrap();
    let mut seen = Vec::new();
    while seen.len() < 4 {
        if let Event::Epoch(_) = link.events.recv_timeout(std::time::Duration::from_secs(30)).unwrap() {
            seen.push(std::time::Instant::now());
        }
    }
    // Three intervals at 10 epochs a second take at least 0.3 s, however fast the machine.
    let span = seen[3] - seen[0];
    assert!(span >= std::time::Duration::from_millis(280), "{span:?}");
    // Full speed again: the command is applied while the trainer waits for the pace.
    link.commands.send(Command::SetPace(None)).unwrap();
    link.commands.send(Command::Quit(EndReason::Quit)).unwrap();
    loop {
        match link.events.recv_timeout(std::time::Duration::from_secs(30)).unwrap() {
            Event::Applied { what, value, .. } => assert_eq!((what, value.as_str()), (EventKind::Pace, "full speed")),
            Event::Finished { reason, .. } => {
                assert_eq!(reason, EndReason::Quit);
                break;
            }
            _ => {}
        }
    }
    handle.join().unwrap();
}

/// A front end that stops reading (a stalled terminal) holds the trainer's queue at the configured backlog: the
/// trainer keeps training, holds back epoch metrics but the newest, and delivers everything else in order; the
/// last epoch arrives before `Finished`.
#[test]
fn a_stalled_front_end_bounds_the_event_queue() {
    let mut cfg = TrainConfig::new(Preset::Tiny);
    cfg.image_size = 16;
    cfg.epochs = Some(400);
    cfg.event_backlog = Some(50);
    let t = Trainer::new(cfg, data::embedded(16).unwrap(), Device::Cpu, "cpu".into(), None, None).unwrap();
    let (link, handle) = t.spawn().unwrap();
    // Read nothing until the trainer is done (its thread ends after `Finished`, which a full queue never blocks).
    let mut most = 0;
    while !handle.is_finished() {
        most = most.max(link.events.len());
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    handle.join().unwrap();
    assert!(
        most <= 52,
        "queue stayed within the backlog (+ the held epoch and Finished): {most}"
    );
    let events: Vec<Event> = link.events.try_iter().collect();
    let epochs: Vec<usize> = events
        .iter()
        .filter_map(|e| match e {
            Event::Epoch(m) => Some(m.epoch),
            _ => None,
        })
        .collect();
    assert!(epochs.windows(2).all(|w| w[0] < w[1]), "in order");
    assert!(epochs.len() < 400, "some epochs were held back: {}", epochs.len());
    assert_eq!(epochs.last(), Some(&400), "the newest epoch is delivered");
    assert!(matches!(events.first(), Some(Event::Started(_))));
    assert!(
        matches!(events.last(), Some(Event::Finished { epochs: 400, .. })),
        "Finished comes last: {:?}",
        events.last()
    );
}

/// Holding `c` queues hundreds of recalibrations; a quit behind them must not wait for each (issue #17).
#[test]
fn a_quit_overtakes_queued_recalibrations() {
    let mut cfg = TrainConfig::new(Preset::Tiny);
    cfg.start_paused = true;
    cfg.image_size = 16;
    let t = Trainer::new(cfg, data::embedded(16).unwrap(), Device::Cpu, "cpu".into(), None, None).unwrap();
    let (link, handle) = t.spawn().unwrap();
    for _ in 0..200 {
        link.commands.send(Command::Recalibrate).unwrap();
    }
    link.commands.send(Command::SetMomentum(0.9)).unwrap();
    link.commands.send(Command::Quit(EndReason::Quit)).unwrap();
    let (mut recalibrations, mut momentum) = (0, false);
    loop {
        match link.events.recv_timeout(std::time::Duration::from_secs(60)).unwrap() {
            Event::Applied {
                what: EventKind::Recalibrate,
                ..
            } => recalibrations += 1,
            Event::Applied {
                what: EventKind::Momentum,
                ..
            } => momentum = true,
            Event::Finished { reason, .. } => {
                assert_eq!(reason, EndReason::Quit);
                break;
            }
            _ => {}
        }
    }
    assert!(
        recalibrations < 100,
        "{recalibrations} of 200 queued recalibrations ran before the quit"
    );
    assert!(
        momentum,
        "quick settings queued before the quit still apply (the checkpoint keeps them)"
    );
    handle.join().unwrap();
}
