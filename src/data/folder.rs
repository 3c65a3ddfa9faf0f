//! The embedded seed images and image-folder directories `DIR/<class>/<image>` (the rules in the module's doc).
use std::path::{Path, PathBuf};

use anyhow::Result;
use rayon::prelude::*;

use super::dataset::{empty, held_whole, try_zeroed, Dataset, LoadOptions, Progress, Store};
use super::decode::{decode_file, fill, read_into};
use super::MAX_CLASSES;
use crate::error::usage;
use crate::files;

const SEED: [(&str, &str, &[u8]); 3] = [
    ("cat", "cat.png", include_bytes!("../../data/seed3/cat/cat.png")),
    (
        "coffee",
        "coffee.png",
        include_bytes!("../../data/seed3/coffee/coffee.png"),
    ),
    (
        "rocket",
        "rocket.png",
        include_bytes!("../../data/seed3/rocket/rocket.png"),
    ),
];

/// The three seed images (cat, coffee, rocket) compiled into the binary, values in [0, 1].
pub fn embedded(size: usize) -> Result<Dataset> {
    embedded_with(&LoadOptions::new(size))
}

/// The seed images with `opts`' size and normalisation (always in memory).
pub fn embedded_with(opts: &LoadOptions) -> Result<Dataset> {
    let started = std::time::Instant::now();
    let table = opts.normalize.table();
    let per = 3 * opts.size * opts.size;
    let mut pixels = vec![0f32; SEED.len() * per];
    let mut ds = empty(opts, "embedded seed3");
    for (i, (class, name, bytes)) in SEED.iter().enumerate() {
        let img = image::load_from_memory(bytes)?;
        fill(&img, opts.size, &table, &mut pixels[i * per..(i + 1) * per]);
        ds.classes.push(class.to_string());
        ds.names.push(name.to_string());
        ds.labels.push(i);
    }
    ds.store = Store::Memory(pixels);
    ds.load_time = started.elapsed();
    Ok(ds)
}

fn hidden(p: &Path) -> bool {
    p.file_name()
        .map(|n| n.to_string_lossy().starts_with('.'))
        .unwrap_or(false)
}

fn is_image_name(p: &Path) -> bool {
    matches!(
        p.extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase())
            .as_deref(),
        Some("png" | "jpg" | "jpeg")
    )
}

fn sorted_entries(dir: &Path, flag: &str) -> Result<Vec<PathBuf>> {
    let rd =
        std::fs::read_dir(dir).map_err(|e| usage(format!("{flag} {}: cannot read directory: {e}", dir.display())))?;
    let mut v = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|e| usage(format!("{flag} {}: cannot read directory: {e}", dir.display())))?;
        v.push(entry.path());
    }
    v.sort();
    Ok(v)
}

/// Loads an image-folder directory with the default [`LoadOptions`] (no normalisation, [`MEMORY_BOUND`]).
pub fn load_dir(dir: &Path, size: usize) -> Result<Dataset> {
    load_dir_with(dir, &LoadOptions::new(size), &())
}

/// Loads an image-folder directory: lists the classes and files, then decodes every image once in parallel,
/// keeping the pixels when they fit `opts.memory_bound` and only checking them otherwise (streamed; see the
/// module's doc). The first bad file in data-set order is the error, whichever thread met it.
pub fn load_dir_with(dir: &Path, opts: &LoadOptions, progress: &dyn Progress) -> Result<Dataset> {
    let started = std::time::Instant::now();
    let shown = dir.display();
    let flag = opts.flag;
    let meta = std::fs::metadata(dir)
        .map_err(|e| usage(format!("{flag} {shown}: {}", files::io_reason_naming(&e, "directory"))))?;
    if !meta.is_dir() {
        return Err(usage(format!(
            "{flag} {shown}: not a directory (expected DIR/<class>/<image>)"
        )));
    }
    let class_dirs: Vec<PathBuf> = sorted_entries(dir, opts.flag)?
        .into_iter()
        .filter(|p| !hidden(p) && p.is_dir())
        .collect();
    if class_dirs.is_empty() {
        return Err(usage(format!(
            "{flag} {shown}: no class folders found (expected DIR/<class>/<image>)"
        )));
    }
    if class_dirs.len() < 2 {
        return Err(usage(format!(
            "{flag} {shown}: only one class folder ({}); classification needs at least two",
            class_dirs[0].file_name().unwrap_or_default().to_string_lossy()
        )));
    }
    if class_dirs.len() > MAX_CLASSES {
        return Err(usage(format!(
            "{flag} {shown}: {} class folders, more than the {MAX_CLASSES} bnscope supports",
            class_dirs.len()
        )));
    }
    let mut ds = empty(opts, &dir.display().to_string());
    let mut files = Vec::new();
    for (label, cdir) in class_dirs.iter().enumerate() {
        let class = cdir.file_name().unwrap_or_default().to_string_lossy().into_owned();
        let mut count = 0;
        for f in sorted_entries(cdir, opts.flag)? {
            if hidden(&f) || f.is_dir() {
                continue;
            }
            if !is_image_name(&f) {
                ds.ignored += 1;
                continue;
            }
            ds.names
                .push(f.file_name().unwrap_or_default().to_string_lossy().into_owned());
            ds.labels.push(label);
            files.push(f);
            count += 1;
        }
        if count == 0 {
            return Err(usage(format!(
                "{flag} {}: class folder has no .png/.jpg/.jpeg images",
                cdir.display()
            )));
        }
        ds.classes.push(class);
    }
    progress.start(files.len());
    let per = ds.image_len();
    let table = opts.normalize.table();
    let mut ids = vec![(0, 0); files.len()];
    let failed = if ds.decoded_bytes() <= opts.memory_bound {
        let mut pixels = try_zeroed(files.len() * per, || {
            held_whole(&format!("{flag} {shown}: its {} images", files.len()), opts)
        })?;
        let failed = pixels
            .par_chunks_mut(per)
            .zip(ids.par_iter_mut())
            .zip(files.par_iter())
            .map(|((out, id), f)| -> Result<()> {
                *id = read_into(f, opts.size, &table, out)?;
                progress.advance();
                Ok(())
            })
            .find_first(Result::is_err);
        ds.store = Store::Memory(pixels);
        failed
    } else {
        // Decoded and dropped: only the check (and the file's identity) is kept, one image per thread in memory.
        let failed = ids
            .par_iter_mut()
            .zip(files.par_iter())
            .map(|(id, f)| -> Result<()> {
                *id = decode_file(f)?.1;
                progress.advance();
                Ok(())
            })
            .find_first(Result::is_err);
        ds.store = Store::Files(files);
        failed
    };
    if let Some(Err(e)) = failed {
        return Err(e);
    }
    ds.file_ids = ids;
    ds.load_time = started.elapsed();
    Ok(ds)
}
