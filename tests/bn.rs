//! BatchNorm numerics against closed forms.
use bnscope::cli::Cli;
use bnscope::model::{BatchNorm2d, BnMode};
use candle_core::{Device, Tensor};
use clap::Parser;

fn input(seed: u64) -> Tensor {
    // A fixed, non-trivial input: 2 images × 3 channels × 4×5, channel means and spreads differ.
    let mut v = Vec::new();
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    for n in 0..2 {
        for c in 0..3 {
            for i in 0..20 {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                let r = ((s >> 33) as f64 / (1u64 << 31) as f64) - 0.5;
                v.push((c as f64 * 1.5 - 1.0 + (c + 1) as f64 * r + 0.1 * n as f64 + 0.01 * i as f64) as f32);
            }
        }
    }
    Tensor::from_vec(v, (2, 3, 4, 5), &Device::Cpu).unwrap()
}

/// Per-channel mean, biased and unbiased variance, in f64.
fn stats(x: &Tensor) -> Vec<(f64, f64, f64)> {
    let (n, c, h, w) = x.dims4().unwrap();
    let v = x.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    (0..c)
        .map(|ch| {
            let mut vals = vec![];
            for i in 0..n {
                for j in 0..h * w {
                    vals.push(v[(i * c + ch) * h * w + j] as f64);
                }
            }
            let m = vals.iter().sum::<f64>() / vals.len() as f64;
            let ss = vals.iter().map(|x| (x - m).powi(2)).sum::<f64>();
            (m, ss / vals.len() as f64, ss / (vals.len() - 1) as f64)
        })
        .collect()
}

fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs().max(1e-12)
}

#[test]
fn running_stats_follow_the_closed_form() {
    let x = input(1);
    let st = stats(&x);
    for &m in &[0.99, 0.9, 0.5, 0.0] {
        let mut bn = BatchNorm2d::new("bn", 3, m, 1e-5, &Device::Cpu).unwrap();
        for t in 1..=25u32 {
            bn.forward(&x, BnMode::Train).unwrap();
            let rm = bn.running_mean().to_vec1::<f32>().unwrap();
            let rv = bn.running_var().to_vec1::<f32>().unwrap();
            let mt = m.powi(t as i32);
            for (c, &(mu, _, var_unb)) in st.iter().enumerate() {
                let want_m = (1.0 - mt) * mu;
                let want_v = mt + (1.0 - mt) * var_unb;
                assert!(
                    rel(rm[c] as f64, want_m) < 1e-5,
                    "m={m} t={t} c={c}: mean {} vs {want_m}",
                    rm[c]
                );
                assert!(
                    rel(rv[c] as f64, want_v) < 1e-5,
                    "m={m} t={t} c={c}: var {} vs {want_v}",
                    rv[c]
                );
            }
            assert_eq!(bn.t(), t as u64);
        }
    }
}

#[test]
fn eval_batch_leaves_stats_bit_identical_and_normalises_with_batch_stats() {
    let x = input(2);
    let mut bn = BatchNorm2d::new("bn", 3, 0.9, 1e-5, &Device::Cpu).unwrap();
    bn.forward(&input(3), BnMode::Train).unwrap();
    let before = (
        bn.running_mean().to_vec1::<f32>().unwrap(),
        bn.running_var().to_vec1::<f32>().unwrap(),
        bn.t(),
    );
    let y = bn.forward(&x, BnMode::EvalBatch).unwrap();
    bn.forward(&x, BnMode::EvalRunning).unwrap();
    let after = (
        bn.running_mean().to_vec1::<f32>().unwrap(),
        bn.running_var().to_vec1::<f32>().unwrap(),
        bn.t(),
    );
    assert_eq!(before, after);
    // Output: (x − μ_B)/√(σ²_B,biased + ε) with γ = 1, β = 0.
    let st = stats(&x);
    let (n, c, h, w) = x.dims4().unwrap();
    let xv = x.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let yv = y.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    for i in 0..n * c * h * w {
        let ch = (i / (h * w)) % c;
        let want = (xv[i] as f64 - st[ch].0) / (st[ch].1 + 1e-5).sqrt();
        assert!((yv[i] as f64 - want).abs() < 1e-5, "{i}: {} vs {want}", yv[i]);
    }
}

