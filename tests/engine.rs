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
    let x = data::embedded(64).unwrap().batch(&[0, 1, 2], &Device::Cpu).unwrap();
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

/// `init_weight` in the log is the product of the momenta of the updates since the last reset, whatever happens:
/// momentum changes, cumulative averaging, a reset and a recalibration (issue: "travelled" under momentum changes).
#[test]
fn logged_start_weight_is_the_product_of_the_logged_momenta() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run.jsonl");
    let log = bnscope::log::JsonlLog::open(&path, bnscope::log::LogBn::Summary, false).unwrap();
    let mut cfg = TrainConfig::new(Preset::Tiny);
    cfg.batch_size = 2; // two updates an epoch (3 images)
    let ds = data::embedded(32).unwrap();
    let mut t = Trainer::new(cfg, ds, Device::Cpu, "cpu".into(), Some(log), None).unwrap();
    let mut plan: Vec<Option<Command>> = vec![None; 3];
    plan.push(Some(Command::SetMomentum(0.9)));
    plan.extend([None, None]);
    plan.push(Some(Command::SetCumulative(true)));
    plan.push(None);
    plan.push(Some(Command::SetMomentum(0.5)));
    plan.push(Some(Command::ResetStats));
    plan.push(None);
    plan.push(Some(Command::Recalibrate));
    plan.push(None);
    for cmd in &plan {
        if let Some(c) = cmd {
            t.apply(c).unwrap();
        }
        t.run_epoch().unwrap();
    }
    drop(t);
    let records: Vec<serde_json::Value> = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // Replay the log: each epoch has two updates at its momentum (cumulative: m = (t−1)/t), a reset sets w = 1,
    // a recalibration (2 batches, weighted by size: m = 0 then 2/3) sets w = 0.
    let (mut w, mut t_) = (1.0f64, 0u64);
    let mut checked = 0;
    for r in &records {
        match r["type"].as_str().unwrap() {
            "event" if r["what"] == "reset_stats" => (w, t_) = (1.0, 0),
            "event" if r["what"] == "recalibrate" => (w, t_) = (0.0, 2),
            "epoch" => {
                for _ in 0..2 {
                    t_ += 1;
                    w *= if r["cumulative"].as_bool().unwrap() {
                        (t_ - 1) as f64 / t_ as f64
                    } else {
                        r["momentum"].as_f64().unwrap()
                    };
                }
                assert_eq!(r["t"].as_u64().unwrap(), t_, "{r}");
                let logged = r["init_weight"].as_f64().unwrap();
                assert!(
                    (logged - w).abs() <= 1e-12,
                    "epoch {}: logged {logged}, product {w}",
                    r["epoch"]
                );
                checked += 1;
            }
            _ => {}
        }
    }
    assert_eq!(checked, plan.len());
}

/// With frozen weights (lr 0) and one full batch an epoch, every layer sees the same batch each epoch, so the
/// running statistics follow the closed forms exactly: mean `(1 − mᵗ)·μ`, variance `mᵗ + (1 − mᵗ)·σ²` with Keras'
/// biased σ² or PyTorch's unbiased `n/(n−1)·σ²` (the snapshot's `batch_var` is always the biased one).
#[test]
fn both_framework_profiles_follow_their_closed_forms() {
    use bnscope::framework::Framework;
    for fw in [Framework::Keras, Framework::Torch] {
        let p = fw.profile();
        let mut cfg = TrainConfig::new(Preset::Tiny);
        cfg.framework = fw;
        cfg.momentum = p.momentum;
        cfg.bn_eps = p.bn_eps;
        cfg.bn_unbiased = p.unbiased;
        cfg.adam_eps = p.adam_eps;
        cfg.lr = 0.0;
        let ds = data::embedded(32).unwrap();
        let mut t = Trainer::new(cfg, ds, Device::Cpu, "cpu".into(), None, None).unwrap();
        assert_eq!(t.info().bn_variance, if p.unbiased { "unbiased" } else { "biased" });
        for epoch in 1..=4i32 {
            let (_, snap) = t.run_epoch().unwrap();
            let mt = p.momentum.powi(epoch);
            assert!((snap.age.init_weight - mt).abs() < 1e-15, "{fw:?}");
            for l in &snap.layers {
                let n = l.n as f64;
                let factor = if p.unbiased { n / (n - 1.0) } else { 1.0 };
                for c in 0..l.running_mean.len() {
                    let (bm, bv) = (l.batch_mean[c] as f64, l.batch_var[c] as f64);
                    let want_m = (1.0 - mt) * bm;
                    let want_v = mt + (1.0 - mt) * bv * factor;
                    let (rm, rv) = (l.running_mean[c] as f64, l.running_var[c] as f64);
                    assert!(
                        (rm - want_m).abs() <= 1e-5 * (1.0 + want_m.abs()),
                        "{fw:?} {} c{c} mean",
                        l.name
                    );
                    assert!(
                        (rv - want_v).abs() <= 1e-5 * want_v,
                        "{fw:?} {} c{c} var {rv} vs {want_v}",
                        l.name
                    );
                }
            }
        }
    }
}

