//! Image data: the embedded seed images, or an image-folder directory `DIR/<class>/<image>`.
//!
//! Rules (also in docs/REFERENCE.md, "Data folders"):
//! * classes are the sub-directories of `DIR`, sorted by name (as Keras `image_dataset_from_directory` and
//!   torchvision `ImageFolder`); files inside a class are sorted by name;
//! * hidden entries (names starting with `.`) are skipped, and so are files whose extension is not
//!   `.png`, `.jpg` or `.jpeg` (counted in [`Dataset::ignored`]);
//! * the format is guessed from the content, so a JPEG named `.png` loads;
//! * grayscale, grey+alpha, RGBA, palette and 16-bit images become RGB8 (alpha dropped, as PIL's `convert("RGB")`);
//! * images are resized to `size×size` with a triangle (bilinear) filter and scaled to `[0, 1]`; with
//!   `--normalize imagenet` each channel is then normalised with ImageNet's mean and standard deviation, as
//!   torchvision's `transforms.Normalize` ([`Normalize`]);
//! * an image whose header declares more than [`MAX_SIDE`] pixels on a side or needs more than [`MAX_ALLOC`] bytes
//!   is refused before decoding (decompression bombs);
//! * any unreadable or undecodable image is an error naming the file (exit 2): a silently shrunken data set would
//!   change the experiment.
//!
//! Memory: a data set whose decoded pixels (`N·3·size²` f32) fit in [`MEMORY_BOUND`] is decoded once and kept in
//! memory; a larger one is *streamed*: only the sorted file list is kept and each batch is decoded when asked for,
//! in parallel on rayon's pool, so about one batch is in memory at a time. Either way every image is decoded once
//! while loading (in parallel), so a bad file is an error before training starts, not at epoch 7. Every access goes
//! through [`Dataset::pixels`] / [`Dataset::batch`], so both kinds give the same values.
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Result;
use candle_core::{Device, Tensor};
use image::{imageops::FilterType, DynamicImage, ImageReader, Limits};
use rayon::prelude::*;

use crate::error::usage;
use crate::format::human_bytes;

/// Largest accepted image side, in pixels.
pub const MAX_SIDE: u32 = 16_384;
/// Largest accepted decoded image, in bytes.
pub const MAX_ALLOC: u64 = 1 << 30;
/// Largest accepted number of classes.
pub const MAX_CLASSES: usize = 1000;

/// Most bytes of decoded pixels (`N·3·size²·4`) kept in memory; a larger data set is streamed. 512 MiB holds
/// 2,785 images at 224 px or 40,000 at 64 px: every 64-px experiment and a typical fine-tuning folder stay in
/// memory, while a folder of thousands of 224-px images (5,000 would be 2.8 GiB) does not add gigabytes to a
/// resnet50's own 2–4 GB of activations on an 8–16 GB machine.
pub const MEMORY_BOUND: u64 = 512 << 20;

/// Environment variable overriding [`MEMORY_BOUND`], in bytes (`0` streams every folder). A test hook, also useful
/// on a machine with much more or less memory.
pub const MEMORY_BOUND_ENV: &str = "BNSCOPE_DATA_MEMORY";

const SEED: [(&str, &str, &[u8]); 3] = [
    ("cat", "cat.png", include_bytes!("../data/seed3/cat/cat.png")),
    (
        "coffee",
        "coffee.png",
        include_bytes!("../data/seed3/coffee/coffee.png"),
    ),
    (
        "rocket",
        "rocket.png",
        include_bytes!("../data/seed3/rocket/rocket.png"),
    ),
];

/// Input normalisation after scaling to `[0, 1]` (`--normalize`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Normalize {
    /// Values in [0, 1].
    #[default]
    None,
    /// `(x − mean) / std` per channel with ImageNet's mean (0.485, 0.456, 0.406) and std (0.229, 0.224, 0.225),
    /// as torchvision's `transforms.Normalize` (what pretrained torchvision and timm weights expect).
    Imagenet,
}

impl Normalize {
    /// ImageNet's per-channel mean (RGB), as torchvision's reference scripts use it.
    pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
    /// ImageNet's per-channel standard deviation (RGB).
    pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

