//! Model topology, parameter counts and the max-pool backward.
use bnscope::model::BnMode;
use bnscope::model::MaxPool;
use bnscope::model::{Preset, ResNet};
use candle_core::{Device, Tensor, Var};

fn model(p: Preset) -> ResNet {
    ResNet::new(p, 3, 0.99, 1e-5, 0, &Device::Cpu).unwrap()
}

#[test]
fn tiny_topology() {
    let mut m = model(Preset::Tiny);
    assert_eq!(m.bn_layers().len(), 9);
    let names: Vec<_> = m.bn_layers().iter().map(|b| b.name().to_string()).collect();
    assert_eq!(names[0], "bn1");
    assert!(names.contains(&"layer2.0.downsample.1".to_string()));
    // 3·16·9 + 2·16 + block1 (2·(16·16·9 + 32)) + block2 (16·32·9 + 32·32·9 + 16·32 + 3·64) + block3 (…) + fc
    let x = Tensor::zeros((2, 3, 64, 64), candle_core::DType::F32, &Device::Cpu).unwrap();
    assert_eq!(m.forward(&x, BnMode::Train).unwrap().dims(), &[2, 3]);
    assert_eq!(m.param_count(), 77_587);
}

#[test]
fn resnet18_matches_torchvision() {
    let mut m = model(Preset::Resnet18);
    assert_eq!(m.param_count(), 11_178_051);
    assert_eq!(m.bn_layers().len(), 20);
    let x = Tensor::zeros((1, 3, 64, 64), candle_core::DType::F32, &Device::Cpu).unwrap();
    assert_eq!(m.forward(&x, BnMode::EvalRunning).unwrap().dims(), &[1, 3]);
}

#[test]
fn resnet50_matches_torchvision() {
    let mut m = model(Preset::Resnet50);
    assert_eq!(m.param_count(), 23_514_179);
    assert_eq!(m.bn_layers().len(), 53);
    assert_eq!(m.bn_layers().iter().map(|b| b.channels()).sum::<usize>(), 26_560);
    let x = Tensor::zeros((1, 3, 32, 32), candle_core::DType::F32, &Device::Cpu).unwrap();
    assert_eq!(m.forward(&x, BnMode::EvalRunning).unwrap().dims(), &[1, 3]);
    // torchvision's FLOP count for resnet50 at 224 is 4.1 GMAC forward.
    let gmac = m.forward_flops_per_image(224, 224) / 2e9;
    assert!((gmac - 4.1).abs() < 0.05, "{gmac}");
}

#[test]
fn same_seed_same_weights() {
    let a = model(Preset::Tiny).params()[0]
        .as_tensor()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    let b = model(Preset::Tiny).params()[0]
        .as_tensor()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    assert_eq!(a, b);
    // Kaiming normal, fan_out: std √(2/(16·9)) ≈ 0.118 for the tiny stem.
    let std = (a.iter().map(|v| (*v as f64).powi(2)).sum::<f64>() / a.len() as f64).sqrt();
    assert!((std - (2.0f64 / 144.0).sqrt()).abs() < 0.02, "{std}");
}

fn rand_input(shape: (usize, usize, usize, usize), seed: u64) -> Vec<f32> {
    let n = shape.0 * shape.1 * shape.2 * shape.3;
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 4.0 - 2.0
        })
        .collect()
}

/// Finite differences of Σ w·pool(x) against the op's backward (the CPU kernel, or with `composite` the
/// device-independent version that CUDA uses).
fn grad_check(pool: MaxPool, shape: (usize, usize, usize, usize), seed: u64) {
    grad_check_with(pool, shape, seed, false);
    grad_check_with(pool, shape, seed, true);
}

