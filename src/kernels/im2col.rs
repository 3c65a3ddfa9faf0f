//! im2col / col2im for square-or-not 2-D convolutions (dilation 1, one group), NCHW, f32.
//!
//! The column matrix has one row per `(ci, ky, kx)` (`K = C·KH·KW` rows) and one column per output pixel of the
//! images `n0..n1`, image-major: column `(n − n0)·P + oy·OW + ox`, `P = OH·OW`. Converting a batch at once
//! (rather than image by image) makes the gemm's N dimension `N·P` instead of `P`, which matters at 7×7.
use rayon::prelude::*;

use super::buf::SendPtr;

/// Geometry of one convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geom {
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub kh: usize,
    pub kw: usize,
    pub stride: usize,
    pub pad: usize,
    pub oh: usize,
    pub ow: usize,
}

/// Below this many column elements the conversion runs on one thread (rayon's fork/join is a few µs).
const PAR_MIN: usize = 1 << 15;

impl Geom {
    #[allow(clippy::too_many_arguments)]
    pub fn new(n: usize, c: usize, h: usize, w: usize, kh: usize, kw: usize, stride: usize, pad: usize) -> Self {
        let oh = (h + 2 * pad - kh) / stride + 1;
        let ow = (w + 2 * pad - kw) / stride + 1;
        Self {
            n,
            c,
            h,
            w,
            kh,
            kw,
            stride,
            pad,
            oh,
            ow,
        }
    }
    /// Rows of the column matrix.
    pub fn k(&self) -> usize {
        self.c * self.kh * self.kw
    }
    /// Output pixels per image.
    pub fn p(&self) -> usize {
        self.oh * self.ow
    }
    /// 1×1, stride 1, no padding: the column matrix of one image is the image itself.
    pub fn pointwise(&self) -> bool {
        self.kh == 1 && self.kw == 1 && self.stride == 1 && self.pad == 0
    }
    /// Valid output columns `[lo, hi)` for kernel column `kx` (those that read inside the image).
    fn ox_range(&self, kx: usize) -> (usize, usize) {
        let (s, p) = (self.stride, self.pad);
        let lo = if p > kx { (p - kx).div_ceil(s) } else { 0 };
        let hi = if self.w + p > kx {
            ((self.w + p - kx).div_ceil(s)).min(self.ow)
        } else {
            0
        };
        (lo.min(hi), hi)
    }
    /// Input row read by output row `oy` at kernel row `ky`, if inside the image.
    #[inline]
    fn iy(&self, oy: usize, ky: usize) -> Option<usize> {
        let y = oy * self.stride + ky;
        (y >= self.pad && y - self.pad < self.h).then(|| y - self.pad)
    }
}

/// Fills `col` (`K × (n1−n0)·P`, row-major) from `x` (the whole NCHW batch).
pub fn im2col(x: &[f32], g: &Geom, n0: usize, n1: usize, col: &mut [f32]) {
    let p = g.p();
    let ld = (n1 - n0) * p;
    debug_assert_eq!(col.len(), g.k() * ld);
    let fill = |r: usize, row: &mut [f32]| {
        let ci = r / (g.kh * g.kw);
        let ky = (r / g.kw) % g.kh;
        let kx = r % g.kw;
        let (lo, hi) = g.ox_range(kx);
        for (i, n) in (n0..n1).enumerate() {
            let plane = &x[(n * g.c + ci) * g.h * g.w..][..g.h * g.w];
            for oy in 0..g.oh {
                let seg = &mut row[i * p + oy * g.ow..][..g.ow];
                let Some(iy) = g.iy(oy, ky) else {
                    seg.fill(0.0);
                    continue;
                };
                seg[..lo].fill(0.0);
                seg[hi..].fill(0.0);
                if lo < hi {
                    let x0 = lo * g.stride + kx - g.pad;
                    let src = &plane[iy * g.w..][..g.w];
                    if g.stride == 1 {
                        seg[lo..hi].copy_from_slice(&src[x0..x0 + hi - lo]);
                    } else {
                        for (d, s) in seg[lo..hi].iter_mut().zip(src[x0..].iter().step_by(g.stride)) {
                            *d = *s;
                        }
                    }
                }
            }
        }
    };
    if col.len() < PAR_MIN {
        col.chunks_mut(ld).enumerate().for_each(|(r, row)| fill(r, row));
    } else {
        col.par_chunks_mut(ld).enumerate().for_each(|(r, row)| fill(r, row));
    }
}

