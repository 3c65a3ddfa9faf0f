//! bnscope's own CPU kernels against candle's reference ops: forward values and gradients on random shapes,
//! with a maximum error of 1e-4 relative to the reference's largest magnitude.
use bnscope::kernels;
use bnscope::model::{BatchNorm2d, BnMode};
use bnscope::model::{Preset, ResNet};
use bnscope::optim::{Optimizer, OptimizerKind};
use candle_core::{Device, Result, Tensor, Var};
use rand::{rngs::StdRng, Rng, SeedableRng};

const TOL: f64 = 1e-4;

fn rand_tensor(rng: &mut StdRng, shape: &[usize], offset: f32) -> Tensor {
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|_| rng.random_range(-1.0f32..1.0) + offset).collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

fn flat(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

/// max |a − b| / max |b|.
fn rel_err(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.dims(), b.dims());
    let (a, b) = (flat(a), flat(b));
    let scale = b.iter().fold(0f64, |m, v| m.max(v.abs() as f64)).max(1e-30);
    let diff = a.iter().zip(&b).fold(0f64, |m, (x, y)| m.max((x - y).abs() as f64));
    diff / scale
}

fn check(what: &str, a: &Tensor, b: &Tensor) {
    let e = rel_err(a, b);
    assert!(e <= TOL, "{what}: relative max error {e:.2e}");
}

/// Forward and both gradients of one convolution, own op vs `Tensor::conv2d` with candle's autograd.
#[allow(clippy::too_many_arguments)]
fn conv_case(rng: &mut StdRng, n: usize, cin: usize, cout: usize, hw: (usize, usize), k: usize, s: usize, p: usize) {
    let what = format!("conv n{n} {cin}->{cout} {}x{} k{k} s{s} p{p}", hw.0, hw.1);
    let x = Var::from_tensor(&rand_tensor(rng, &[n, cin, hw.0, hw.1], 0.0)).unwrap();
    let w = Var::from_tensor(&rand_tensor(rng, &[cout, cin, k, k], 0.0)).unwrap();
    let own = kernels::conv::conv2d(&x, &w, s, p).unwrap();
    let reference = x.conv2d(&w, p, s, 1, 1).unwrap();
    check(&format!("{what} forward"), &own, &reference);
    // A random linear functional of the output, so that every output element gets a distinct gradient.
    let r = rand_tensor(rng, reference.dims(), 0.0);
    let g_own = (own * &r).unwrap().sum_all().unwrap().backward().unwrap();
    let (dx_own, dw_own) = (g_own.get(&x).unwrap(), g_own.get(&w).unwrap());
    match (reference * &r).unwrap().sum_all().unwrap().backward() {
        Ok(g_ref) => {
            check(&format!("{what} dx"), dx_own, g_ref.get(&x).unwrap());
            check(&format!("{what} dw"), dw_own, g_ref.get(&w).unwrap());
        }
        // candle 0.11.1's conv2d backward fails on some strided shapes (its conv_transpose2d sizes the input
        // gradient one column short); check those against direct loops instead.
        Err(_) => {
            let (dx, dw) = direct_conv_grads(&x, &w, &r, s, p);
            check(&format!("{what} dx (direct)"), dx_own, &dx);
            check(&format!("{what} dw (direct)"), dw_own, &dw);
        }
    }
}

/// Gradients of `Σ conv(x, w)·r` by direct loops in f64.
fn direct_conv_grads(x: &Tensor, w: &Tensor, r: &Tensor, s: usize, p: usize) -> (Tensor, Tensor) {
    let (n, cin, h, wd) = x.dims4().unwrap();
    let (cout, _, k, _) = w.dims4().unwrap();
    let (_, _, oh, ow) = r.dims4().unwrap();
    let (xv, wv, rv) = (flat(x), flat(w), flat(r));
    let mut dx = vec![0f64; xv.len()];
    let mut dw = vec![0f64; wv.len()];
    for b in 0..n {
        for co in 0..cout {
            for oy in 0..oh {
                for ox in 0..ow {
                    let g = rv[((b * cout + co) * oh + oy) * ow + ox] as f64;
                    for ci in 0..cin {
                        for ky in 0..k {
                            for kx in 0..k {
                                let (iy, ix) =
                                    ((oy * s + ky) as isize - p as isize, (ox * s + kx) as isize - p as isize);
                                if iy < 0 || ix < 0 || iy >= h as isize || ix >= wd as isize {
                                    continue;
                                }
                                let xi = ((b * cin + ci) * h + iy as usize) * wd + ix as usize;
                                let wi = ((co * cin + ci) * k + ky) * k + kx;
                                dx[xi] += wv[wi] as f64 * g;
                                dw[wi] += xv[xi] as f64 * g;
                            }
                        }
                    }
                }
            }
        }
    }
    let to = |v: Vec<f64>, t: &Tensor| {
        Tensor::from_vec(
            v.into_iter().map(|a| a as f32).collect::<Vec<_>>(),
            t.dims(),
            &Device::Cpu,
        )
        .unwrap()
    };
    (to(dx, x), to(dw, w))
}

