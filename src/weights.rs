//! A PyTorch `state_dict` in and out: `--weights FILE.safetensors` and `--save-weights FILE.safetensors`.
//!
//! The file is what `safetensors.torch.save_file(model.state_dict(), F)` writes for a torchvision (or timm)
//! ResNet: `conv1.weight`, `bn1.{weight,bias,running_mean,running_var,num_batches_tracked}`,
//! `layer1.0.conv1.weight`, `layer2.0.downsample.{0,1}.*`, `fc.{weight,bias}`. Floating-point tensors may be
//! f32, f64, f16 or bf16 (read as f32); `num_batches_tracked` is an integer.
//!
//! Import is strict, as PyTorch's `load_state_dict(strict=True)`: every tensor of the model must be there with its
//! shape, and nothing else may be. The one exception is the classifier: when the data has another number of
//! classes than `fc`, the caller keeps a freshly initialised head (fine-tuning).
use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::Result;
use candle_core::{DType, Tensor};

use crate::error::usage;
use crate::model::{BlockKind, Preset, ResNet};

/// A state_dict read from a file, with the architecture its keys describe.
#[derive(Clone, Debug)]
pub struct Imported {
    pub path: PathBuf,
    pub preset: Preset,
    /// torchvision names; f32 tensors, `num_batches_tracked` as i64; on the CPU.
    pub tensors: HashMap<String, Tensor>,
    /// Rows of the file's `fc.weight`: the classes it was trained for.
    pub classes: usize,
}

fn shown(path: &Path) -> String {
    crate::terminal::printable(&path.display().to_string()).into_owned()
}

/// Reads every tensor of a safetensors file. `flag` names the file in errors (`--weights F`).
pub fn read(path: &Path, flag: &str) -> Result<HashMap<String, Tensor>> {
    let what = format!("{flag} {}", shown(path));
    let bytes = crate::files::read_whole(path, &what)?;
    if let Some(kind) = crate::files::binary_kind(&bytes[..bytes.len().min(16)]).filter(|k| !k.contains("safetensors"))
    {
        let name = shown(path);
        return Err(usage(if kind.contains("zip") || kind.contains("pickle") {
            format!(
                "{what}: a PyTorch pickle (torch.save), not a safetensors file; convert it with `python \
                 scripts/export_torchvision.py MODEL out.safetensors --checkpoint {name}` (MODEL: resnet18 … \
                 resnet152, the architecture it was saved from) and give --weights out.safetensors"
            )
        } else {
            format!("{what}: {kind}, not weights; save a state_dict with safetensors.torch.save_file(model.state_dict(), F)")
        }));
    }
    let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| {
        usage(format!(
            "{what}: not a safetensors file, or cut short ({e}); save one with safetensors.torch.save_file(model.state_dict(), F)"
        ))
    })?;
    // A bnscope checkpoint (its metadata, or the optimizer's moments only checkpoints hold), told as such before
    // any tensor is looked at: its `optim.step` is an integer that a state_dict would not have.
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| usage(format!("{what}: {e}")))?;
    let is_checkpoint = header
        .metadata()
        .as_ref()
        .is_some_and(|m| m.get("format").is_some_and(|f| f.starts_with("bnscope-checkpoint")));
    let mut optim: Vec<String> = st
        .names()
        .into_iter()
        .filter(|k| k.starts_with("optim."))
        .map(String::from)
        .collect();
    optim.sort();
    if is_checkpoint || !optim.is_empty() {
        let holds = optim.first().map_or(String::new(), |k| format!(" (it holds {k})"));
        return Err(usage(format!(
            "{what}: a bnscope checkpoint{holds}; continue it with --resume, or export plain weights with \
             --save-weights"
        )));
    }
    let mut out = HashMap::new();
    for (name, view) in st.tensors() {
        let counter = name.ends_with(".num_batches_tracked");
        let Some(dtype) = crate::checkpoint::candle_dtype(view.dtype()) else {
            return Err(usage(format!(
                "{what}: {name} is {:?}, which bnscope does not read (f32, f64, f16, bf16; integers for num_batches_tracked)",
                view.dtype()
            )));
        };
        let float = matches!(dtype, DType::F32 | DType::F64 | DType::F16 | DType::BF16);
        if counter == float {
            let want = if counter {
                "an integer"
            } else {
                "a floating-point tensor"
            };
            return Err(usage(format!("{what}: {name} is {:?}, expected {want}", view.dtype())));
        }
        let t = crate::checkpoint::view_tensor(&view, dtype)
            .and_then(|t| t.to_dtype(if counter { DType::I64 } else { DType::F32 }))
            .map_err(|e| usage(format!("{what}: {name}: {e}")))?;
        out.insert(name, t);
    }
    if out.is_empty() {
        return Err(usage(format!("{what}: holds no tensors")));
    }
    Ok(out)
}

