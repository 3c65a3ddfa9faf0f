//! The [`Dataset`]: names and labels in memory, pixels in memory or streamed (the module's doc), and how a set is
//! loaded ([`LoadOptions`], [`Progress`]).
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use candle_core::{Device, Tensor};
use rayon::prelude::*;

use super::decode::read_into;
use super::transform::Normalize;
use super::{MEMORY_BOUND, MEMORY_BOUND_ENV};
use crate::error::usage;
use crate::format::human_bytes;

/// How to load a data set. [`LoadOptions::new`] gives the defaults: no normalisation, [`MEMORY_BOUND`].
#[derive(Clone, Copy, Debug)]
pub struct LoadOptions {
    /// Square side images are resized to.
    pub size: usize,
    pub normalize: Normalize,
    /// Most bytes of decoded pixels kept in memory (see [`MEMORY_BOUND`]); over it the set is streamed.
    pub memory_bound: u64,
    /// The flag a folder's errors name: `--data` (the default) or `--val`.
    pub flag: &'static str,
}

impl LoadOptions {
    pub fn new(size: usize) -> Self {
        Self {
            size,
            normalize: Normalize::None,
            memory_bound: MEMORY_BOUND,
            flag: "--data",
        }
    }

    /// [`MEMORY_BOUND_ENV`] if set, else [`MEMORY_BOUND`]. A value that is not a whole number of bytes is an error
    /// naming the variable.
    pub fn memory_bound_from_env() -> Result<u64> {
        match std::env::var(MEMORY_BOUND_ENV) {
            Err(_) => Ok(MEMORY_BOUND),
            Ok(v) => v.trim().parse().map_err(|_| {
                usage(format!(
                    "{MEMORY_BOUND_ENV}={v:?}: must be a number of bytes (0 streams every data folder)"
                ))
            }),
        }
    }
}

/// Told how loading advances (a progress bar); called from several threads at once.
pub trait Progress: Sync {
    /// `images` files were found and are about to be decoded.
    fn start(&self, _images: usize) {}
    /// One more image was decoded.
    fn advance(&self) {}
}

/// No progress report.
impl Progress for () {}

/// Where the pixels are.
#[derive(Clone, Debug)]
pub(super) enum Store {
    /// `(N, 3, size, size)` row-major, already normalised.
    Memory(Vec<f32>),
    /// One file per image, decoded when a batch needs it.
    Files(Vec<PathBuf>),
    /// `(N, 3, size, size)` 8-bit values, each mapped through the normalisation when read (generated images: a
    /// quarter of the memory of f32).
    Bytes(Vec<u8>),
    /// Generated images drawn when a batch needs them (`--data shapes` over the memory bound): image `i` is image
    /// `ids[i]` of the generator's stream.
    Drawn {
        marks: std::sync::Arc<Marks>,
        ids: Vec<u32>,
    },
}

/// Where to start drawing any image of a generated set: the stream's state before every `every`-th image (see
/// [`crate::shapes::stream`]). An image is drawn from the nearest mark before it, skipping the images in between.
#[derive(Debug)]
pub(super) struct Marks {
    pub(super) states: Vec<rand::rngs::StdRng>,
    pub(super) every: usize,
}

/// The most bytes [`Marks`] keep (a generator's state is a few hundred bytes): beyond it, marks are spaced out.
pub(super) const MARKS_BOUND: usize = 32 << 20;

/// `what` held whole in memory, for the error when that cannot be allocated: the bound it was held under, and how to
/// stream instead.
pub(super) fn held_whole(what: &str, opts: &LoadOptions) -> String {
    format!(
        "{what}, held in memory (up to {MEMORY_BOUND_ENV}={} bytes of pixels; a lower value streams it)",
        opts.memory_bound
    )
}

/// A `Vec` of `n` zeros whose allocation may fail without aborting the process: a size that comes from the user
/// (a batch of large images) is a one-line error instead.
pub fn try_zeroed<T: Clone + Default>(n: usize, what: impl FnOnce() -> String) -> Result<Vec<T>> {
    let mut v: Vec<T> = Vec::new();
    crate::alloc::fallible(|| v.try_reserve_exact(n)).map_err(|_| {
        usage(format!(
            "{}: needs {} of memory, more than can be allocated here",
            what(),
            human_bytes((n as u64).saturating_mul(std::mem::size_of::<T>() as u64))
        ))
    })?;
    v.resize(n, T::default());
    Ok(v)
}

/// A data set: labels and names in memory, pixels in memory or streamed from the files (see the module's doc).
/// Every read of pixels goes through [`Dataset::pixels`] or [`Dataset::batch`].
#[derive(Clone, Debug)]
pub struct Dataset {
    pub classes: Vec<String>,
    /// File name of each image (`cat.png`).
    pub names: Vec<String>,
    pub labels: Vec<usize>,
    pub size: usize,
    /// `embedded seed3` or the directory given.
    pub source: String,
    /// Files skipped for their extension.
    pub ignored: usize,
    /// `(device, inode)` of every image file read, so that no output is ever written over an input.
    pub file_ids: Vec<(u64, u64)>,
    /// The normalisation every value read has had.
    pub normalize: Normalize,
    /// The bound the set was loaded under (see [`MEMORY_BOUND`]).
    pub memory_bound: u64,
    /// How long decoding everything once took while loading.
    pub load_time: Duration,
    pub(super) store: Store,
}

