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
//!
//! The module's files, by job: `dataset` (the [`Dataset`] and where its pixels are), `decode` (one image file into
//! pixels), `folder` (the embedded seed images and image folders), `spec` (`--data` and the generated shapes),
//! `held_out` (`--val-split`, `--val`), `transform` (`--normalize`, `--val-transform`).
mod dataset;
mod decode;
mod folder;
mod held_out;
mod spec;
mod transform;

pub use dataset::{try_zeroed, Dataset, LoadOptions, Progress};
pub use decode::decode;
pub use folder::{embedded, embedded_with, load_dir, load_dir_with};
pub use spec::{shapes_source, shapes_with, shapes_with_progress, DataSpec};
pub use transform::{Normalize, ValTransform};

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