/// Reads `path` and works out which preset its keys describe (or checks them against `model`). Every mismatch
/// is a one-line usage error naming the file.
pub fn import(path: &Path, model: Option<Preset>) -> Result<Imported> {
    let what = format!("--weights {}", shown(path));
    let mut tensors = read(path, "--weights")?;
    // DistributedDataParallel's `module.` prefix, as the Python hook drops it.
    if tensors.keys().all(|k| k.starts_with("module.")) {
        tensors = tensors
            .into_iter()
            .map(|(k, v)| (k["module.".len()..].to_string(), v))
            .collect();
    }
    let preset = match model {
        Some(p) => p,
        None => infer(&tensors).map_err(|why| usage(format!("{what}: {why}")))?,
    };
    let classes = match tensors.get("fc.weight").map(|t| t.dims().to_vec()) {
        Some(d) if d.len() == 2 => d[0],
        _ => 0,
    };
    Ok(Imported {
        path: path.to_path_buf(),
        preset,
        tensors,
        classes,
    })
}

/// The preset whose torchvision keys these are: the stem's kernel (7×7: torchvision, 3×3: tiny), basic or
/// bottleneck blocks (`layer1.0.conv3` exists), and the blocks per stage.
pub fn infer(t: &HashMap<String, Tensor>) -> std::result::Result<Preset, String> {
    let stem = t.get("conv1.weight").ok_or_else(|| {
        let mut some: Vec<&String> = t.keys().collect();
        some.sort();
        let some: Vec<&str> = some.iter().take(3).map(|s| s.as_str()).collect();
        format!(
            "not a torchvision/timm ResNet state_dict: no conv1.weight (it starts with {})",
            some.join(", ")
        )
    })?;
    let k = stem.dims().get(2).copied().unwrap_or(0);
    let block = if t.contains_key("layer1.0.conv3.weight") {
        BlockKind::Bottleneck
    } else {
        BlockKind::Basic
    };
    let mut counts = Vec::new();
    for stage in 1.. {
        let prefix = format!("layer{stage}.");
        let n = t
            .keys()
            .filter_map(|key| key.strip_prefix(&prefix))
            .filter_map(|rest| rest.split('.').next()?.parse::<usize>().ok())
            .max();
        match n {
            Some(n) => counts.push(n + 1),
            None => break,
        }
    }
    let found = Preset::ALL
        .into_iter()
        .find(|p| p.block() == block && p.blocks_per_stage() == counts.as_slice() && (k == 3) == (*p == Preset::Tiny));
    found.ok_or_else(|| {
        let kind = match block {
            BlockKind::Basic => "basic",
            BlockKind::Bottleneck => "bottleneck",
        };
        format!(
            "a ResNet with {kind} blocks {counts:?} per stage and a {k}×{k} stem, which is none of bnscope's models \
             (resnet18/34: basic [2,2,2,2]/[3,4,6,3]; resnet50/101/152: bottleneck [3,4,6,3]/[3,4,23,3]/[3,8,36,3]; \
             tiny: basic [1,1,1], 3×3 stem)"
        )
    })
}

