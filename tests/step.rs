//! The graph-free CPU training step (`kernels::step`) against candle's autograd over the same custom ops: loss,
//! logits, every parameter gradient and every running statistic must be bit-identical, on every preset, odd
//! sizes, batch 1. (Own test binary: `tests/kernels.rs` flips the global kernel switch while its tests run.)
use bnscope::kernels;
use bnscope::model::BnMode;
use bnscope::model::{Preset, ResNet};
use bnscope::optim::{Optimizer, OptimizerKind};
use candle_core::{Device, Tensor};
use rand::{rngs::StdRng, Rng, SeedableRng};

fn flat(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

fn images(seed: u64, n: usize, size: usize) -> (Tensor, Tensor) {
    let mut rng = StdRng::seed_from_u64(seed);
    let v: Vec<f32> = (0..n * 3 * size * size)
        .map(|_| rng.random_range(-1.0f32..1.0))
        .collect();
    let x = Tensor::from_vec(v, (n, 3, size, size), &Device::Cpu).unwrap();
    let y = Tensor::from_vec(
        (0..n as u32).map(|i| (i * 7 + 1) % 3).collect::<Vec<_>>(),
        n,
        &Device::Cpu,
    )
    .unwrap();
    (x, y)
}

fn stats(m: &ResNet) -> Vec<Vec<f32>> {
    m.bn_layers()
        .iter()
        .flat_map(|b| [flat(b.running_mean()), flat(b.running_var())])
        .collect()
}

fn same(what: &str, a: &[f32], b: &[f32]) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    let worst = a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
    assert!(
        a.iter().zip(b).all(|(x, y)| x == y || (x.is_nan() && y.is_nan())),
        "{what}: not bit-identical (largest difference {worst:e})"
    );
}

fn case(preset: Preset, n: usize, size: usize) {
    let what = format!("{preset}@{size} batch {n}");
    let (x, y) = images(size as u64, n, size);
    let dev = Device::Cpu;
    let mut a = ResNet::new(preset, 3, 0.9, 1e-5, 1, &dev).unwrap();
    let mut b = ResNet::new(preset, 3, 0.9, 1e-5, 1, &dev).unwrap();
    let out = bnscope::model::step::train_step(&mut a, &x, &y)
        .unwrap()
        .expect("the graph-free step applies on the CPU");
    let logits = b.forward(&x, BnMode::Train).unwrap();
    let loss = kernels::head::cross_entropy(&logits, &y).unwrap();
    let grads = loss.backward().unwrap();
    same(
        &format!("{what} loss"),
        &[out.loss],
        &[loss.to_scalar::<f32>().unwrap()],
    );
    same(&format!("{what} logits"), &flat(&out.logits), &flat(&logits));
    for ((name, va), (_, vb)) in a.named_params().into_iter().zip(b.named_params()) {
        let ga = out
            .grads
            .get(va.as_tensor())
            .unwrap_or_else(|| panic!("{what}: no gradient for {name}"));
        let gb = grads
            .get(vb.as_tensor())
            .unwrap_or_else(|| panic!("{what}: autograd has none for {name}"));
        assert_eq!(ga.dims(), gb.dims(), "{what} {name}");
        same(&format!("{what} d{name}"), &flat(ga), &flat(gb));
    }
    for (i, (sa, sb)) in stats(&a).iter().zip(&stats(&b)).enumerate() {
        same(&format!("{what} running stat {i}"), sa, sb);
    }
    assert_eq!(a.bn_t(), b.bn_t());
    // Evaluation after the step: the graph-free pass against the candle graph, both modes, statistics untouched.
    for mode in [BnMode::EvalBatch, BnMode::EvalRunning] {
        let own = bnscope::model::step::eval_forward(&a, &x, mode)
            .unwrap()
            .expect("applies");
        let reference = b.forward(&x, mode).unwrap();
        same(&format!("{what} {mode:?} logits"), &flat(&own), &flat(&reference));
    }
    for (i, (sa, sb)) in stats(&a).iter().zip(&stats(&b)).enumerate() {
        same(&format!("{what} running stat {i} after evaluation"), sa, sb);
    }
    assert!(bnscope::model::step::eval_forward(&a, &x, BnMode::Train)
        .unwrap()
        .is_none());
}