#[test]
fn conv_every_kernel_stride_padding_and_batch() {
    let mut rng = StdRng::seed_from_u64(1);
    for k in [1, 3, 7] {
        for s in [1, 2] {
            for p in [0, 1, 3] {
                for n in [1, 7] {
                    // Odd sides. Batch 1 takes the per-image gemm path, batch 7 the batched-columns one.
                    let hw = if n == 1 { (9, 7) } else { (17, 17) };
                    conv_case(&mut rng, n, 3, 5, hw, k, s, p);
                    conv_case(&mut rng, n, 4, 6, (hw.1, hw.0), k, s, p);
                }
            }
        }
    }
}

#[test]
fn conv_random_shapes() {
    let mut rng = StdRng::seed_from_u64(2);
    for _ in 0..100 {
        let k: usize = [1, 3, 7][rng.random_range(0..3)];
        let s = rng.random_range(1..=2);
        let p: usize = [0, 1, 3][rng.random_range(0..3)];
        let n = [1, 2, 3, 7][rng.random_range(0..4)];
        let h = rng.random_range(k.saturating_sub(2 * p).max(1)..24);
        let w = rng.random_range(k.saturating_sub(2 * p).max(1)..24);
        let cin = rng.random_range(1..10);
        let cout = rng.random_range(1..12);
        conv_case(&mut rng, n, cin, cout, (h, w), k, s, p);
    }
}

#[test]
fn conv_resnet_shapes() {
    // The shapes ResNet meets at batch 3: a stem, 1×1 stride-2 downsampling, 3×3 at 7×7, 1×1 at 14×14 and 28×28.
    let mut rng = StdRng::seed_from_u64(3);
    conv_case(&mut rng, 3, 3, 16, (32, 32), 7, 2, 3);
    conv_case(&mut rng, 3, 16, 32, (14, 14), 1, 2, 0);
    conv_case(&mut rng, 3, 32, 32, (7, 7), 3, 1, 1);
    conv_case(&mut rng, 3, 32, 64, (14, 14), 1, 1, 0);
    conv_case(&mut rng, 3, 32, 16, (28, 28), 1, 1, 0);
    conv_case(&mut rng, 3, 16, 16, (16, 16), 3, 1, 1);
    // Big enough per image for the per-image path with several images (weight gradient accumulated over images).
    let g = kernels::im2col::Geom::new(2, 16, 48, 48, 3, 3, 1, 1);
    assert!(kernels::conv::per_image(&g, 64));
    conv_case(&mut rng, 2, 16, 64, (48, 48), 3, 1, 1);
    conv_case(&mut rng, 2, 256, 64, (47, 47), 1, 1, 0);
    conv_case(&mut rng, 2, 16, 64, (97, 97), 3, 2, 1);
    // Batched columns with a weight-gradient depth long enough to be cut in two (`kernels::sgemm_abt`), and an
    // input gradient wide enough to be split by columns across threads (`kernels::sgemm`).
    let g = kernels::im2col::Geom::new(3, 16, 32, 32, 3, 3, 1, 1);
    assert!(!kernels::conv::per_image(&g, 32));
    conv_case(&mut rng, 3, 16, 16, (32, 32), 3, 1, 1);
    conv_case(&mut rng, 3, 16, 32, (32, 31), 3, 1, 1);
}