/// Checks `imported` against `model` as PyTorch's strict `load_state_dict` does and copies it in: parameters,
/// running statistics and `num_batches_tracked` (which becomes the layer's t). With `keep_head`, `fc` is not
/// copied (the data has another number of classes; the model keeps its fresh classifier) and its shape is not
/// checked. Running statistics imported with t > 0 are taken to be a moving average at PyTorch's default
/// momentum (0.1), so the (0, 1) start's weight in them is 0.9^t.
pub fn apply(model: &mut ResNet, imported: &Imported, keep_head: bool) -> Result<()> {
    let what = format!("--weights {}", shown(&imported.path));
    let expected = model.state_dict()?;
    let is_head = |k: &str| keep_head && (k == "fc.weight" || k == "fc.bias");
    let mut missing: Vec<&String> = expected.keys().filter(|k| !imported.tensors.contains_key(*k)).collect();
    let mut unexpected: Vec<&String> = imported.tensors.keys().filter(|k| !expected.contains_key(*k)).collect();
    let mut shapes: Vec<String> = Vec::new();
    for (k, want) in &expected {
        if let Some(got) = imported.tensors.get(k) {
            let counter = k.ends_with(".num_batches_tracked") && got.elem_count() == 1;
            if got.dims() != want.dims() && !counter && !is_head(k) {
                shapes.push(format!(
                    "{k} is {:?} in the file, {:?} in {}",
                    got.dims(),
                    want.dims(),
                    imported.preset
                ));
            }
        }
    }
    if !missing.is_empty() || !unexpected.is_empty() || !shapes.is_empty() {
        missing.sort();
        unexpected.sort();
        shapes.sort();
        let list = |v: Vec<String>| {
            let n = v.len();
            let mut s = v.into_iter().take(3).collect::<Vec<_>>().join(", ");
            if n > 3 {
                s.push_str(&format!(" (+{} more)", n - 3));
            }
            s
        };
        let mut parts = Vec::new();
        if !missing.is_empty() {
            parts.push(format!("missing {}", list(missing.into_iter().cloned().collect())));
        }
        if !unexpected.is_empty() {
            parts.push(format!(
                "unexpected {}",
                list(unexpected.into_iter().cloned().collect())
            ));
        }
        if !shapes.is_empty() {
            parts.push(format!("shape mismatch: {}", list(shapes)));
        }
        return Err(usage(format!(
            "{what}: does not match {} (strict load): {}",
            imported.preset,
            parts.join("; ")
        )));
    }
    let mut sd: HashMap<String, Tensor> = imported.tensors.clone();
    if keep_head {
        for k in ["fc.weight", "fc.bias"] {
            // A copy: a variable cannot be set from its own storage.
            sd.insert(k.into(), expected[k].copy()?);
        }
    }
    model.load_state_dict(&sd).map_err(|e| usage(format!("{what}: {e}")))?;
    for bn in model.bn_layers_mut() {
        let t = bn.t();
        let w = if t == 0 { 1.0 } else { 0.9f64.powf(t as f64) };
        bn.set_history(w, None);
    }
    Ok(())
}

/// What to tell the user about importing `imported` for a data set of `classes` classes: a classifier that is
/// replaced, a tensor holding NaN/Inf (imported as it is, for the diagnosis to name, but not silently).
pub fn notices(imported: &Imported, classes: usize) -> Result<Vec<String>> {
    let what = format!("--weights {}", shown(&imported.path));
    let mut v = Vec::new();
    if imported.classes != classes {
        v.push(format!(
            "bnscope: {what}: its classifier has {} classes, the data {classes}: fine-tuning with a new fc \
             (freshly initialised); the rest is imported",
            imported.classes
        ));
    }
    if let Some(bad) = first_non_finite(&imported.tensors)? {
        v.push(format!("bnscope: {what}: {bad} holds NaN or Inf"));
    }
    Ok(v)
}

/// The name of the first tensor (sorted) holding NaN or Inf.
pub fn first_non_finite(tensors: &HashMap<String, Tensor>) -> Result<Option<String>> {
    let mut names: Vec<&String> = tensors.keys().collect();
    names.sort();
    for name in names {
        let t = &tensors[name];
        if t.dtype() == DType::I64 {
            continue;
        }
        let v = t.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()?;
        if v.iter().any(|x| !x.is_finite()) {
            return Ok(Some(name.clone()));
        }
    }
    Ok(None)
}