/// Writes the images `n0..n1` of `dx` (the whole NCHW batch, raw memory that may be uninitialised) from `col`
/// (as [`im2col`] lays it out), summing the overlapping windows — the adjoint of [`im2col`]: every element of the images
/// `n0..n1` is written (each plane is zeroed while in cache, then accumulated), so a kernel's output needs no
/// separate zero-fill pass.
///
/// # Safety
/// `dx` must be valid for writes of the planes of images `n0..n1`, not accessed by anyone else meanwhile, and
/// `col` must hold `K × (n1−n0)·P` elements.
pub(crate) unsafe fn col2im_raw(col: &[f32], g: &Geom, n0: usize, n1: usize, dx: SendPtr) {
    let p = g.p();
    let ld = (n1 - n0) * p;
    let hw = g.h * g.w;
    let kk = g.kh * g.kw;
    let nplanes = (n1 - n0) * g.c;
    let base = n0 * g.c * hw;
    let fill = |idx: usize| {
        let (i, ci) = (idx / g.c, idx % g.c);
        // SAFETY: plane idx of images n0..n1 is inside dx (caller) and written by this task only.
        let plane = unsafe { dx.uninit(base + idx * hw, hw) };
        if g.pointwise() {
            for (d, &s) in plane.iter_mut().zip(&col[ci * ld + i * p..][..p]) {
                d.write(s);
            }
            return;
        }
        plane.fill(std::mem::MaybeUninit::new(0.0));
        // SAFETY: every element was just initialised.
        let plane = unsafe { &mut *(plane as *mut [std::mem::MaybeUninit<f32>] as *mut [f32]) };
        for ky in 0..g.kh {
            for kx in 0..g.kw {
                let row = &col[(ci * kk + ky * g.kw + kx) * ld + i * p..][..p];
                let (lo, hi) = g.ox_range(kx);
                if lo >= hi {
                    continue;
                }
                for oy in 0..g.oh {
                    let Some(iy) = g.iy(oy, ky) else { continue };
                    let src = &row[oy * g.ow + lo..oy * g.ow + hi];
                    let x0 = lo * g.stride + kx - g.pad;
                    let dst = &mut plane[iy * g.w..][..g.w];
                    if g.stride == 1 {
                        for (d, s) in dst[x0..x0 + hi - lo].iter_mut().zip(src) {
                            *d += *s;
                        }
                    } else {
                        for (d, s) in dst[x0..].iter_mut().step_by(g.stride).zip(src) {
                            *d += *s;
                        }
                    }
                }
            }
        }
    };
    if nplanes * hw < PAR_MIN {
        (0..nplanes).for_each(fill);
    } else {
        (0..nplanes).into_par_iter().for_each(fill);
    }
}

/// `dst[co, (n−n0)·P + p] = src[n, co, p]`: an NCP batch (images `n0..n1`) to channel-major columns.
pub fn to_channel_major(src: &[f32], c: usize, p: usize, n0: usize, n1: usize, dst: &mut [f32]) {
    let ld = (n1 - n0) * p;
    let body = |co: usize, row: &mut [f32]| {
        for (i, n) in (n0..n1).enumerate() {
            row[i * p..(i + 1) * p].copy_from_slice(&src[(n * c + co) * p..][..p]);
        }
    };
    if dst.len() < PAR_MIN {
        dst.chunks_mut(ld).enumerate().for_each(|(co, row)| body(co, row));
    } else {
        dst.par_chunks_mut(ld).enumerate().for_each(|(co, row)| body(co, row));
    }
}

/// The inverse of [`to_channel_major`] for a whole batch, `dst[n, co, p] = src[co, n·P + p]`, into raw memory
/// that may be uninitialised; writes all `n·c·p` elements.
///
/// # Safety
/// `dst` must be valid for `n·c·p` writes and not accessed by anyone else meanwhile; `src.len() ≥ n·c·p`.
pub(crate) unsafe fn from_channel_major_raw(src: &[f32], c: usize, p: usize, n: usize, dst: SendPtr) {
    let ld = n * p;
    let body = |co: usize| {
        for i in 0..n {
            let s = &src[co * ld + i * p..][..p];
            // SAFETY: plane (i, co) is inside dst (caller) and written by this task only.
            unsafe { std::ptr::copy_nonoverlapping(s.as_ptr(), dst.at((i * c + co) * p), p) };
        }
    };
    if n * c * p < PAR_MIN {
        (0..c).for_each(body);
    } else {
        (0..c).into_par_iter().for_each(body);
    }
}
