//! Checkpoints: one safetensors file with the weights, BN running stats (`*.running_mean`, `*.running_var`,
//! `*.num_batches_tracked`), the optimizer moments, and metadata (model, classes, epoch, …).
//!
//! Written atomically: to `FILE.tmp` in the same directory, synced, then renamed over `FILE`, so a crash never
//! leaves a half-written checkpoint.
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use candle_core::{DType, Device, Tensor};
use safetensors::tensor::{Dtype as StDtype, TensorView};

use crate::error::usage;

/// Metadata stored in the safetensors header.
#[derive(Clone, Debug, PartialEq)]
pub struct Meta {
    pub model: String,
    pub classes: Vec<String>,
    pub image_size: usize,
    pub epoch: usize,
    pub step: usize,
    /// Keras convention, as text.
    pub momentum: String,
    pub cumulative: bool,
    pub seed: u64,
    /// Everything else a resume needs to continue exactly (absent in checkpoints of bnscope before 0.2).
    pub state: Option<SavedState>,
}

/// The run's settings and its position, so that a resumed run continues exactly where it stopped.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SavedState {
    pub framework: crate::framework::Framework,
    pub bn_eps: f64,
    /// Running variance updated with the unbiased batch variance.
    pub bn_unbiased: bool,
    pub adam_eps: f64,
    pub batch_size: usize,
    pub lr: f64,
    /// `adam` or `sgd`.
    pub optimizer: String,
    /// The `--seed` the run started with; the weights' seed is `base_seed + restarts`.
    pub base_seed: u64,
    pub restarts: u64,
    /// Epoch orders drawn from the shuffle generator since the last (re)start.
    pub shuffles: u64,
    /// The current epoch's order and how far into it the run is (empty and 0 at an epoch boundary), with the
    /// epoch's sums so far.
    pub order: Vec<u32>,
    pub position: usize,
    pub loss_sum: f64,
    pub correct: usize,
    pub seen: usize,
    /// `∏ mᵢ` since the last reset and the one momentum of those updates, if it was one.
    pub init_weight: f64,
    pub constant_momentum: Option<f64>,
}

impl Meta {
    fn to_map(&self) -> HashMap<String, String> {
        let mut m = HashMap::new();
        m.insert("format".into(), "bnscope-checkpoint-1".into());
        m.insert("model".into(), self.model.clone());
        m.insert(
            "classes".into(),
            serde_json::to_string(&self.classes).unwrap_or_default(),
        );
        m.insert("image_size".into(), self.image_size.to_string());
        m.insert("epoch".into(), self.epoch.to_string());
        m.insert("step".into(), self.step.to_string());
        m.insert("momentum_keras".into(), self.momentum.clone());
        m.insert("cumulative".into(), self.cumulative.to_string());
        m.insert("seed".into(), self.seed.to_string());
        if let Some(st) = &self.state {
            m.insert("state".into(), serde_json::to_string(st).unwrap_or_default());
        }
        m
    }

    fn from_map(m: &HashMap<String, String>) -> Option<Self> {
        if m.get("format")? != "bnscope-checkpoint-1" {
            return None;
        }
        Some(Self {
            model: m.get("model")?.clone(),
            classes: serde_json::from_str(m.get("classes")?).ok()?,
            image_size: m.get("image_size")?.parse().ok()?,
            epoch: m.get("epoch")?.parse().ok()?,
            step: m.get("step")?.parse().ok()?,
            momentum: m.get("momentum_keras")?.clone(),
            cumulative: m.get("cumulative")?.parse().ok()?,
            seed: m.get("seed")?.parse().ok()?,
            state: m.get("state").and_then(|s| serde_json::from_str(s).ok()),
        })
    }
}

/// Writes `tensors` and `meta` to `path` atomically.
pub fn save(path: &Path, tensors: &HashMap<String, Tensor>, meta: &Meta) -> Result<()> {
    let mut host: Vec<(String, Tensor)> = Vec::with_capacity(tensors.len());
    for (name, t) in tensors {
        let t = t.to_device(&Device::Cpu)?;
        let t = if t.dtype() == DType::I64 {
            t
        } else {
            t.to_dtype(DType::F32)?
        };
        host.push((name.clone(), t.contiguous()?));
    }
    host.sort_by(|a, b| a.0.cmp(&b.0));
    let mut bytes: Vec<(String, StDtype, Vec<usize>, Vec<u8>)> = Vec::new();
    for (name, t) in &host {
        let (dt, data) = match t.dtype() {
            DType::I64 => (
                StDtype::I64,
                t.flatten_all()?
                    .to_vec1::<i64>()?
                    .iter()
                    .flat_map(|v| v.to_le_bytes())
                    .collect(),
            ),
            _ => (
                StDtype::F32,
                t.flatten_all()?
                    .to_vec1::<f32>()?
                    .iter()
                    .flat_map(|v| v.to_le_bytes())
                    .collect(),
            ),
        };
        bytes.push((name.clone(), dt, t.dims().to_vec(), data));
    }
    let views: Vec<(String, TensorView<'_>)> = bytes
        .iter()
        .map(|(n, dt, shape, data)| Ok((n.clone(), TensorView::new(*dt, shape.clone(), data)?)))
        .collect::<Result<_, safetensors::SafeTensorError>>()?;
    let buf = safetensors::serialize(views, Some(meta.to_map()))?;
    let tmp = tmp_path(path);
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&buf)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write()
        .inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })
        .with_context(|| format!("--checkpoint {}: cannot write the checkpoint", path.display()))
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

/// Checks that a checkpoint can be written at `path` (its directory exists and is writable), without touching
/// an existing file there.
pub fn check_writable(path: &Path) -> Result<()> {
    let tmp = tmp_path(path);
    std::fs::File::create(&tmp)
        .map_err(|e| usage(format!("--checkpoint {}: cannot write there: {e}", path.display())))?;
    let _ = std::fs::remove_file(&tmp);
    Ok(())
}

/// Reads a checkpoint. Errors name the file (usage errors, exit 2).
pub fn load(path: &Path) -> Result<(HashMap<String, Tensor>, Meta)> {
    let shown = path.display();
    let data = std::fs::read(path).map_err(|e| usage(format!("--resume {shown}: cannot read checkpoint: {e}")))?;
    let (_, header) = safetensors::SafeTensors::read_metadata(&data)
        .map_err(|e| usage(format!("--resume {shown}: not a safetensors checkpoint ({e})")))?;
    let meta = header
        .metadata()
        .as_ref()
        .and_then(Meta::from_map)
        .ok_or_else(|| usage(format!("--resume {shown}: not a bnscope checkpoint (metadata missing)")))?;
    let st = safetensors::SafeTensors::deserialize(&data)
        .map_err(|e| usage(format!("--resume {shown}: corrupt checkpoint ({e})")))?;
    let mut out = HashMap::new();
    for (name, view) in st.tensors() {
        let shape = view.shape().to_vec();
        let t = match view.dtype() {
            StDtype::F32 => {
                let v: Vec<f32> = view
                    .data()
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect();
                Tensor::from_vec(v, shape, &Device::Cpu)?
            }
            StDtype::I64 => {
                let v: Vec<i64> = view
                    .data()
                    .chunks_exact(8)
                    .map(|c| i64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
                    .collect();
                Tensor::from_vec(v, shape, &Device::Cpu)?
            }
            other => {
                return Err(usage(format!(
                    "--resume {shown}: unexpected dtype {other:?} for {name}"
                )))
            }
        };
        out.insert(name, t);
    }
    Ok((out, meta))
}