/// `kernels::conv::backward_collecting` returns exactly what `loss.backward()` does: for variable weights (one
/// used by two convolutions, whose gradients it must sum), a weight computed from a variable (left to candle), the
/// input, and a gradient that flows through a held-back weight's sibling ops.
#[test]
fn backward_collecting_matches_candle_backward() {
    let mut rng = StdRng::seed_from_u64(17);
    let x = Var::from_tensor(&rand_tensor(&mut rng, &[2, 3, 9, 9], 0.0)).unwrap();
    let w1 = Var::from_tensor(&rand_tensor(&mut rng, &[4, 3, 3, 3], 0.0)).unwrap();
    let w2 = Var::from_tensor(&rand_tensor(&mut rng, &[4, 4, 3, 3], 0.0)).unwrap();
    let w3 = Var::from_tensor(&rand_tensor(&mut rng, &[4, 4, 1, 1], 0.0)).unwrap();
    let loss = || {
        let y = kernels::conv::conv2d(&x, &w1, 1, 1).unwrap();
        let y = kernels::conv::conv2d(&y, &w2, 2, 1).unwrap();
        let y = kernels::conv::conv2d(&y, &w2, 1, 1).unwrap();
        let w3d = (w3.as_tensor() * 0.5).unwrap();
        let y = kernels::conv::conv2d(&y, &w3d, 1, 0).unwrap();
        (y.sqr().unwrap().sum_all().unwrap() + w1.as_tensor().sum_all().unwrap()).unwrap()
    };
    let reference = loss().backward().unwrap();
    let collected = kernels::conv::backward_collecting(&loss()).unwrap();
    for (name, t) in [
        ("x", x.as_tensor()),
        ("w1", w1.as_tensor()),
        ("w2", w2.as_tensor()),
        ("w3", w3.as_tensor()),
    ] {
        let (a, b) = (flat(collected.get(t).unwrap()), flat(reference.get(t).unwrap()));
        assert_eq!(a, b, "{name}");
    }
    // Outside `backward_collecting` nothing is held back.
    let again = loss().backward().unwrap();
    assert_eq!(
        flat(again.get(w2.as_tensor()).unwrap()),
        flat(reference.get(w2.as_tensor()).unwrap())
    );
}

/// The composite train-mode formula of `src/bn.rs`: batch mean, biased variance.
fn bn_reference(x: &Tensor, gamma: &Tensor, beta: &Tensor, eps: f64) -> Result<(Tensor, Tensor, Tensor)> {
    let (n, c, h, w) = x.dims4()?;
    let count = (n * h * w) as f64;
    let mean = (x.sum_keepdim((0, 2, 3))? / count)?;
    let centered = x.broadcast_sub(&mean)?;
    let var = (centered.sqr()?.sum_keepdim((0, 2, 3))? / count)?;
    let y = centered
        .broadcast_div(&(&var + eps)?.sqrt()?)?
        .broadcast_mul(&gamma.reshape((1, c, 1, 1))?)?
        .broadcast_add(&beta.reshape((1, c, 1, 1))?)?;
    Ok((y, mean.flatten_all()?, var.flatten_all()?))
}

fn bn_case(rng: &mut StdRng, shape: [usize; 4], offset: f32, eps: f64) {
    let what = format!("bn {shape:?} offset {offset}");
    let x = Var::from_tensor(&rand_tensor(rng, &shape, offset)).unwrap();
    let gamma = Var::from_tensor(&rand_tensor(rng, &[shape[1]], 1.0)).unwrap();
    let beta = Var::from_tensor(&rand_tensor(rng, &[shape[1]], 0.0)).unwrap();
    let (y, mean, var) = kernels::bn::batch_norm_train(&x, &gamma, &beta, eps).unwrap();
    let (yr, mr, vr) = bn_reference(&x, &gamma, &beta, eps).unwrap();
    check(&format!("{what} y"), &y, &yr);
    let c = shape[1];
    check(
        &format!("{what} mean"),
        &Tensor::from_vec(mean, c, &Device::Cpu).unwrap(),
        &mr,
    );
    check(
        &format!("{what} var"),
        &Tensor::from_vec(var, c, &Device::Cpu).unwrap(),
        &vr,
    );
    let r = rand_tensor(rng, &shape, 0.0);
    let g = (y * &r).unwrap().sum_all().unwrap().backward().unwrap();
    let gr = (yr * &r).unwrap().sum_all().unwrap().backward().unwrap();
    for (name, v) in [("dx", &x), ("dgamma", &gamma), ("dbeta", &beta)] {
        check(&format!("{what} {name}"), g.get(v).unwrap(), gr.get(v).unwrap());
    }
}