/// A checkpoint never holds NaN/Inf: a diverged model is not written, and a good file already there stays.
#[test]
fn a_non_finite_model_is_not_checkpointed() {
    let dir = tempfile::tempdir().unwrap();
    let ck = dir.path().join("ck.safetensors");
    let mut cfg = TrainConfig::new(Preset::Tiny);
    cfg.checkpoint = Some(ck.clone());
    let ds = data::embedded(32).unwrap();
    let mut t = Trainer::new(cfg, ds, Device::Cpu, "cpu".into(), None, None).unwrap();
    t.run_epoch().unwrap();
    t.save_checkpoint().unwrap();
    let good = std::fs::read(&ck).unwrap();
    let (name, var) = t.model().named_params().into_iter().next().unwrap();
    let nan = candle_core::Tensor::full(f32::NAN, var.shape(), &Device::Cpu).unwrap();
    var.set(&nan).unwrap();
    let err = t.save_checkpoint().unwrap_err();
    let msg = format!("{err:#}");
    assert!(err.downcast_ref::<bnscope::error::NotWritten>().is_some(), "{msg}");
    assert!(
        msg.contains("not written") && msg.contains(&name) && msg.contains("left as it was"),
        "{msg}"
    );
    assert_eq!(std::fs::read(&ck).unwrap(), good, "the good checkpoint must stay");
}

/// tiny at 8 px with batch 1 reaches its last layers as 1×1 maps of one image: one value per channel, which
/// PyTorch refuses. The trainer names the layers once.
#[test]
fn one_value_per_channel_is_reported_once_with_the_layers() {
    let mut cfg = TrainConfig::new(Preset::Tiny);
    cfg.batch_size = 1;
    cfg.image_size = 8;
    let ds = data::embedded(8).unwrap();
    let mut t = Trainer::new(cfg, ds, Device::Cpu, "cpu".into(), None, None).unwrap();
    t.run_epoch().unwrap();
    let all = t.take_warnings();
    // Evaluation at batch 1 has the same 1×1 maps: said once, as its own kind.
    let eval: Vec<_> = all
        .iter()
        .filter(|w| w.what == EventKind::OneValueInEvaluation)
        .collect();
    assert_eq!(eval.len(), 1, "{all:?}");
    assert!(eval[0].value.contains("layer3.0.bn2"), "{:?}", eval[0]);
    let w: Vec<_> = all.iter().filter(|w| w.what == EventKind::OneValuePerChannel).collect();
    assert_eq!(w.len(), 1, "{all:?}");
    assert!(w[0].value.contains("layer3.0.bn2"), "{:?}", w[0]);
    assert!(
        w[0].text.contains("Expected more than 1 value per channel"),
        "{:?}",
        w[0]
    );
    t.run_epoch().unwrap();
    assert!(t.take_warnings().is_empty(), "reported once");
    // Batch 3 at 8 px: three values per channel, no warning.
    let mut cfg = TrainConfig::new(Preset::Tiny);
    cfg.image_size = 8;
    let mut t = Trainer::new(cfg, data::embedded(8).unwrap(), Device::Cpu, "cpu".into(), None, None).unwrap();
    t.run_epoch().unwrap();
    assert!(t.take_warnings().is_empty());
}