    pub fn name(self) -> &'static str {
        match self {
            Normalize::None => "none",
            Normalize::Imagenet => "imagenet",
        }
    }

    /// The input value of an 8-bit `byte` in channel `c`: `byte / 255`, then for ImageNet `(v − mean) / std`, in
    /// f32 as torchvision's `ToTensor` + `Normalize`.
    pub fn value(self, c: usize, byte: u8) -> f32 {
        let v = byte as f32 / 255.0;
        match self {
            Normalize::None => v,
            Normalize::Imagenet => (v - Self::IMAGENET_MEAN[c]) / Self::IMAGENET_STD[c],
        }
    }

    /// [`Self::value`] for every byte and channel (a lookup table: the same numbers, without the divisions).
    fn table(self) -> [[f32; 256]; 3] {
        let mut t = [[0f32; 256]; 3];
        for (c, row) in t.iter_mut().enumerate() {
            for (b, v) in row.iter_mut().enumerate() {
                *v = self.value(c, b as u8);
            }
        }
        t
    }
}

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
enum Store {
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
struct Marks {
    states: Vec<rand::rngs::StdRng>,
    every: usize,
}

/// The most bytes [`Marks`] keep (a generator's state is a few hundred bytes): beyond it, marks are spaced out.
const MARKS_BOUND: usize = 32 << 20;

/// `what` held whole in memory, for the error when that cannot be allocated: the bound it was held under, and how to
/// stream instead.
fn held_whole(what: &str, opts: &LoadOptions) -> String {
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
    store: Store,
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

fn limits() -> Limits {
    let mut l = Limits::default();
    l.max_image_width = Some(MAX_SIDE);
    l.max_image_height = Some(MAX_SIDE);
    l.max_alloc = Some(MAX_ALLOC);
    l
}

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

fn empty(opts: &LoadOptions, source: &str) -> Dataset {
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

/// Writes `img` as `(3, size, size)` into `out`: RGB8, resized, each byte through `table` (see [`Normalize`]).
fn fill(img: &DynamicImage, size: usize, table: &[[f32; 256]; 3], out: &mut [f32]) {
    let s = size as u32;
    let rgb = img.to_rgb8();
    let rgb = if rgb.width() == s && rgb.height() == s {
        rgb
    } else {
        image::imageops::resize(&rgb, s, s, FilterType::Triangle)
    };
    let plane = size * size;
    for (i, p) in rgb.pixels().enumerate() {
        for c in 0..3 {
            out[c * plane + i] = table[c][p[c] as usize];
        }
    }
}

/// Decodes `path` into `out` (see [`fill`]); returns the file's `(device, inode)`.
fn read_into(path: &Path, size: usize, table: &[[f32; 256]; 3], out: &mut [f32]) -> Result<(u64, u64)> {
    let (img, id) = decode_file(path)?;
    fill(&img, size, table, out);
    Ok(id)
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

/// Decodes one image file. The header is read first, so that an oversized image is refused before anything is
/// allocated for it.
pub fn decode(path: &Path) -> Result<DynamicImage> {
    decode_file(path).map(|(img, _)| img)
}

/// [`decode`], and the file's `(device, inode)`. Only a regular file is opened (a FIFO named `x.png` would block
/// forever).
fn decode_file(path: &Path) -> Result<(DynamicImage, (u64, u64))> {
    let fail = |what: String| usage(format!("{}: {what}", path.display()));
    // One pass over the file (compressed, so far smaller than the decoded image): its first bytes decide the format
    // before the rest is read, so a large file that is no image is refused without loading it; the header is
    // checked before any pixel memory is allocated.
    use std::io::Read;
    let read_err = |e: std::io::Error| fail(format!("cannot read image: {e}"));
    let what = format!("{}: cannot read image", path.display());
    let mut file = crate::files::open_regular(path, std::fs::OpenOptions::new().read(true), &what)?;
    let id = crate::files::file_id(&file.metadata().map_err(read_err)?);
    let mut bytes = Vec::new();
    file.by_ref().take(16).read_to_end(&mut bytes).map_err(read_err)?;
    if bytes.is_empty() {
        return Err(fail("empty file, not an image".into()));
    }
    let format = match image::guess_format(&bytes) {
        Ok(f @ (image::ImageFormat::Png | image::ImageFormat::Jpeg)) => f,
        Ok(other) => return Err(fail(format!("a {other:?} image; bnscope reads PNG and JPEG"))),
        Err(_) => return Err(fail("not a PNG or JPEG image (unrecognised content)".into())),
    };
    // The whole file is read at once: reserved first, so that a file too large to hold is an error, not an abort.
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    usize::try_from(len)
        .ok()
        .filter(|&n| crate::alloc::fallible(|| bytes.try_reserve_exact(n)).is_ok())
        .ok_or_else(|| {
            fail(format!(
                "cannot read image: {}, more than can be held in memory",
                human_bytes(len)
            ))
        })?;
    file.read_to_end(&mut bytes).map_err(read_err)?;
    let reader = || ImageReader::with_format(std::io::Cursor::new(&bytes[..]), format);
    let (w, h) = reader()
        .into_dimensions()
        .map_err(|e| fail(format!("cannot decode image: {e}")))?;
    if w == 0 || h == 0 {
        return Err(fail("image has zero size".into()));
    }
    if w > MAX_SIDE || h > MAX_SIDE {
        return Err(fail(format!(
            "image is {w}×{h} pixels, over the limit of {MAX_SIDE} a side; refusing to decode it"
        )));
    }
    let mut r = reader();
    r.limits(limits());
    let img = r.decode().map_err(|e| match e {
        image::ImageError::Limits(_) => fail(format!(
            "image is {w}×{h} pixels and needs more than {} MiB decoded; refusing to decode it",
            MAX_ALLOC >> 20
        )),
        e => fail(format!("cannot decode image: {e}")),
    })?;
    Ok((img, id))
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
    let meta = std::fs::metadata(dir).map_err(|e| usage(format!("{flag} {shown}: {}", io_reason(&e))))?;
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

fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such directory".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

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

impl Dataset {
    /// The images `idx` (data order kept) as a data set of their own, named `source`.
    fn subset(&self, idx: &[usize], source: String) -> Dataset {
        let per = self.image_len();
        let store = match &self.store {
            Store::Memory(p) => Store::Memory(idx.iter().flat_map(|&i| &p[i * per..(i + 1) * per]).copied().collect()),
            Store::Bytes(b) => Store::Bytes(idx.iter().flat_map(|&i| &b[i * per..(i + 1) * per]).copied().collect()),
            Store::Files(f) => Store::Files(idx.iter().map(|&i| f[i].clone()).collect()),
            Store::Drawn { marks, ids } => Store::Drawn {
                marks: marks.clone(),
                ids: idx.iter().map(|&i| ids[i]).collect(),
            },
        };
        Dataset {
            classes: self.classes.clone(),
            names: idx.iter().map(|&i| self.names[i].clone()).collect(),
            labels: idx.iter().map(|&i| self.labels[i]).collect(),
            size: self.size,
            source,
            ignored: 0,
            file_ids: if self.file_ids.len() == self.len() {
                idx.iter().map(|&i| self.file_ids[i]).collect()
            } else {
                Vec::new()
            },
            normalize: self.normalize,
            memory_bound: self.memory_bound,
            load_time: Duration::ZERO,
            store,
        }
    }

    /// `--val-split F`: the last ⌈F·n⌉ images of each class (in data order, i.e. by sorted file name) become the
    /// held-out set, the others stay for training. Deterministic. A class left without a training image is a
    /// one-line error; `frac` must be in (0, 1).
    pub fn split_held_out(self, frac: f64) -> Result<(Dataset, Dataset)> {
        if !(frac > 0.0 && frac < 1.0) {
            return Err(usage(format!(
                "--val-split {frac}: must be a fraction between 0 and 1 (0.2 holds out the last 20% of each class)"
            )));
        }
        let (mut train, mut held) = (Vec::new(), Vec::new());
        for (label, class) in self.classes.iter().enumerate() {
            let members: Vec<usize> = (0..self.len()).filter(|&i| self.labels[i] == label).collect();
            let n = members.len();
            // ⌈F·n⌉, without the rounding error of F·n (0.1·30 is 3.0000000000000004 in f64).
            let k = (frac * n as f64 - 1e-9).ceil().max(1.0) as usize;
            if k >= n {
                return Err(usage(format!(
                    "--val-split {frac}: class {} has {n} image{}; holding out {k} leaves none to train on",
                    crate::terminal::printable(class),
                    if n == 1 { "" } else { "s" }
                )));
            }
            train.extend_from_slice(&members[..n - k]);
            held.extend_from_slice(&members[n - k..]);
        }
        train.sort_unstable();
        held.sort_unstable();
        let t = self.subset(&train, self.source.clone());
        let mut t = Dataset {
            ignored: self.ignored,
            load_time: self.load_time,
            ..t
        };
        // Every file read stays an input that no output may overwrite.
        t.file_ids = self.file_ids.clone();
        let pct = (frac * 1e4).round() / 1e2;
        let h = self.subset(&held, format!("{} (last {pct}% of each class)", self.source));
        Ok((t, h))
    }

    /// A `--val DIR` set must have the training set's classes, in the same order, and its image size.
    pub fn check_held_out(&self, val: &Dataset, flag: &str) -> Result<()> {
        if val.classes != self.classes {
            return Err(usage(format!(
                "{flag} {}: its classes ({}) differ from the training data's ({}); the held-out set needs the same \
                 class folders",
                crate::terminal::printable(&val.source),
                crate::terminal::printable(&val.classes.join(", ")),
                crate::terminal::printable(&self.classes.join(", "))
            )));
        }
        if val.size != self.size || val.normalize != self.normalize {
            anyhow::bail!("the held-out set was loaded at another size or normalisation than the training set");
        }
        Ok(())
    }
}

/// `--val-transform`: a preprocessing mismatch applied to the evaluation inputs only (never to training or to a
/// recalibration), for lessons on shifted data. Each is a per-channel affine map of the values the data set gives.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ValTransform {
    /// The evaluation inputs are preprocessed as the training inputs.
    #[default]
    None,
    /// Pixels in 0..255 instead of 0..1 before any normalisation (Keras' "forgot to rescale": the model was
    /// trained with `Rescaling(1/255)` and is served raw bytes; torchvision: `ToTensor`'s /255 skipped).
    Scale255,
    /// The held-out data skips `--normalize imagenet`: values in 0..1 where the model saw (x − mean)/std.
    NoNormalize,
    /// Inverted pixels (255 − value, a photographic negative): a domain shift of every channel's mean.
    Invert,
}

impl ValTransform {
    pub fn name(self) -> &'static str {
        match self {
            ValTransform::None => "none",
            ValTransform::Scale255 => "scale255",
            ValTransform::NoNormalize => "no-normalize",
            ValTransform::Invert => "invert",
        }
    }

    /// The transform's per-channel `(scale, shift)` on values normalised with `n` (`None`: the identity).
    pub fn affine(self, n: Normalize) -> Option<([f32; 3], [f32; 3])> {
        // With v = byte/255 and z = (v − m)/s (m = 0, s = 1 without normalisation), so v = s·z + m:
        let (m, s) = match n {
            Normalize::None => ([0.0; 3], [1.0; 3]),
            Normalize::Imagenet => (Normalize::IMAGENET_MEAN, Normalize::IMAGENET_STD),
        };
        let per = |f: &dyn Fn(usize) -> (f32, f32)| {
            let v: Vec<(f32, f32)> = (0..3).map(f).collect();
            ([v[0].0, v[1].0, v[2].0], [v[0].1, v[1].1, v[2].1])
        };
        match self {
            ValTransform::None => None,
            // (255·v − m)/s = 255·z + 254·m/s
            ValTransform::Scale255 => Some(per(&|c| (255.0, 254.0 * m[c] / s[c]))),
            // v = s·z + m
            ValTransform::NoNormalize => Some(per(&|c| (s[c], m[c]))),
            // (1 − v − m)/s = −z + (1 − 2m)/s
            ValTransform::Invert => Some(per(&|c| (-1.0, (1.0 - 2.0 * m[c]) / s[c]))),
        }
    }

    /// `x` `(N, 3, H, W)` with the transform applied (values normalised with `n`).
    pub fn apply(self, x: &Tensor, n: Normalize) -> Result<Tensor> {
        let Some((scale, shift)) = self.affine(n) else {
            return Ok(x.clone());
        };
        let dev = x.device();
        let a = Tensor::from_slice(&scale, (1, 3, 1, 1), dev)?.to_dtype(x.dtype())?;
        let b = Tensor::from_slice(&shift, (1, 3, 1, 1), dev)?.to_dtype(x.dtype())?;
        Ok(x.broadcast_mul(&a)?.broadcast_add(&b)?)
    }

    /// A transform that means nothing with this normalisation is a one-line error.
    pub fn check(self, n: Normalize) -> Result<()> {
        if self == ValTransform::NoNormalize && n != Normalize::Imagenet {
            return Err(usage(
                "--val-transform no-normalize: only with --normalize imagenet (the inputs are not normalised)",
            ));
        }
        Ok(())
    }
}