#[test]
fn batch_norm_matches_the_composite_formula() {
    let mut rng = StdRng::seed_from_u64(4);
    for shape in [
        [1, 3, 5, 7],
        [7, 4, 3, 3],
        [7, 16, 1, 1],
        [2, 1, 13, 11],
        [3, 64, 8, 8],
        [1, 5, 2, 3],
    ] {
        bn_case(&mut rng, shape, 0.0, 1e-5);
    }
    // Large means (variance computed about the mean), large eps.
    bn_case(&mut rng, [3, 8, 9, 9], 20.0, 1e-5);
    bn_case(&mut rng, [7, 6, 5, 5], 0.5, 0.1);
    for _ in 0..10 {
        let shape = [
            rng.random_range(1..8),
            rng.random_range(1..20),
            rng.random_range(1..20),
            rng.random_range(1..20),
        ];
        if shape[0] * shape[2] * shape[3] >= 8 {
            bn_case(&mut rng, shape, 0.0, 1e-5);
        }
    }
}

#[test]
fn adam_kernel_matches_the_formula() {
    let mut rng = StdRng::seed_from_u64(5);
    let n = 40_000; // more than one parallel chunk
    let gen = |rng: &mut StdRng| -> Vec<f32> { (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect() };
    let (mut p, mut m, g) = (gen(&mut rng), gen(&mut rng), gen(&mut rng));
    let mut v: Vec<f32> = gen(&mut rng).iter().map(|x| x.abs()).collect();
    let (p0, m0, v0) = (p.clone(), m.clone(), v.clone());
    let h = kernels::adam::AdamStep {
        lr: 1e-3,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        c1: 1.0 - 0.9f64.powi(3),
        c2: 1.0 - 0.999f64.powi(3),
        form: kernels::adam::AdamForm::Torch,
    };
    kernels::adam::update(&mut p, &g, &mut m, &mut v, &h);
    for i in 0..n {
        let (g, m0, v0) = (g[i] as f64, m0[i] as f64, v0[i] as f64);
        let mm = 0.9 * m0 + 0.1 * g;
        let vv = 0.999 * v0 + 0.001 * g * g;
        let pp = p0[i] as f64 - h.lr / h.c1 * mm / ((vv / h.c2).sqrt() + h.eps);
        assert!((m[i] as f64 - mm).abs() <= 1e-6, "m[{i}]");
        assert!((v[i] as f64 - vv).abs() <= 1e-6, "v[{i}]");
        assert!((p[i] as f64 - pp).abs() <= 1e-6 * (1.0 + pp.abs()), "p[{i}]");
    }
}

/// Keras 3's Adam adds ε to the uncorrected √v (`lr·√(1−β₂ᵗ)/(1−β₁ᵗ) · m/(√v + ε)`), PyTorch's after the bias
/// correction (`lr·m̂/(√v̂ + ε)`). Four steps on a tiny tensor whose gradients are small enough for ε to matter,
/// against both closed forms in f64: each form matches its own and is far from the other's.
#[test]
fn adam_keras_and_torch_forms_match_their_closed_forms() {
    use kernels::adam::{AdamForm, AdamStep};
    let grads: [[f32; 3]; 4] = [
        [1e-6, -2e-6, 5e-7],
        [2e-6, -1e-6, 5e-7],
        [-1e-6, 3e-6, 1e-6],
        [1e-6, 1e-6, -2e-6],
    ];
    let (lr, b1, b2, eps) = (1e-3f64, 0.9f64, 0.999f64, 1e-7f64);
    // The closed form, in f64, of either form.
    let closed = |keras: bool| -> Vec<f64> {
        let (mut p, mut m, mut v) = ([0.5f64, -0.25, 1.0], [0f64; 3], [0f64; 3]);
        for (t, g) in grads.iter().enumerate() {
            let t = t as i32 + 1;
            let (c1, c2) = (1.0 - b1.powi(t), 1.0 - b2.powi(t));
            for i in 0..3 {
                let g = g[i] as f64;
                m[i] = b1 * m[i] + (1.0 - b1) * g;
                v[i] = b2 * v[i] + (1.0 - b2) * g * g;
                p[i] -= if keras {
                    lr * c2.sqrt() / c1 * m[i] / (v[i].sqrt() + eps)
                } else {
                    lr * (m[i] / c1) / ((v[i] / c2).sqrt() + eps)
                };
            }
        }
        p.to_vec()
    };
    let kernel = |form: AdamForm| -> Vec<f64> {
        let (mut p, mut m, mut v) = (vec![0.5f32, -0.25, 1.0], vec![0f32; 3], vec![0f32; 3]);
        for (t, g) in grads.iter().enumerate() {
            let t = t as i32 + 1;
            let h = AdamStep {
                lr,
                beta1: b1,
                beta2: b2,
                eps,
                c1: 1.0 - b1.powi(t),
                c2: 1.0 - b2.powi(t),
                form,
            };
            kernels::adam::update(&mut p, g, &mut m, &mut v, &h);
        }
        p.iter().map(|&x| x as f64).collect()
    };
    let (keras, torch) = (closed(true), closed(false));
    let start = [0.5f64, -0.25, 1.0];
    for (form, own, other) in [(AdamForm::Keras, &keras, &torch), (AdamForm::Torch, &torch, &keras)] {
        let got = kernel(form);
        for i in 0..3 {
            let moved = (own[i] - start[i]).abs();
            assert!(
                (got[i] - own[i]).abs() <= 1e-7 + 1e-3 * moved,
                "{form:?} [{i}]: {} vs {}",
                got[i],
                own[i]
            );
            // The forms differ by far more than the tolerance: ε is 31.6× larger in effect under Keras at step 1.
            assert!(
                (own[i] - other[i]).abs() > 10.0 * (1e-7 + 1e-3 * moved),
                "[{i}] forms too close"
            );
        }
    }
    // The optimizer (both of its paths use `AdamStep::coefficients`) with the Keras form: the same numbers.
    let dev = Device::Cpu;
    let var = candle_core::Var::from_slice(&[0.5f32, -0.25, 1.0], 3, &dev).unwrap();
    let mut opt = Optimizer::new(OptimizerKind::Adam, vec![var.clone()], lr)
        .unwrap()
        .with_eps(eps)
        .with_form(AdamForm::Keras);
    for g in &grads {
        let gt = Tensor::from_slice(g, 3, &dev).unwrap();
        let loss = (var.as_tensor() * &gt).unwrap().sum_all().unwrap();
        opt.step_with(&loss.backward().unwrap()).unwrap();
    }
    let got = var.as_tensor().to_vec1::<f32>().unwrap();
    for i in 0..3 {
        let moved = (keras[i] - start[i]).abs();
        assert!(
            (got[i] as f64 - keras[i]).abs() <= 1e-7 + 1e-3 * moved,
            "optimizer [{i}]"
        );
    }
}

fn train_steps(own: bool, steps: usize) -> (Vec<Vec<f32>>, Vec<Vec<f32>>, Vec<f32>) {
    bnscope::model::path::set_own_kernels(own);
    let dev = Device::Cpu;
    let mut rng = StdRng::seed_from_u64(6);
    let x = rand_tensor(&mut rng, &[3, 3, 24, 24], 0.0);
    let y = Tensor::new(&[0u32, 1, 2], &dev).unwrap();
    let mut model = ResNet::new(Preset::Tiny, 3, 0.9, 1e-5, 0, &dev).unwrap();
    let mut opt = Optimizer::new(OptimizerKind::Adam, model.params(), 1e-3).unwrap();
    let mut losses = vec![];
    for _ in 0..steps {
        let logits = model.forward(&x, BnMode::Train).unwrap();
        let loss = candle_nn::loss::cross_entropy(&logits, &y).unwrap();
        losses.push(loss.to_scalar::<f32>().unwrap());
        opt.backward_step(&loss).unwrap();
    }
    let params = model.params().iter().map(|v| flat(v.as_tensor())).collect();
    let stats = model
        .bn_layers()
        .iter()
        .flat_map(|b| [flat(b.running_mean()), flat(b.running_var())])
        .collect();
    // Checkpointed Adam moments survive a switch of path.
    let names: Vec<String> = model.named_params().into_iter().map(|(n, _)| n).collect();
    let sd = opt.state_dict(&names).unwrap();
    assert!(flat(&sd[&format!("optim.{}.exp_avg", names[0])])
        .iter()
        .any(|v| *v != 0.0));
    (params, stats, losses)
}

/// The whole model (conv, BN with running stats, max-pool, Adam): own kernels vs candle-only over a few steps.
/// The only test here that flips the global switch.
#[test]
fn tiny_training_is_the_same_with_either_kernel_set() {
    let (pa, sa, la) = train_steps(true, 3);
    let (pb, sb, lb) = train_steps(false, 3);
    bnscope::model::path::set_own_kernels(true);
    for (a, b) in la.iter().zip(&lb) {
        assert!((a - b).abs() <= 1e-4 * b.abs().max(1.0), "loss {a} vs {b}");
    }
    let close = |a: &[f32], b: &[f32]| {
        let scale = b.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
        a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs())) / scale
    };
    for (i, (a, b)) in sa.iter().zip(&sb).enumerate() {
        assert!(close(a, b) <= 1e-4, "running stat {i}: {}", close(a, b));
    }
    // After three Adam steps of 1e-3 the parameters differ by a few ulps of the update at most.
    for (i, (a, b)) in pa.iter().zip(&pb).enumerate() {
        let d = a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
        assert!(d <= 1e-4, "param {i}: max abs diff {d}");
    }
    // And BatchNorm2d's running-stat update itself, on a single layer.
    let mut rng = StdRng::seed_from_u64(7);
    let x = rand_tensor(&mut rng, &[5, 4, 6, 6], 2.0);
    let mut bns = vec![];
    for own in [true, false] {
        bnscope::model::path::set_own_kernels(own);
        let mut bn = BatchNorm2d::new("bn", 4, 0.9, 1e-5, &Device::Cpu).unwrap();
        let y = bn.forward(&x, BnMode::Train).unwrap();
        bns.push((y, bn.running_mean().clone(), bn.running_var().clone()));
    }
    bnscope::model::path::set_own_kernels(true);
    check("bn layer y", &bns[0].0, &bns[1].0);
    check("bn layer running mean", &bns[0].1, &bns[1].1);
    check("bn layer running var", &bns[0].2, &bns[1].2);
}