/// Writes `model` as a PyTorch state_dict (torchvision names, f32, `num_batches_tracked` as a 0-d int64), loadable
/// with `model.load_state_dict(safetensors.torch.load_file(F), strict=True)`. Atomic; never writes NaN/Inf.
pub fn save(path: &Path, model: &ResNet) -> Result<()> {
    let what = format!("--save-weights {}", shown(path));
    let sd = model.state_dict()?;
    if let Some(bad) = first_non_finite(&sd)? {
        let kept = if path.exists() {
            "the file there is left as it was"
        } else {
            "no file was written"
        };
        anyhow::bail!(crate::error::NotWritten(format!(
            "{what}: not written: {bad} holds NaN/Inf; {kept}"
        )));
    }
    let mut meta = HashMap::new();
    // What safetensors.torch.save_file writes.
    meta.insert("format".to_string(), "pt".to_string());
    meta.insert(
        "written_by".to_string(),
        format!("bnscope {}", env!("CARGO_PKG_VERSION")),
    );
    meta.insert("model".to_string(), model.preset().name().to_string());
    let bytes = crate::checkpoint::serialize(&sd, meta)?;
    crate::checkpoint::write_atomically(path, &bytes)
        .map_err(|e| anyhow::anyhow!("{what}: cannot write: {}", crate::files::io_reason(&e)))
}

/// Checks at start-up that `--save-weights` can be written, before anything trains: not the `--weights` file
/// itself, not a directory (nor a name ending in `/`), not a FIFO or device, not an existing file that is not a
/// safetensors file or that the user may not write, in a directory that exists and takes a new file (a test file
/// of a unique name is created there and removed again: a read-only directory or file system is found now, not
/// after training). Returns the lock that keeps another bnscope off this file for as long as it is held.
pub fn prepare_save(path: &Path, weights: Option<&Path>) -> Result<Option<crate::files::PathLock>> {
    let what = format!("--save-weights {}", shown(path));
    if path.as_os_str().as_encoded_bytes().ends_with(b"/") || path.file_name().is_none() {
        return Err(usage(format!(
            "{what}: names a directory; give a file name such as weights.safetensors"
        )));
    }
    if let Some(w) = weights.filter(|w| crate::files::same_file(path, w)) {
        return Err(usage(format!(
            "{what}: the same file as --weights {}; give a new name so the imported weights stay as they are",
            shown(w)
        )));
    }
    let target = crate::files::resolve(path).map_err(|e| {
        usage(match e.kind() {
            std::io::ErrorKind::NotFound => format!("{what}: its directory does not exist"),
            _ => format!("{what}: {}", crate::files::io_reason(&e)),
        })
    })?;
    match std::fs::metadata(&target) {
        Ok(m) if m.is_dir() => {
            return Err(usage(format!(
                "{what}: is a directory; give a file name such as {}",
                Path::new(path.as_os_str()).join("weights.safetensors").display()
            )))
        }
        Ok(m) if crate::files::not_regular(&m).is_some() => {
            return Err(usage(format!(
                "{what}: not a regular file ({}); give a regular file or a new name",
                crate::files::not_regular(&m).unwrap_or("not a regular file")
            )))
        }
        Ok(m) if m.len() > 0 && !looks_like_safetensors(&target) => {
            return Err(usage(format!(
                "{what}: exists and is not a safetensors file; move it away or choose another name"
            )))
        }
        Ok(m) if m.len() > 0 && crate::checkpoint::is_checkpoint(&target) => {
            return Err(usage(format!(
                "{what}: a bnscope checkpoint is there (continue it with --resume); plain weights would replace it \
                 and it could not be resumed again; choose another name"
            )))
        }
        Ok(_) if !writable(&target) => {
            return Err(usage(format!(
                "{what}: the file there is read-only; make it writable or choose another name"
            )))
        }
        _ => {}
    }
    crate::checkpoint::can_create_beside(&target)
        .map_err(|e| usage(format!("{what}: cannot write there: {}", crate::files::io_reason(&e))))?;
    crate::files::lock_path(&target, &what, "two runs cannot share one weights file")
}

/// Whether this user may write the existing file `path` (its permission bits, as `access(2)` sees them).
fn writable(path: &Path) -> bool {
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()) else {
        return false;
    };
    // SAFETY: access(2) with a valid C string.
    unsafe { libc::access(c.as_ptr(), libc::W_OK) == 0 }
}

fn looks_like_safetensors(path: &Path) -> bool {
    let check = || -> Option<bool> {
        let mut f = std::fs::File::open(path).ok()?;
        let mut n = [0u8; 8];
        f.read_exact(&mut n).ok()?;
        let n = u64::from_le_bytes(n);
        if n == 0 || n > 100 << 20 {
            return Some(false);
        }
        let mut b = [0u8; 1];
        f.read_exact(&mut b).ok()?;
        Some(b[0] == b'{')
    };
    check().unwrap_or(false)
}