impl Dataset {
    pub fn len(&self) -> usize {
        self.labels.len()
    }
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
    /// Values per image: `3·size²`.
    pub fn image_len(&self) -> usize {
        3 * self.size * self.size
    }
    /// Bytes the whole set takes decoded (f32), whether or not it is held.
    pub fn decoded_bytes(&self) -> u64 {
        (self.len() * self.image_len() * std::mem::size_of::<f32>()) as u64
    }
    /// True when the pixels are decoded per batch instead of held in memory.
    pub fn streamed(&self) -> bool {
        matches!(self.store, Store::Files(_) | Store::Drawn { .. })
    }

    /// What loading did, for the summary line: `loaded` (held in memory), `checked` (files decoded once and
    /// streamed), `indexed` (generated images passed over once and drawn per batch).
    pub fn load_verb(&self) -> &'static str {
        match self.store {
            Store::Memory(_) | Store::Bytes(_) => "loaded",
            Store::Files(_) => "checked",
            Store::Drawn { .. } => "indexed",
        }
    }

    /// The buffer for `n` images' pixels, or a one-line error when it cannot be allocated.
    fn pixel_buffer(&self, n: usize) -> Result<Vec<f32>> {
        try_zeroed(n.saturating_mul(self.image_len()), || {
            format!(
                "a batch of {n} image{} at {} px",
                if n == 1 { "" } else { "s" },
                self.size
            )
        })
    }

    /// The images `idx` (in that order), `(idx.len(), 3, size, size)` row-major, normalised. In memory a copy;
    /// streamed, the files are decoded in parallel on rayon's pool. An error names the file.
    pub fn pixels(&self, idx: &[u32]) -> Result<Vec<f32>> {
        let per = self.image_len();
        if let Some(&i) = idx.iter().find(|&&i| i as usize >= self.len()) {
            anyhow::bail!("image {i} asked for, but the data set has {}", self.len());
        }
        let mut out = self.pixel_buffer(idx.len())?;
        match &self.store {
            Store::Memory(p) => {
                for (o, &i) in out.chunks_mut(per).zip(idx) {
                    let i = i as usize;
                    o.copy_from_slice(&p[i * per..(i + 1) * per]);
                }
                Ok(out)
            }
            Store::Bytes(b) => {
                let table = self.normalize.table();
                let plane = self.size * self.size;
                for (o, &i) in out.chunks_mut(per).zip(idx) {
                    let i = i as usize;
                    for (k, (o, &v)) in o.iter_mut().zip(&b[i * per..(i + 1) * per]).enumerate() {
                        *o = table[k / plane][v as usize];
                    }
                }
                Ok(out)
            }
            Store::Drawn { marks, ids } => {
                let table = self.normalize.table();
                let plane = self.size * self.size;
                let size = self.size;
                out.par_chunks_mut(per).zip(idx.par_iter()).for_each(|(o, &i)| {
                    let k = ids[i as usize] as usize;
                    let mut rng = marks.states[k / marks.every].clone();
                    for _ in (k / marks.every) * marks.every..k {
                        crate::shapes::skip(size, &mut rng);
                    }
                    let mut bytes = vec![0u8; per];
                    crate::shapes::draw_planes(k % crate::shapes::CLASSES.len(), size, &mut rng, &mut bytes);
                    for (j, (o, &v)) in o.iter_mut().zip(&bytes).enumerate() {
                        *o = table[j / plane][v as usize];
                    }
                });
                Ok(out)
            }
            Store::Files(files) => {
                let table = self.normalize.table();
                let failed = out
                    .par_chunks_mut(per)
                    .zip(idx.par_iter())
                    .map(|(o, &i)| read_into(&files[i as usize], self.size, &table, o).map(|_| ()))
                    .find_first(|r| r.is_err());
                match failed {
                    Some(Err(e)) => Err(e),
                    _ => Ok(out),
                }
            }
        }
    }

    /// [`Self::pixels`] as a tensor `(idx.len(), 3, size, size)` on `dev`: what the trainer feeds the model.
    pub fn batch(&self, idx: &[u32], dev: &Device) -> Result<Tensor> {
        let s = self.size;
        Ok(Tensor::from_vec(self.pixels(idx)?, (idx.len(), 3, s, s), dev)?)
    }

    /// One line for the user: `5000 images, 10 classes, streamed (2.8 GiB decoded > 512 MiB; …)`.
    pub fn summary(&self) -> String {
        let bytes = self.decoded_bytes();
        let how = if let Store::Drawn { .. } = self.store {
            format!(
                "streamed ({} decoded > {}; each batch drawn when needed)",
                human_bytes(bytes),
                human_bytes(self.memory_bound)
            )
        } else if self.streamed() {
            format!(
                "streamed ({} decoded > {}; each batch decoded when needed)",
                human_bytes(bytes),
                human_bytes(self.memory_bound)
            )
        } else {
            format!("in memory ({} decoded)", human_bytes(bytes))
        };
        let norm = match self.normalize {
            Normalize::None => String::new(),
            n => format!(", normalize {}", n.name()),
        };
        format!(
            "{} {}, {} classes, {how}{norm}",
            self.len(),
            if self.len() == 1 { "image" } else { "images" },
            self.classes.len()
        )
    }
}

/// A data set with no images yet, loaded under `opts`, named `source`.
pub(super) fn empty(opts: &LoadOptions, source: &str) -> Dataset {
    Dataset {
        classes: vec![],
        names: vec![],
        labels: vec![],
        size: opts.size,
        source: source.into(),
        ignored: 0,
        file_ids: Vec::new(),
        normalize: opts.normalize,
        memory_bound: opts.memory_bound,
        load_time: Duration::ZERO,
        store: Store::Memory(Vec::new()),
    }
}