#[test]
fn eval_running_matches_the_formula() {
    let x = input(4);
    let mut bn = BatchNorm2d::new("bn", 3, 0.8, 1e-3, &Device::Cpu).unwrap();
    for s in 0..3 {
        bn.forward(&input(10 + s), BnMode::Train).unwrap();
    }
    // Non-trivial affine parameters.
    bn.weight
        .set(&Tensor::new(&[0.5f32, -1.25, 2.0], &Device::Cpu).unwrap())
        .unwrap();
    bn.bias
        .set(&Tensor::new(&[0.1f32, 0.0, -0.3], &Device::Cpu).unwrap())
        .unwrap();
    let rm = bn.running_mean().to_vec1::<f32>().unwrap();
    let rv = bn.running_var().to_vec1::<f32>().unwrap();
    let y = bn.forward(&x, BnMode::EvalRunning).unwrap();
    let (g, b) = ([0.5f64, -1.25, 2.0], [0.1f64, 0.0, -0.3]);
    let (_, c, h, w) = x.dims4().unwrap();
    let xv = x.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let yv = y.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    for i in 0..xv.len() {
        let ch = (i / (h * w)) % c;
        let want = (xv[i] as f64 - rm[ch] as f64) / (rv[ch] as f64 + 1e-3).sqrt() * g[ch] + b[ch];
        assert!(
            (yv[i] as f64 - want).abs() < 1e-5 * want.abs().max(1.0),
            "{i}: {} vs {want}",
            yv[i]
        );
    }
}

#[test]
fn cumulative_mode_is_the_plain_average() {
    let mut bn = BatchNorm2d::new("bn", 3, 0.99, 1e-5, &Device::Cpu).unwrap();
    bn.set_cumulative(true);
    let xs: Vec<Tensor> = (0..4).map(|s| input(20 + s)).collect();
    for x in &xs {
        bn.forward(x, BnMode::Train).unwrap();
    }
    let rm = bn.running_mean().to_vec1::<f32>().unwrap();
    let rv = bn.running_var().to_vec1::<f32>().unwrap();
    let all: Vec<_> = xs.iter().map(stats).collect();
    for c in 0..3 {
        let m = all.iter().map(|s| s[c].0).sum::<f64>() / 4.0;
        let v = all.iter().map(|s| s[c].2).sum::<f64>() / 4.0;
        assert!(rel(rm[c] as f64, m) < 1e-5, "mean {c}: {} vs {m}", rm[c]);
        assert!(rel(rv[c] as f64, v) < 1e-5, "var {c}: {} vs {v}", rv[c]);
    }
}

#[test]
fn reset_returns_to_zero_one() {
    let mut bn = BatchNorm2d::new("bn", 3, 0.5, 1e-5, &Device::Cpu).unwrap();
    bn.forward(&input(5), BnMode::Train).unwrap();
    bn.reset_running_stats().unwrap();
    assert_eq!(bn.running_mean().to_vec1::<f32>().unwrap(), vec![0.0; 3]);
    assert_eq!(bn.running_var().to_vec1::<f32>().unwrap(), vec![1.0; 3]);
    assert_eq!(bn.t(), 0);
}

#[test]
fn snapshot_carries_the_batch_statistics_that_normalised_it() {
    let x = input(6);
    let mut bn = BatchNorm2d::new("bn", 3, 0.99, 1e-5, &Device::Cpu).unwrap();
    bn.forward(&x, BnMode::Train).unwrap();
    let s = bn.snapshot().unwrap();
    let st = stats(&x);
    // The biased variance (what normalised the batch), whatever the running variance moves toward; n = N·H·W.
    assert_eq!(s.n, 2 * 4 * 5);
    for (c, &(mean, var_biased, _)) in st.iter().enumerate() {
        assert!(rel(s.batch_mean[c] as f64, mean) < 1e-5);
        assert!(rel(s.batch_var[c] as f64, var_biased) < 1e-5);
    }
    // After one update with m = 0.99 the running mean is 1 % of the way: gap = ‖0.01μ − μ‖/‖μ‖ = 0.99.
    assert!((s.mean_gap - 0.99).abs() < 1e-4, "{}", s.mean_gap);
}

#[test]
fn momentum_conventions_are_equivalent() {
    let keras = Cli::try_parse_from(["bnscope", "--momentum", "0.99"]).unwrap();
    let torch = Cli::try_parse_from(["bnscope", "--momentum", "0.01", "--momentum-convention", "torch"]).unwrap();
    assert_eq!(keras.run.keras_momentum(), torch.run.keras_momentum());
    assert_eq!(keras.run.keras_momentum(), Some(0.99));
    assert_eq!(bnscope::protocol::keras_to_torch(0.99), 1.0 - 0.99);
}

/// Keras 3 updates the moving variance with the biased batch variance: after t updates at m the running variance is
/// `mᵗ + (1 − mᵗ)·σ²_biased` (PyTorch's `σ²_unbiased` is `running_stats_follow_the_closed_form`).
#[test]
fn biased_variance_follows_the_keras_closed_form() {
    let x = input(7);
    let st = stats(&x);
    for &m in &[0.99, 0.9, 0.0] {
        let mut bn = BatchNorm2d::new("bn", 3, m, 1e-3, &Device::Cpu).unwrap();
        bn.set_unbiased(false);
        for t in 1..=10 {
            bn.forward(&x, BnMode::Train).unwrap();
            let rv = bn.running_var().to_vec1::<f32>().unwrap();
            let mt = m.powi(t);
            for (c, &(_, var_b, _)) in st.iter().enumerate() {
                let want = mt + (1.0 - mt) * var_b;
                assert!(rel(rv[c] as f64, want) < 1e-5, "m {m} t {t} c {c}: {} vs {want}", rv[c]);
            }
        }
    }
}

