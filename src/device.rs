//! `--device auto|cpu|cuda|cuda:N`.
use anyhow::Result;
use candle_core::Device;

use crate::error::usage;

/// A device and a description for the header and the log.
pub struct Picked {
    pub device: Device,
    pub name: String,
    /// A one-line notice for stderr (e.g. `auto` fell back to the CPU).
    pub notice: Option<String>,
}

fn cpu() -> Picked {
    Picked {
        device: Device::Cpu,
        name: format!("cpu ({} threads)", rayon::current_num_threads()),
        notice: None,
    }
}

/// Whether this binary was built with the `cuda` feature.
pub const CUDA_BUILT: bool = cfg!(feature = "cuda");

/// Resolves a `--device` value.
pub fn pick(spec: &str) -> Result<Picked> {
    let spec = spec.trim().to_ascii_lowercase();
    match spec.as_str() {
        "cpu" => Ok(cpu()),
        "auto" => {
            if !CUDA_BUILT {
                return Ok(cpu());
            }
            match cuda(0) {
                Ok(p) => Ok(p),
                Err(e) => {
                    let mut p = cpu();
                    p.notice = Some(format!(
                        "bnscope: no CUDA device answered ({}); using the CPU",
                        first_line(&e)
                    ));
                    Ok(p)
                }
            }
        }
        s if s == "cuda" || s.starts_with("cuda:") => {
            let ordinal = match s.strip_prefix("cuda:") {
                None => 0,
                Some(n) => n.parse::<usize>().map_err(|_| {
                    usage(format!(
                        "--device {s}: expected cuda:N with N a GPU number, e.g. cuda:0"
                    ))
                })?,
            };
            if !CUDA_BUILT {
                return Err(usage(format!(
                    "--device {s}: this bnscope was built without CUDA; rebuild with `cargo build --release --features cuda` (see README, GPU box)"
                )));
            }
            cuda(ordinal).map_err(|e| usage(format!("--device {s}: no usable CUDA device: {}", first_line(&e))))
        }
        other => Err(usage(format!("--device {other}: expected auto, cpu, cuda or cuda:N"))),
    }
}

#[cfg(feature = "cuda")]
fn cuda(ordinal: usize) -> Result<Picked> {
    let device = std::panic::catch_unwind(|| Device::new_cuda(ordinal))
        .map_err(|_| anyhow::anyhow!("the CUDA driver could not be loaded"))??;
    // A tiny op proves the device really answers.
    candle_core::Tensor::zeros(1, candle_core::DType::F32, &device)?.to_vec1::<f32>()?;
    Ok(Picked {
        device,
        name: gpu_name(ordinal).unwrap_or_else(|| format!("cuda:{ordinal}")),
        notice: None,
    })
}

#[cfg(feature = "cuda")]
fn gpu_name(ordinal: usize) -> Option<String> {
    let out = std::process::Command::new("nvidia-smi")
        .args(["--query-gpu=name", "--format=csv,noheader", &format!("--id={ordinal}")])
        .output()
        .ok()?;
    let name = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && !name.is_empty()).then(|| format!("cuda:{ordinal} ({name})"))
}

#[cfg(not(feature = "cuda"))]
fn cuda(_ordinal: usize) -> Result<Picked> {
    Err(anyhow::anyhow!("built without CUDA"))
}

/// candle's CUDA errors carry a backtrace; the user needs the first line.
fn first_line(e: &anyhow::Error) -> String {
    format!("{e:#}")
        .lines()
        .next()
        .unwrap_or("unknown error")
        .trim()
        .to_string()
}
