//! One image file into pixels: the format from the content, the size checked before any pixel memory is
//! allocated (decompression bombs), RGB8, resized, through the normalisation's table.
use std::path::Path;

use anyhow::Result;
use image::{imageops::FilterType, DynamicImage, ImageReader, Limits};

use super::{MAX_ALLOC, MAX_SIDE};
use crate::error::usage;
use crate::format::human_bytes;

fn limits() -> Limits {
    let mut l = Limits::default();
    l.max_image_width = Some(MAX_SIDE);
    l.max_image_height = Some(MAX_SIDE);
    l.max_alloc = Some(MAX_ALLOC);
    l
}

/// Writes `img` as `(3, size, size)` into `out`: RGB8, resized, each byte through `table` (see [`Normalize`]).
pub(super) fn fill(img: &DynamicImage, size: usize, table: &[[f32; 256]; 3], out: &mut [f32]) {
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
pub(super) fn read_into(path: &Path, size: usize, table: &[[f32; 256]; 3], out: &mut [f32]) -> Result<(u64, u64)> {
    let (img, id) = decode_file(path)?;
    fill(&img, size, table, out);
    Ok(id)
}

/// Decodes one image file. The header is read first, so that an oversized image is refused before anything is
/// allocated for it.
pub fn decode(path: &Path) -> Result<DynamicImage> {
    decode_file(path).map(|(img, _)| img)
}

/// [`decode`], and the file's `(device, inode)`. Only a regular file is opened (a FIFO named `x.png` would block
/// forever).
pub(super) fn decode_file(path: &Path) -> Result<(DynamicImage, (u64, u64))> {
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
