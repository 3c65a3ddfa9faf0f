//! Checkpoints: one safetensors file with the weights, BN running stats (`*.running_mean`, `*.running_var`,
//! `*.num_batches_tracked`), the optimizer moments, and metadata (model, classes, epoch, …).
//!
//! Written atomically: to a temporary file of a unique name (`.FILE.XXXXXX.tmp`) in the same directory, synced,
//! then renamed over `FILE`, so a crash never leaves a half-written checkpoint, and no file bnscope did not create
//! is ever touched. A symlink is written through (the rename goes onto the file it points to); anything but a
//! regular file, or a regular file that is not a bnscope checkpoint, is refused at start-up ([`prepare`]).
use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

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
    /// `--norm` (`batch`, `group`, `layer`); absent in older checkpoints, which are all `batch`.
    #[serde(default)]
    pub norm: Option<String>,
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
    let buf = serialize(tensors, meta.to_map())?;
    write_atomically(path, &buf)
        .with_context(|| format!("--checkpoint {}: cannot write the checkpoint", path.display()))
}

/// `tensors` as a safetensors file (f32, and int64 where they are int64), names sorted, with `metadata`.
pub(crate) fn serialize(tensors: &HashMap<String, Tensor>, metadata: HashMap<String, String>) -> Result<Vec<u8>> {
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
    Ok(safetensors::serialize(views, Some(metadata))?)
}

/// Writes `bytes` to a new temporary file beside the file `path` resolves to, syncs it and renames it over that
/// file (keeping an existing file's permissions). On any error the temporary file is removed.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let target = crate::files::resolve(path)?;
    let old = std::fs::metadata(&target).ok();
    if let Some(kind) = old.as_ref().and_then(crate::files::not_regular) {
        return Err(std::io::Error::other(format!("{kind} is there, not a regular file")));
    }
    let dir = target.parent().unwrap_or(Path::new("/"));
    let mut tmp = temp_file_beside(&target)?;
    if let Some(m) = &old {
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(m.permissions().mode() & 0o7777))?;
    }
    tmp.as_file_mut().write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(&target).map_err(|e| e.error)?;
    // The rename itself survives a crash once the directory is synced.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// A new `.NAME.XXXXXX.tmp` in `target`'s directory, with the permissions a new file gets (0666 less the umask);
/// removed when dropped unless persisted.
fn temp_file_beside(target: &Path) -> std::io::Result<tempfile::NamedTempFile> {
    let prefix = format!(".{}.", target.file_name().unwrap_or_default().to_string_lossy());
    tempfile::Builder::new()
        .prefix(&prefix)
        .suffix(".tmp")
        .permissions(std::fs::Permissions::from_mode(0o666))
        .tempfile_in(target.parent().unwrap_or(Path::new("/")))
}

/// Whether a new file can be created in `target`'s directory, as [`write_atomically`] will: a test file of a unique
/// name is created there and removed again (nothing that is there is touched).
pub(crate) fn can_create_beside(target: &Path) -> std::io::Result<()> {
    temp_file_beside(target).map(drop)
}

/// Checks at start-up, before anything runs, that a checkpoint can be written at `path`: not a directory (nor a
/// name ending in `/`), not a FIFO, device or socket, not a regular file that is something else than a bnscope
/// checkpoint, in a directory that exists and takes a new file. Touches nothing that is there: the test file has
/// a unique name and is removed again. Returns the lock that keeps other bnscope processes off this checkpoint
/// for as long as it is held.
pub fn prepare(path: &Path) -> Result<Option<crate::files::PathLock>> {
    let shown = path.display();
    let err = |why: String| usage(format!("--checkpoint {shown}: {why}"));
    let as_dir = Path::new(path.as_os_str()).join("model.st");
    if path.as_os_str().as_encoded_bytes().ends_with(b"/") || path.file_name().is_none() {
        return Err(err(format!(
            "names a directory; give a file name such as {}",
            as_dir.display()
        )));
    }
    let target = crate::files::resolve(path).map_err(|e| {
        err(match e.kind() {
            std::io::ErrorKind::NotFound => "its directory does not exist".into(),
            _ => crate::files::io_reason(&e),
        })
    })?;
    match std::fs::metadata(&target) {
        Ok(m) if m.is_dir() => {
            return Err(err(format!(
                "is a directory; give a file name such as {}",
                as_dir.display()
            )));
        }
        Ok(m) => {
            if let Some(kind) = crate::files::not_regular(&m) {
                return Err(err(format!(
                    "not a regular file ({kind}); a checkpoint is replaced as a whole, so give a regular file or a \
                     new name"
                )));
            }
            if m.len() > 0 && !is_checkpoint(&target) {
                return Err(err(
                    "exists and is not a bnscope checkpoint; move it away or choose another name".into(),
                ));
            }
        }
        Err(_) => {}
    }
    can_create_beside(&target).map_err(|e| err(format!("cannot write there: {}", crate::files::io_reason(&e))))?;
    crate::files::lock_path(
        &target,
        &format!("--checkpoint {shown}"),
        "two runs cannot share one checkpoint",
    )
}