/// The start's weight `w = ∏ mᵢ` under any sequence of momenta, resets, cumulative updates and recalibration.
#[test]
fn start_weight_is_the_product_of_the_momenta() {
    let x = input(8);
    let mut bn = BatchNorm2d::new("bn", 3, 0.99, 1e-5, &Device::Cpu).unwrap();
    assert_eq!(bn.init_weight(), 1.0);
    let mut w = 1.0f64;
    for (m, steps) in [(0.99, 95), (0.9, 80), (0.5, 3)] {
        bn.set_momentum(m);
        for _ in 0..steps {
            bn.forward(&x, BnMode::Train).unwrap();
            w *= m;
        }
    }
    assert_eq!(bn.t(), 178);
    assert!(
        (bn.init_weight() - w).abs() <= 1e-12 * w.max(1e-300),
        "{} vs {w}",
        bn.init_weight()
    );
    assert_eq!(bn.constant_momentum(), None);
    // The running mean says the same: mean = (1 − w)·μ for a constant batch.
    let rm = bn.running_mean().to_vec1::<f32>().unwrap();
    for (c, &(mu, _, _)) in stats(&x).iter().enumerate() {
        assert!(rel(rm[c] as f64, (1.0 - w) * mu) < 1e-4, "c {c}");
    }
    bn.reset_running_stats().unwrap();
    assert_eq!((bn.init_weight(), bn.constant_momentum()), (1.0, None));
    bn.set_momentum(0.99);
    for _ in 0..5 {
        bn.forward(&x, BnMode::Train).unwrap();
    }
    assert!((bn.init_weight() - 0.99f64.powi(5)).abs() < 1e-15);
    assert_eq!(bn.constant_momentum(), Some(0.99));
    // Cumulative averaging from a reset: the first update has m = 0, nothing of the start is left.
    bn.reset_running_stats().unwrap();
    bn.set_cumulative(true);
    bn.forward(&x, BnMode::Train).unwrap();
    bn.forward(&x, BnMode::Train).unwrap();
    assert_eq!(bn.init_weight(), 0.0);
}

/// A 1×1 map of one image: one value per channel, which the layer reports as n = 1.
#[test]
fn one_value_per_channel_is_visible() {
    let x = Tensor::new(&[[[[0.5f32]], [[1.5]], [[-2.0]]]], &Device::Cpu).unwrap();
    let mut bn = BatchNorm2d::new("bn", 3, 0.9, 1e-5, &Device::Cpu).unwrap();
    bn.forward(&x, BnMode::Train).unwrap();
    assert_eq!(bn.n(), 1);
    assert_eq!(bn.snapshot().unwrap().n, 1);
    // Its batch variance is 0, so the running variance is pulled toward 0: 0.9·1 + 0.1·0.
    let rv = bn.running_var().to_vec1::<f32>().unwrap();
    assert!(rv.iter().all(|&v| (v - 0.9).abs() < 1e-6), "{rv:?}");
}

#[test]
fn group_norm_normalises_each_image_and_group_in_every_mode() {
    use bnscope::model::{BatchNorm2d, BnMode};
    use candle_core::{Device, Tensor};
    let dev = Device::Cpu;
    let mut bn = BatchNorm2d::new("gn", 8, 0.99, 1e-5, &dev).unwrap();
    bn.set_groups(Some(2)).unwrap();
    let v: Vec<f32> = (0..2 * 8 * 3 * 3)
        .map(|i| ((i * 37 % 101) as f32) * 0.1 - 3.0)
        .collect();
    let x = Tensor::from_vec(v, (2, 8, 3, 3), &dev).unwrap();
    let mut outs = Vec::new();
    for mode in [BnMode::Train, BnMode::EvalBatch, BnMode::EvalRunning] {
        let y = bn
            .forward(&x, mode)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        // Each (image, group) block of 4 channels × 9 pixels has mean 0 and biased variance 1 (up to ε).
        for block in y.chunks(36) {
            let m = block.iter().sum::<f32>() / 36.0;
            let var = block.iter().map(|v| (v - m) * (v - m)).sum::<f32>() / 36.0;
            assert!(m.abs() < 1e-5 && (var - 1.0).abs() < 1e-3, "mean {m} var {var}");
        }
        outs.push(y);
    }
    assert_eq!(outs[0], outs[1]);
    assert_eq!(outs[0], outs[2]);
    assert_eq!(bn.t(), 0, "GroupNorm has no running statistics to update");
    assert!(bn.set_groups(Some(3)).is_err(), "3 groups do not divide 8 channels");
}
