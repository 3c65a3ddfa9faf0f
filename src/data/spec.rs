//! What `--data` names ([`DataSpec`]) and the generated `shapes` sets, held as bytes or drawn per batch.
use std::path::{Path, PathBuf};

use anyhow::Result;

use super::dataset::{empty, held_whole, try_zeroed, Dataset, LoadOptions, Marks, Progress, Store, MARKS_BOUND};
use crate::error::usage;

/// What `--data` names: nothing (the embedded seed images), `shapes[:N]` (generated) or an image folder. A folder
/// that is itself called `shapes` is given as `./shapes`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DataSpec {
    Embedded,
    /// `--data shapes[:N]`: N images per class.
    Shapes(usize),
    Dir(PathBuf),
}

impl DataSpec {
    /// Reads `--data`; `shapes:N` with N outside 1..=[`crate::shapes::MAX_PER_CLASS`] or not a number is a
    /// one-line error.
    pub fn parse(arg: Option<&Path>) -> Result<Self> {
        let Some(p) = arg else { return Ok(DataSpec::Embedded) };
        let Some(s) = p.to_str() else {
            return Ok(DataSpec::Dir(p.to_path_buf()));
        };
        let max = crate::shapes::MAX_PER_CLASS;
        match s.split_once(':') {
            None if s == "shapes" => Ok(DataSpec::Shapes(crate::shapes::DEFAULT_PER_CLASS)),
            Some(("shapes", n)) => match n.parse::<usize>() {
                Ok(n) if (1..=max).contains(&n) => Ok(DataSpec::Shapes(n)),
                _ => Err(usage(format!(
                    "--data {}: N must be a whole number from 1 to {max} (images per class), as in shapes:20",
                    crate::terminal::printable(s)
                ))),
            },
            _ => Ok(DataSpec::Dir(p.to_path_buf())),
        }
    }
}

/// The source label of a generated set: `shapes:20 (seed 1)`, `shapes:20 (seed 1, held-out)`.
pub fn shapes_source(per_class: usize, seed: u64, split: u64) -> String {
    match split {
        0 => format!("shapes:{per_class} (seed {seed})"),
        _ => format!("shapes:{per_class} (seed {seed}, held-out)"),
    }
}

/// `--data shapes:N`: the images of [`crate::shapes::stream`] at `opts.size` (drawn at that size, no resize), with
/// `opts`' normalisation; `split` 0 is the training set, 1 the held-out one (the same N per class, independent
/// images). Classes circle, square, triangle; images interleaved by class as generated. A set whose pixels fit
/// `opts.memory_bound` (as f32, the bound folders have) is drawn once and held as 8-bit values; a larger one is
/// *streamed*: one pass over the generator keeps where each image starts ([`Marks`]), and each batch is drawn
/// when it is needed, in parallel. Both give the same values (the same draws of one seeded stream).
pub fn shapes_with(per_class: usize, seed: u64, split: u64, opts: &LoadOptions) -> Result<Dataset> {
    shapes_with_progress(per_class, seed, split, opts, &())
}

/// [`shapes_with`], telling `progress` about each image drawn (or passed over, when streamed).
pub fn shapes_with_progress(
    per_class: usize,
    seed: u64,
    split: u64,
    opts: &LoadOptions,
    progress: &dyn Progress,
) -> Result<Dataset> {
    use crate::shapes::{self, CLASSES};
    let started = std::time::Instant::now();
    let mut ds = empty(opts, &shapes_source(per_class, seed, split));
    ds.classes = CLASSES.iter().map(|c| c.to_string()).collect();
    let n = per_class.saturating_mul(CLASSES.len());
    let per = ds.image_len();
    let source = ds.source.clone();
    ds.labels = try_zeroed(n, || format!("--data {source}: its labels"))?;
    for (k, l) in ds.labels.iter_mut().enumerate() {
        *l = k % CLASSES.len();
    }
    ds.names
        .try_reserve_exact(n)
        .map_err(|_| usage(format!("--data {source}: too many images")))?;
    ds.names.extend((0..n).map(shapes::name));
    progress.start(n);
    let mut rng = shapes::stream(seed, split);
    let fits = (n as u64)
        .checked_mul(per as u64 * std::mem::size_of::<f32>() as u64)
        .is_some_and(|b| b <= opts.memory_bound);
    if fits {
        let mut bytes: Vec<u8> = try_zeroed(n * per, || held_whole(&format!("--data {source}"), opts))?;
        for (k, out) in bytes.chunks_mut(per).enumerate() {
            shapes::draw_planes(k % CLASSES.len(), opts.size, &mut rng, out);
            progress.advance();
        }
        ds.store = Store::Bytes(bytes);
    } else {
        let every = (n * std::mem::size_of::<rand::rngs::StdRng>())
            .div_ceil(MARKS_BOUND)
            .max(1);
        let mut states = Vec::new();
        crate::alloc::fallible(|| states.try_reserve_exact(n.div_ceil(every)))
            .map_err(|_| usage(format!("--data {source}: too many images to stream")))?;
        for k in 0..n {
            if k % every == 0 {
                states.push(rng.clone());
            }
            shapes::skip(opts.size, &mut rng);
            progress.advance();
        }
        let ids: Vec<u32> = (0..n as u32).collect();
        ds.store = Store::Drawn {
            marks: std::sync::Arc::new(Marks { states, every }),
            ids,
        };
    }
    ds.load_time = started.elapsed();
    Ok(ds)
}