#[test]
fn gradients_match_autograd_on_every_preset() {
    case(Preset::Tiny, 3, 24);
    case(Preset::Tiny, 1, 17);
    case(Preset::Tiny, 4, 33);
    case(Preset::Resnet18, 3, 32);
    case(Preset::Resnet18, 1, 45);
    case(Preset::Resnet50, 2, 32);
}

/// `Optimizer::train_step` (graph-free here) and the autograd path give the same weights after a few Adam and
/// SGD steps.
#[test]
fn training_steps_match_autograd() {
    for kind in [OptimizerKind::Adam, OptimizerKind::Sgd] {
        let (x, y) = images(9, 3, 20);
        let dev = Device::Cpu;
        let mut a = ResNet::new(Preset::Tiny, 3, 0.99, 1e-5, 4, &dev).unwrap();
        let mut b = ResNet::new(Preset::Tiny, 3, 0.99, 1e-5, 4, &dev).unwrap();
        let mut oa = Optimizer::new(kind, a.params(), 1e-2).unwrap();
        let mut ob = Optimizer::new(kind, b.params(), 1e-2).unwrap();
        for step in 0..4 {
            let (la, _) = oa.train_step(&mut a, &x, &y).unwrap();
            let logits = b.forward(&x, BnMode::Train).unwrap();
            let loss = kernels::head::cross_entropy(&logits, &y).unwrap();
            ob.backward_step(&loss).unwrap();
            same(
                &format!("{kind:?} step {step} loss"),
                &[la],
                &[loss.to_scalar::<f32>().unwrap()],
            );
        }
        for ((name, va), (_, vb)) in a.named_params().into_iter().zip(b.named_params()) {
            same(
                &format!("{kind:?} {name}"),
                &flat(va.as_tensor()),
                &flat(vb.as_tensor()),
            );
        }
    }
}

/// Off the fast path's preconditions it declines and the caller takes candle's graph.
#[test]
fn declines_what_it_does_not_handle() {
    let dev = Device::Cpu;
    let mut m = ResNet::new(Preset::Tiny, 3, 0.99, 1e-5, 0, &dev).unwrap();
    let x = Tensor::zeros((2, 3, 16, 16), candle_core::DType::F64, &dev).unwrap();
    let y = Tensor::new(&[0u32, 1], &dev).unwrap();
    assert!(bnscope::model::step::train_step(&mut m, &x, &y).unwrap().is_none());
    // A label out of range is an error, not a panic.
    let x = Tensor::zeros((2, 3, 16, 16), candle_core::DType::F32, &dev).unwrap();
    let bad = Tensor::new(&[0u32, 7], &dev).unwrap();
    assert!(bnscope::model::step::train_step(&mut m, &x, &bad).is_err());
}

/// A panic inside `in_pool` (a kernel bug, `BNSCOPE_FAULT=panic@N`) reaches the caller instead of leaving the pool
/// spinning: the kept-awake second thread must stop when the step unwinds.
#[test]
fn a_panic_in_the_pool_reaches_the_caller() {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let r = std::panic::catch_unwind(|| bnscope::runtime::in_pool(&Device::Cpu, || -> u32 { panic!("boom") }));
        let ok = bnscope::runtime::in_pool(&Device::Cpu, || 7u32);
        let _ = tx.send((r.is_err(), ok));
    });
    let (caught, after) = rx
        .recv_timeout(std::time::Duration::from_secs(20))
        .expect("in_pool returned (no hang)");
    assert!(caught, "the panic reached the caller");
    assert_eq!(after, 7, "the pool still works afterwards");
}
