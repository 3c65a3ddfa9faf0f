//! Image data: the embedded seed images, or an image-folder directory `DIR/<class>/<image>`.
//!
//! Rules (also in README, "Data folders"):
//! * classes are the sub-directories of `DIR`, sorted by name (as Keras `image_dataset_from_directory` and
//!   torchvision `ImageFolder`); files inside a class are sorted by name;
//! * hidden entries (names starting with `.`) are skipped, and so are files whose extension is not
//!   `.png`, `.jpg` or `.jpeg` (counted in [`Dataset::ignored`]);
//! * the format is guessed from the content, so a JPEG named `.png` loads;
//! * grayscale, grey+alpha, RGBA, palette and 16-bit images become RGB8 (alpha dropped, as PIL's `convert("RGB")`);
//! * images are resized to `size×size` with a triangle (bilinear) filter and scaled to `[0, 1]`;
//! * an image whose header declares more than [`MAX_SIDE`] pixels on a side or needs more than [`MAX_ALLOC`] bytes
//!   is refused before decoding (decompression bombs);
//! * any unreadable or undecodable image is an error naming the file (exit 2): a silently shrunken data set would
//!   change the experiment.
use std::path::{Path, PathBuf};

use anyhow::Result;
use image::{imageops::FilterType, DynamicImage, ImageReader, Limits};

use crate::error::usage;

/// Largest accepted image side, in pixels.
pub const MAX_SIDE: u32 = 16_384;
/// Largest accepted decoded image, in bytes.
pub const MAX_ALLOC: u64 = 1 << 30;
/// Largest accepted number of classes.
pub const MAX_CLASSES: usize = 1000;

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

/// Images in memory, `(N, 3, size, size)` row-major, values in `[0, 1]`.
#[derive(Clone, Debug)]
pub struct Dataset {
    pub classes: Vec<String>,
    /// File name of each image (`cat.png`).
    pub names: Vec<String>,
    pub labels: Vec<usize>,
    pub pixels: Vec<f32>,
    pub size: usize,
    /// `embedded seed3` or the directory given.
    pub source: String,
    /// Files skipped for their extension.
    pub ignored: usize,
    /// `(device, inode)` of every image file read, so that no output is ever written over an input.
    pub file_ids: Vec<(u64, u64)>,
}

impl Dataset {
    pub fn len(&self) -> usize {
        self.labels.len()
    }
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

fn limits() -> Limits {
    let mut l = Limits::default();
    l.max_image_width = Some(MAX_SIDE);
    l.max_image_height = Some(MAX_SIDE);
    l.max_alloc = Some(MAX_ALLOC);
    l
}

/// The three seed images (cat, coffee, rocket) compiled into the binary.
pub fn embedded(size: usize) -> Result<Dataset> {
    let mut ds = empty(size, "embedded seed3");
    for (i, (class, name, bytes)) in SEED.iter().enumerate() {
        let img = image::load_from_memory(bytes)?;
        ds.classes.push(class.to_string());
        push(&mut ds, name.to_string(), i, &img);
    }
    Ok(ds)
}

fn empty(size: usize, source: &str) -> Dataset {
    Dataset {
        classes: vec![],
        names: vec![],
        labels: vec![],
        pixels: vec![],
        size,
        source: source.into(),
        ignored: 0,
        file_ids: Vec::new(),
    }
}

fn push(ds: &mut Dataset, name: String, label: usize, img: &DynamicImage) {
    let s = ds.size as u32;
    let rgb = img.to_rgb8();
    let rgb = if rgb.width() == s && rgb.height() == s {
        rgb
    } else {
        image::imageops::resize(&rgb, s, s, FilterType::Triangle)
    };
    let plane = (s * s) as usize;
    let start = ds.pixels.len();
    ds.pixels.resize(start + 3 * plane, 0.0);
    for (i, p) in rgb.pixels().enumerate() {
        for c in 0..3 {
            ds.pixels[start + c * plane + i] = p[c] as f32 / 255.0;
        }
    }
    ds.names.push(name);
    ds.labels.push(label);
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

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>> {
    let rd =
        std::fs::read_dir(dir).map_err(|e| usage(format!("--data {}: cannot read directory: {e}", dir.display())))?;
    let mut v = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|e| usage(format!("--data {}: cannot read directory: {e}", dir.display())))?;
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

/// Loads an image-folder directory.
pub fn load_dir(dir: &Path, size: usize) -> Result<Dataset> {
    let shown = dir.display();
    let meta = std::fs::metadata(dir).map_err(|e| usage(format!("--data {shown}: {}", io_reason(&e))))?;
    if !meta.is_dir() {
        return Err(usage(format!(
            "--data {shown}: not a directory (expected DIR/<class>/<image>)"
        )));
    }
    let class_dirs: Vec<PathBuf> = sorted_entries(dir)?
        .into_iter()
        .filter(|p| !hidden(p) && p.is_dir())
        .collect();
    if class_dirs.is_empty() {
        return Err(usage(format!(
            "--data {shown}: no class folders found (expected DIR/<class>/<image>)"
        )));
    }
    if class_dirs.len() < 2 {
        return Err(usage(format!(
            "--data {shown}: only one class folder ({}); classification needs at least two",
            class_dirs[0].file_name().unwrap_or_default().to_string_lossy()
        )));
    }
    if class_dirs.len() > MAX_CLASSES {
        return Err(usage(format!(
            "--data {shown}: {} class folders, more than the {MAX_CLASSES} bnscope supports",
            class_dirs.len()
        )));
    }
    let mut ds = empty(size, &dir.display().to_string());
    for (label, cdir) in class_dirs.iter().enumerate() {
        let class = cdir.file_name().unwrap_or_default().to_string_lossy().into_owned();
        let mut count = 0;
        for f in sorted_entries(cdir)? {
            if hidden(&f) || f.is_dir() {
                continue;
            }
            if !is_image_name(&f) {
                ds.ignored += 1;
                continue;
            }
            let (img, id) = decode_file(&f)?;
            ds.file_ids.push(id);
            push(
                &mut ds,
                f.file_name().unwrap_or_default().to_string_lossy().into_owned(),
                label,
                &img,
            );
            count += 1;
        }
        if count == 0 {
            return Err(usage(format!(
                "--data {}: class folder has no .png/.jpg/.jpeg images",
                cdir.display()
            )));
        }
        ds.classes.push(class);
    }
    Ok(ds)
}

fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such directory".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}
