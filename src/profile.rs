//! `bnscope bench --breakdown`: where a training step's time goes — forward (with the loss), backward, optimizer —
//! each timed to a device synchronisation, so it also works on CUDA, where kernels run asynchronously.
use std::time::Instant;

use anyhow::Result;
use candle_core::{Device, Tensor};

use crate::cli::BenchArgs;
use crate::model::BnMode;
use crate::model::{Preset, ResNet};
use crate::optim::{Optimizer, OptimizerKind};

fn median(v: Vec<f64>) -> f64 {
    crate::bench::stats(v).0
}

/// Median forward, backward and optimizer milliseconds of one preset.
pub fn breakdown_one(
    preset: Preset,
    size: usize,
    batch: usize,
    steps: usize,
    warmup: usize,
    dev: &Device,
) -> Result<[f64; 3]> {
    let x = Tensor::rand(0f32, 1f32, (batch, 3, size, size), &Device::Cpu)?.to_device(dev)?;
    let y = Tensor::from_vec((0..batch as u32).map(|i| i % 3).collect::<Vec<_>>(), batch, dev)?;
    let mut model = ResNet::new(preset, 3, 0.99, 1e-5, 0, dev)?;
    let mut opt = Optimizer::new(OptimizerKind::Adam, model.params(), 1e-3)?;
    // On the CPU the steps run on a rayon pool thread, as in training and `bench` (see `runtime::in_pool`).
    let run = || -> Result<[f64; 3]> {
        let (mut f, mut b, mut o) = (vec![], vec![], vec![]);
        for i in 0..warmup + steps {
            let t0 = Instant::now();
            // The graph-free CPU step runs forward and backward in one call and reports its forward time.
            let (fwd, grads) = match crate::model::step::train_step(&mut model, &x, &y)? {
                Some(out) => (out.forward_ms, out.grads),
                None => {
                    let loss = crate::model::cross_entropy(&model.forward(&x, BnMode::Train)?, &y)?;
                    dev.synchronize()?;
                    let fwd = t0.elapsed().as_secs_f64() * 1e3;
                    (fwd, crate::kernels::conv::backward_collecting(&loss)?)
                }
            };
            dev.synchronize()?;
            let t2 = Instant::now();
            opt.step_with(&grads)?;
            dev.synchronize()?;
            let t3 = Instant::now();
            if i >= warmup {
                let fwd_bwd = (t2 - t0).as_secs_f64() * 1e3;
                f.push(fwd);
                b.push(fwd_bwd - fwd);
                o.push((t3 - t2).as_secs_f64() * 1e3);
            }
        }
        Ok([median(f), median(b), median(o)])
    };
    crate::runtime::in_pool(dev, run)
}

/// One configuration's breakdown, as `bench --breakdown --json` prints it.
#[derive(Debug, serde::Serialize)]
pub struct BreakdownResult {
    pub model: String,
    pub image_size: usize,
    pub batch_size: usize,
    pub forward_ms: f64,
    pub backward_ms: f64,
    pub optimizer_ms: f64,
    pub total_ms: f64,
}

pub fn run(args: &BenchArgs) -> Result<i32> {
    let (picked, configs) = crate::bench::setup(args)?;
    let steps = args.steps.max(1);
    if !args.json {
        println!(
            "device {} · batch {} · median of {steps} steps after {} warm-up · ms",
            picked.name, args.batch_size, args.warmup
        );
        println!(
            "{:<9} {:>5} {:>9} {:>9} {:>9} {:>9}",
            "model", "size", "forward", "backward", "optimizer", "total"
        );
    }
    let mut results = Vec::new();
    for (preset, size, batch) in configs {
        let [f, b, o] = breakdown_one(preset, size, batch, steps, args.warmup, &picked.device)?;
        if !args.json {
            println!(
                "{:<9} {:>5} {:>9.1} {:>9.1} {:>9.1} {:>9.1}",
                preset.name(),
                size,
                f,
                b,
                o,
                f + b + o
            );
        }
        results.push(BreakdownResult {
            model: preset.name().into(),
            image_size: size,
            batch_size: batch,
            forward_ms: f,
            backward_ms: b,
            optimizer_ms: o,
            total_ms: f + b + o,
        });
    }
    if args.json {
        let report = serde_json::json!({
            "device": picked.name,
            "threads": rayon::current_num_threads(),
            "steps": steps,
            "warmup": args.warmup,
            "results": results,
        });
        println!("{report}");
    }
    Ok(0)
}