/// Fused BN + ReLU and BN + add + ReLU against `relu(bn(x) [+ skip])` built from candle ops: values, batch
/// statistics and every gradient.
fn bn_tail_case(rng: &mut StdRng, shape: [usize; 4], add: bool) {
    let what = format!("bn-tail {shape:?} add {add}");
    let eps = 1e-5;
    let x = Var::from_tensor(&rand_tensor(rng, &shape, 0.3)).unwrap();
    let skip = Var::from_tensor(&rand_tensor(rng, &shape, 0.0)).unwrap();
    let gamma = Var::from_tensor(&rand_tensor(rng, &[shape[1]], 1.0)).unwrap();
    let beta = Var::from_tensor(&rand_tensor(rng, &[shape[1]], 0.0)).unwrap();
    let (y, mean, var) = if add {
        kernels::bn::batch_norm_add_relu_train(&x, &skip, &gamma, &beta, eps).unwrap()
    } else {
        kernels::bn::batch_norm_relu_train(&x, &gamma, &beta, eps).unwrap()
    };
    let (yr, mr, vr) = bn_reference(&x, &gamma, &beta, eps).unwrap();
    let yr = if add { (yr + skip.as_tensor()).unwrap() } else { yr }.relu().unwrap();
    check(&format!("{what} y"), &y, &yr);
    let c = shape[1];
    check(
        &format!("{what} mean"),
        &Tensor::from_vec(mean, c, &Device::Cpu).unwrap(),
        &mr,
    );
    check(
        &format!("{what} var"),
        &Tensor::from_vec(var, c, &Device::Cpu).unwrap(),
        &vr,
    );
    let r = rand_tensor(rng, &shape, 0.0);
    let g = (y * &r).unwrap().sum_all().unwrap().backward().unwrap();
    let gr = (yr * &r).unwrap().sum_all().unwrap().backward().unwrap();
    for (name, v) in [("dx", &x), ("dgamma", &gamma), ("dbeta", &beta)] {
        check(&format!("{what} {name}"), g.get(v).unwrap(), gr.get(v).unwrap());
    }
    if add {
        check(&format!("{what} dskip"), g.get(&skip).unwrap(), gr.get(&skip).unwrap());
    } else {
        assert!(g.get(&skip).is_none());
    }
}