/// Whether `path` starts like a bnscope checkpoint: a safetensors header whose metadata says
/// `bnscope-checkpoint-1`.
pub(crate) fn is_checkpoint(path: &Path) -> bool {
    let check = || -> Option<bool> {
        let mut f = crate::files::open_regular(path, std::fs::OpenOptions::new().read(true), "").ok()?;
        let mut n = [0u8; 8];
        f.read_exact(&mut n).ok()?;
        let n = u64::from_le_bytes(n);
        if n > 100 << 20 {
            return Some(false);
        }
        let mut header = vec![0u8; n as usize];
        f.read_exact(&mut header).ok()?;
        let v: serde_json::Value = serde_json::from_slice(&header).ok()?;
        Some(v["__metadata__"]["format"] == "bnscope-checkpoint-1")
    };
    check().unwrap_or(false)
}

/// The candle dtype of a safetensors one, for the dtypes bnscope reads (f32, f64, f16, bf16; i64, i32, u8 for
/// counters); `None` for any other. With [`view_tensor`], the one safetensors reader of checkpoints ([`load`])
/// and `--weights` (`weights::read`): each decides which dtypes it accepts and says so in its own words.
pub(crate) fn candle_dtype(d: StDtype) -> Option<DType> {
    Some(match d {
        StDtype::F32 => DType::F32,
        StDtype::F64 => DType::F64,
        StDtype::F16 => DType::F16,
        StDtype::BF16 => DType::BF16,
        StDtype::I64 => DType::I64,
        StDtype::I32 => DType::I32,
        StDtype::U8 => DType::U8,
        _ => return None,
    })
}

/// A safetensors tensor as a CPU tensor of `dtype` (its [`candle_dtype`]): the file's little-endian bytes as
/// they are.
pub(crate) fn view_tensor(view: &TensorView<'_>, dtype: DType) -> candle_core::Result<Tensor> {
    Tensor::from_raw_buffer(view.data(), dtype, view.shape(), &Device::Cpu)
}

/// Reads a checkpoint. Errors name the file (usage errors, exit 2).
pub fn load(path: &Path) -> Result<(HashMap<String, Tensor>, Meta)> {
    let shown = path.display();
    let what = format!("--resume {shown}");
    let data = crate::files::read_whole(path, &what)?;
    if let Some(kind) = crate::files::binary_kind(&data[..data.len().min(16)]).filter(|k| !k.contains("safetensors")) {
        return Err(usage(format!(
            "--resume {shown}: {kind}, not a bnscope checkpoint (--checkpoint writes those)"
        )));
    }
    let (_, header) = safetensors::SafeTensors::read_metadata(&data)
        .map_err(|e| usage(format!("--resume {shown}: not a safetensors checkpoint ({e})")))?;
    let meta = header.metadata().as_ref().and_then(Meta::from_map).ok_or_else(|| {
        // A state_dict: PyTorch's names, or save_file's metadata.
        let plain = header
            .metadata()
            .as_ref()
            .is_some_and(|m| m.get("format").is_some_and(|f| f == "pt"))
            || header
                .tensors()
                .keys()
                .any(|k| k.ends_with(".running_mean") || k == "conv1.weight");
        usage(if plain {
            format!(
                "--resume {shown}: plain weights (a PyTorch state_dict), not a bnscope checkpoint; start from them \
                 with --weights"
            )
        } else {
            format!("--resume {shown}: not a bnscope checkpoint (metadata missing)")
        })
    })?;
    let st = safetensors::SafeTensors::deserialize(&data)
        .map_err(|e| usage(format!("--resume {shown}: corrupt checkpoint ({e})")))?;
    let mut out = HashMap::new();
    for (name, view) in st.tensors() {
        // A checkpoint holds what `serialize` writes: f32, and i64 counters.
        let t = match candle_dtype(view.dtype()).filter(|d| matches!(d, DType::F32 | DType::I64)) {
            Some(dtype) => view_tensor(&view, dtype)?,
            None => {
                return Err(usage(format!(
                    "--resume {shown}: unexpected dtype {:?} for {name}",
                    view.dtype()
                )))
            }
        };
        out.insert(name, t);
    }
    Ok((out, meta))
}
