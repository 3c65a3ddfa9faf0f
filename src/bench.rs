//! `bnscope bench`: training-step and evaluation timings (median/min/max after warm-up), images/s, achieved
//! GFLOP/s from the model's counted FLOPs, and peak RSS.
use std::time::Instant;

use anyhow::Result;
use candle_core::{Device, Tensor};
use serde::Serialize;

use crate::cli::{check_image_size, BenchArgs, Kernels};
use crate::model::BnMode;
use crate::model::{Preset, ResNet};
use crate::optim::{Optimizer, OptimizerKind};

#[derive(Debug, Serialize)]
pub struct BenchResult {
    pub model: String,
    pub image_size: usize,
    pub batch_size: usize,
    pub kernels: String,
    pub median_ms: f64,
    pub min_ms: f64,
    pub max_ms: f64,
    pub images_per_s: f64,
    pub gflops: f64,
    pub eval_median_ms: f64,
    pub peak_rss_mb: f64,
}

#[derive(Debug, Serialize)]
pub struct BenchReport {
    pub device: String,
    pub threads: usize,
    pub results: Vec<BenchResult>,
}

/// Peak resident set size of this process in MiB (`VmHWM`), 0 where unknown.
pub fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse::<f64>().ok()))
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

/// Resets the peak-RSS counter (`VmHWM`) to the current RSS, so that each configuration of `bench --all` reports
/// its own peak rather than the largest so far (Linux ≥ 4.0; elsewhere the peak stays process-wide).
pub fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Median, min and max.
pub fn stats(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(|a, b| a.total_cmp(b));
    let med = if v.len() % 2 == 1 {
        v[v.len() / 2]
    } else {
        (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0
    };
    (med, v[0], v[v.len() - 1])
}

/// Times one configuration.
pub fn bench_one(
    preset: Preset,
    size: usize,
    batch: usize,
    steps: usize,
    warmup: usize,
    kernels: Kernels,
    dev: &Device,
) -> Result<BenchResult> {
    reset_peak_rss();
    let data = crate::data::embedded(size)?;
    let idx: Vec<u32> = (0..batch).map(|i| (i % data.len()) as u32).collect();
    let labels: Vec<u32> = idx.iter().map(|&k| data.labels[k as usize] as u32).collect();
    let x = data.batch(&idx, dev)?;
    let y = Tensor::from_vec(labels, batch, dev)?;
    let mut model = ResNet::new(preset, data.classes.len(), 0.99, 1e-5, 0, dev)?;
    let mut opt = Optimizer::new(OptimizerKind::Adam, model.params(), 1e-3)?;
    let mut times = Vec::with_capacity(steps);
    for i in 0..warmup + steps {
        let t0 = Instant::now();
        opt.train_step(&mut model, &x, &y)?;
        if i >= warmup {
            times.push(t0.elapsed().as_secs_f64() * 1e3);
        }
    }
    let mut eval = Vec::new();
    for _ in 0..steps.clamp(1, 10) {
        let t0 = Instant::now();
        crate::runtime::in_pool(dev, || model.eval_forward(&x, BnMode::EvalRunning)?.to_vec2::<f32>())?;
        eval.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    let (median_ms, min_ms, max_ms) = stats(times);
    let flops = model.train_flops_per_image(size, size) * batch as f64;
    Ok(BenchResult {
        model: preset.name().into(),
        image_size: size,
        batch_size: batch,
        kernels: kernels.name().into(),
        median_ms,
        min_ms,
        max_ms,
        images_per_s: batch as f64 / (median_ms / 1e3),
        gflops: flops / (median_ms / 1e3) / 1e9,
        eval_median_ms: stats(eval).0,
        peak_rss_mb: peak_rss_mb(),
    })
}

/// One configuration to time: preset, image size, batch size.
pub type Config = (Preset, usize, usize);

/// Validates the flags, switches the kernels, picks the device and lists the `(preset, image size, batch)`
/// configurations to time. Shared by `bench` and `bench --breakdown`.
pub fn setup(args: &BenchArgs) -> Result<(crate::device::Picked, Vec<Config>)> {
    args.validate()?;
    crate::model::path::set_own_kernels(args.kernels != Kernels::Candle);
    crate::model::path::set_graph_free(args.kernels == Kernels::Own);
    if args.kernels != Kernels::Candle {
        crate::runtime::init();
    }
    // After `init` (see there); names the pool threads for panic hooks and profilers.
    crate::runtime::name_pool();
    let picked = crate::device::pick(&args.device)?;
    if let Some(n) = &picked.notice {
        eprintln!("{n}");
    }
    let configs: Vec<Config> = if args.all {
        [Preset::Tiny, Preset::Resnet18, Preset::Resnet50]
            .into_iter()
            .map(|p| {
                (
                    p,
                    if p == Preset::Resnet18 {
                        64
                    } else {
                        p.default_image_size()
                    },
                    3,
                )
            })
            .collect()
    } else {
        let size = args.image_size.unwrap_or(args.model.default_image_size());
        check_image_size(args.model, size)?;
        vec![(args.model, size, args.batch_size)]
    };
    Ok((picked, configs))
}

pub fn run(args: &BenchArgs) -> Result<i32> {
    let (picked, configs) = setup(args)?;
    let mut report = BenchReport {
        device: picked.name.clone(),
        threads: rayon::current_num_threads(),
        results: vec![],
    };
    if !args.json {
        println!(
            "device {} · {} threads · {} warm-up + {} timed steps · Adam",
            report.device, report.threads, args.warmup, args.steps
        );
        println!(
            "{:<9} {:>5} {:>5} {:>7} {:>10} {:>10} {:>10} {:>9} {:>8} {:>10} {:>9}",
            "model",
            "size",
            "batch",
            "kernels",
            "median ms",
            "min ms",
            "max ms",
            "img/s",
            "GFLOP/s",
            "eval ms",
            "peak MB"
        );
    }
    for (preset, size, batch) in configs {
        let r = bench_one(
            preset,
            size,
            batch,
            args.steps,
            args.warmup,
            args.kernels,
            &picked.device,
        )?;
        if !args.json {
            println!(
                "{:<9} {:>5} {:>5} {:>7} {:>10.1} {:>10.1} {:>10.1} {:>9.1} {:>8.1} {:>10.1} {:>9.0}",
                r.model,
                r.image_size,
                r.batch_size,
                r.kernels,
                r.median_ms,
                r.min_ms,
                r.max_ms,
                r.images_per_s,
                r.gflops,
                r.eval_median_ms,
                r.peak_rss_mb
            );
        }
        report.results.push(r);
    }
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    }
    Ok(0)
}