#[test]
fn fused_batch_norm_relu_and_residual_tail_match_candle() {
    let mut rng = StdRng::seed_from_u64(8);
    for add in [false, true] {
        for shape in [
            [1, 3, 5, 7],
            [7, 4, 3, 3],
            [3, 64, 8, 8],
            [2, 1, 13, 11],
            [3, 16, 56, 56],
            [5, 9, 1, 2],
        ] {
            bn_tail_case(&mut rng, shape, add);
        }
    }
}

#[test]
fn pool_linear_head_matches_candle() {
    let mut rng = StdRng::seed_from_u64(9);
    for (n, c, h, w, k) in [
        (3, 64, 8, 8, 10),
        (1, 5, 1, 1, 1),
        (7, 33, 3, 5, 4),
        (2, 2048, 7, 7, 10),
    ] {
        let what = format!("head n{n} c{c} {h}x{w} k{k}");
        let x = Var::from_tensor(&rand_tensor(&mut rng, &[n, c, h, w], 0.2)).unwrap();
        let wt = Var::from_tensor(&rand_tensor(&mut rng, &[k, c], 0.0)).unwrap();
        let b = Var::from_tensor(&rand_tensor(&mut rng, &[k], 0.0)).unwrap();
        let own = kernels::head::pool_linear(&x, &wt, &b).unwrap();
        let reference = x
            .mean((2, 3))
            .unwrap()
            .matmul(&wt.t().unwrap())
            .unwrap()
            .broadcast_add(&b)
            .unwrap();
        check(&format!("{what} forward"), &own, &reference);
        let r = rand_tensor(&mut rng, &[n, k], 0.0);
        let g = (own * &r).unwrap().sum_all().unwrap().backward().unwrap();
        let gr = (reference * &r).unwrap().sum_all().unwrap().backward().unwrap();
        for (name, v) in [("dx", &x), ("dw", &wt), ("db", &b)] {
            check(&format!("{what} {name}"), g.get(v).unwrap(), gr.get(v).unwrap());
        }
    }
}