fn grad_check_with(pool: MaxPool, shape: (usize, usize, usize, usize), seed: u64, composite: bool) {
    let fwd = |t: &Tensor| {
        if composite {
            pool.forward_composite(t)
        } else {
            pool.forward(t)
        }
    };
    let dev = Device::Cpu;
    // Distinct values at least 0.05 apart (a shuffled ramp), so a ±0.01 nudge never changes which one is the max.
    let n = shape.0 * shape.1 * shape.2 * shape.3;
    let keys = rand_input(shape, seed);
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| keys[a].total_cmp(&keys[b]));
    let mut xv = vec![0f32; n];
    for (rank, &i) in order.iter().enumerate() {
        xv[i] = rank as f32 * 0.05 - n as f32 * 0.025;
    }
    let x = Var::from_vec(xv.clone(), shape, &dev).unwrap();
    let y = fwd(x.as_tensor()).unwrap();
    let wv = rand_input(y.dims4().unwrap(), seed + 1);
    let w = Tensor::from_vec(wv, y.dims4().unwrap(), &dev).unwrap();
    let loss = (y * &w).unwrap().sum_all().unwrap();
    let grads = loss.backward().unwrap();
    let g = grads.get(&x).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let f = |v: &[f32]| -> f64 {
        let t = Tensor::from_vec(v.to_vec(), shape, &dev).unwrap();
        (fwd(&t).unwrap() * &w)
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap() as f64
    };
    let h = 1e-2f32;
    for i in 0..xv.len() {
        let mut p = xv.clone();
        p[i] += h;
        let mut m = xv.clone();
        m[i] -= h;
        let fd = (f(&p) - f(&m)) / (2.0 * h as f64);
        assert!(
            (fd - g[i] as f64).abs() < 1e-3,
            "{pool:?} composite={composite} {shape:?} element {i}: fd {fd} vs backward {}",
            g[i]
        );
    }
}

#[test]
fn maxpool_3x3_s2_p1_backward_matches_finite_differences() {
    for (shape, seed) in [((2, 3, 7, 7), 1), ((1, 2, 8, 6), 2), ((3, 1, 5, 9), 3)] {
        grad_check(MaxPool::new(3, 2, 1), shape, seed);
    }
    grad_check(MaxPool::new(2, 2, 0), (2, 2, 6, 6), 4);
}

#[test]
fn maxpool_kernel_matches_the_composite_and_candle() {
    let dev = Device::Cpu;
    for (shape, seed) in [((2, 3, 112, 112), 1u64), ((1, 4, 7, 7), 2), ((2, 2, 9, 10), 3)] {
        let x = Tensor::from_vec(rand_input(shape, seed), shape, &dev).unwrap();
        let p = MaxPool::new(3, 2, 1);
        let a = p.forward(&x).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let b = p
            .forward_composite(&x)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert_eq!(a, b, "{shape:?}");
    }
    let x = Tensor::from_vec(rand_input((2, 3, 8, 8), 9), (2, 3, 8, 8), &dev).unwrap();
    let a = MaxPool::new(2, 2, 0)
        .forward(&x)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    let b = x
        .max_pool2d(2)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    assert_eq!(a, b);
}

/// Pins the candle 0.11.1 bug that `MaxPool::forward_composite` works around: `max_pool2d`'s backward passes a
/// quarter of the gradient to a 2×2 window's single maximum. If this fails after a candle upgrade, the bug is fixed
/// upstream and the workaround can go.
#[test]
fn candle_max_pool2d_backward_is_scaled_by_a_quarter() {
    let dev = Device::Cpu;
    let x = Var::from_vec(vec![1f32, 2., 3., 4.], (1, 1, 2, 2), &dev).unwrap();
    let g = x
        .as_tensor()
        .max_pool2d(2)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    let candle = g.get(&x).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(candle, vec![0., 0., 0., 0.25]);
    let y = MaxPool::new(2, 2, 0).forward_composite(x.as_tensor()).unwrap();
    let g = y.sum_all().unwrap().backward().unwrap();
    let ours = g.get(&x).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(ours, vec![0., 0., 0., 1.]);
}