/// A checkpoint written in the middle of an epoch (a quit between two steps) resumes at that step, with the
/// epoch's order and sums so far: the epoch it completes is the one the uninterrupted run completes.
#[test]
fn a_resume_inside_an_epoch_continues_that_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let ck = dir.path().join("mid.st");
    let make = |resume: Option<bnscope::trainer::Resume>| {
        let mut cfg = TrainConfig::new(Preset::Tiny);
        cfg.batch_size = 2;
        cfg.lr = 0.01;
        cfg.checkpoint = Some(ck.clone());
        Trainer::new(
            cfg,
            data::embedded(32).unwrap(),
            Device::Cpu,
            "cpu".into(),
            None,
            resume,
        )
        .unwrap()
    };
    let mut whole = make(None);
    let expected = run(&mut whole, 4);
    let mut first = make(None);
    run(&mut first, 2);
    assert!(matches!(first.step().unwrap(), bnscope::trainer::StepOutcome::Step));
    first.save_checkpoint().unwrap();
    let (tensors, meta) = bnscope::checkpoint::load(&ck).unwrap();
    assert_eq!(meta.state.as_ref().unwrap().position, 2);
    let mut rest = make(Some(bnscope::trainer::Resume { tensors, meta }));
    let got = run(&mut rest, 2);
    for (a, b) in expected[2..].iter().zip(&got) {
        assert_eq!((a.epoch, a.step, a.t), (b.epoch, b.step, b.t));
        assert_eq!(a.train.acc, b.train.acc);
        assert!(
            (a.train.loss - b.train.loss).abs() <= 1e-5,
            "{} vs {}",
            a.train.loss,
            b.train.loss
        );
        assert!((a.eval_running.loss - b.eval_running.loss).abs() <= 1e-5);
        assert_eq!(a.age, b.age);
    }
}

/// Divergence is detected the same way while single-stepping a paused trainer (`n`): the step that diverges
/// reports it, with where it showed.
#[test]
fn divergence_is_detected_while_single_stepping() {
    let mut cfg = TrainConfig::new(Preset::Tiny);
    cfg.lr = 10.0;
    cfg.start_paused = true;
    let t = Trainer::new(cfg, data::embedded(64).unwrap(), Device::Cpu, "cpu".into(), None, None).unwrap();
    let (link, handle) = t.spawn().unwrap();
    let mut steps = 0;
    let diverged = loop {
        match link
            .events
            .recv_timeout(std::time::Duration::from_secs(60))
            .expect("alive")
        {
            Event::Started(_)
            | Event::Warning { .. }
            | Event::Refreshed(_)
            | Event::Inspected(_)
            | Event::Progress(_) => {}
            Event::BnReady => {
                link.bn.take();
            }
            // Paused at the start, then after every single-step epoch: step again, up to 20 times.
            Event::Applied {
                what: EventKind::Pause, ..
            }
            | Event::Epoch(_)
                if steps < 20 =>
            {
                steps += 1;
                link.commands.send(Command::Step).unwrap();
            }
            Event::Applied { .. } | Event::Epoch(_) => break None,
            Event::Diverged { epoch, what, .. } => break Some((epoch, what)),
            Event::Error(e) => panic!("{e}"),
            Event::Finished { .. } => break None,
        }
    };
    link.commands.send(Command::Quit(EndReason::Quit)).unwrap();
    let _ = handle.join();
    let (epoch, what) = diverged.expect("a paused, single-stepped run with lr 10 diverges and says so");
    assert!(epoch <= 20, "{epoch}");
    assert!(what.contains("loss"), "{what}");
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