#[test]
fn cross_entropy_matches_candle_nn() {
    let mut rng = StdRng::seed_from_u64(10);
    for (n, k, spread) in [(3, 10, 1.0f32), (1, 2, 1.0), (7, 5, 30.0), (4, 1000, 5.0)] {
        let v: Vec<f32> = (0..n * k).map(|_| rng.random_range(-spread..spread)).collect();
        let logits = Var::from_tensor(&Tensor::from_vec(v, (n, k), &Device::Cpu).unwrap()).unwrap();
        let t: Vec<u32> = (0..n).map(|_| rng.random_range(0..k as u32)).collect();
        let targets = Tensor::new(t.as_slice(), &Device::Cpu).unwrap();
        let own = kernels::head::cross_entropy(&logits, &targets).unwrap();
        let reference = candle_nn::loss::cross_entropy(&logits, &targets).unwrap();
        assert_eq!(own.dims(), reference.dims());
        check(&format!("ce n{n} k{k} loss"), &own, &reference);
        // Scaled, so that the incoming gradient is not 1.
        let g = (own * 2.5).unwrap().backward().unwrap();
        let gr = (reference * 2.5).unwrap().backward().unwrap();
        check(
            &format!("ce n{n} k{k} dlogits"),
            g.get(&logits).unwrap(),
            gr.get(&logits).unwrap(),
        );
    }
    assert!(kernels::head::cross_entropy(
        &Tensor::zeros((2, 3), candle_core::DType::F32, &Device::Cpu).unwrap(),
        &Tensor::new(&[0u32, 3], &Device::Cpu).unwrap()
    )
    .is_err());
}
