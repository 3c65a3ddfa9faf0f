//! Conv2d (no bias, dilation 1, one group) as a candle custom op with its own backward.
//!
//! Why: candle 0.11.1's CPU conv2d backward computes the input gradient with `conv_transpose2d` in direct loops
//! and the weight gradient through another slow path; together they were most of a training step (tiny@64:
//! 112 ms/step). Here all three products are single gemm calls:
//!
//! * forward: `Y (Cout × cols) = W (Cout × K) · col (K × cols)`, `col = im2col(x)`;
//! * input gradient: `dcol = Wᵀ · dY`, then `dx = col2im(dcol)` (overlapping windows summed);
//! * weight gradient: `dW = dY · colᵀ`, with `col` recomputed from `x` (cheaper than keeping every layer's
//!   column matrix alive from the forward pass to the backward one).
//!
//! Layout: when an image has at least [`PER_IMAGE_MIN_P`] output pixels, each image is its own gemm (columns = its
//! pixels, no transposes; 1×1 stride-1 convolutions need no im2col at all). Smaller maps (ResNet's 14×14 and 7×7
//! stages at batch 3) put the whole batch's pixels into the columns so the gemm's N dimension is `N·OH·OW`; the
//! result is then permuted back to NCHW. Scratch buffers are per-thread and reused (see [`super::with_scratch`]).
use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};

use super::im2col::{col2im_raw, from_channel_major_raw, im2col, to_channel_major, Geom};
use super::{output_uninit, sgemm, slice, with_scratch, SendPtr};

/// Output pixels per image from which an image may get its own gemm (see [`per_image`]).
pub const PER_IMAGE_MIN_P: usize = 256;
/// Multiply-accumulates of one image's gemm from which per-image gemms are used (see [`per_image`]).
pub const PER_IMAGE_MIN_MACS: usize = 16 << 20;

/// Per-image gemms (no batch-sized scratch, no permute) where each image's gemm is big on its own (resnet50's
/// 56×56 and 28×28 stages); otherwise one gemm over the whole batch's columns. Measured on tiny@64 (all batched:
/// 9.1 ms/step vs 10.4 with a 256-pixel threshold alone) and resnet50@224 (per-image from 784 pixels: 0.90 s vs
/// 1.05 s all batched).
pub fn per_image(g: &Geom, cout: usize) -> bool {
    g.n == 1 || (g.p() >= PER_IMAGE_MIN_P && cout * g.p() * g.k() >= PER_IMAGE_MIN_MACS)
}

/// `x (N, Cin, H, W)` convolved with `w (Cout, Cin, KH, KW)` on the CPU with bnscope's kernels.
pub fn conv2d(x: &Tensor, w: &Tensor, stride: usize, padding: usize) -> Result<Tensor> {
    x.contiguous()?.apply_op2(&w.contiguous()?, Conv2d { stride, padding })
}

/// The forward op; its `bwd` runs [`Conv2dBackward`].
#[derive(Clone, Copy, Debug)]
pub struct Conv2d {
    pub stride: usize,
    pub padding: usize,
}

fn geom(xs: &Shape, ws: &Shape, stride: usize, padding: usize) -> Result<(Geom, usize)> {
    let (n, c, h, w) = xs.dims4()?;
    let (cout, cin, kh, kw) = ws.dims4()?;
    if cin != c {
        candle_core::bail!("conv2d: input has {c} channels, weight expects {cin}");
    }
    if stride == 0 || h + 2 * padding < kh || w + 2 * padding < kw {
        candle_core::bail!("conv2d: kernel {kh}×{kw} does not fit a {h}×{w} input with padding {padding}");
    }
    Ok((Geom::new(n, c, h, w, kh, kw, stride, padding), cout))
}

/// Forward pass: returns `y (N, Cout, OH, OW)` as a flat vector.
pub fn forward(x: &[f32], w: &[f32], g: &Geom, cout: usize) -> Vec<f32> {
    let (k, p) = (g.k(), g.p());
    let wp = w.as_ptr();
    // Every element of y is written once: by a non-accumulating gemm (the `gemm` crate does not read the
    // destination then) or by the channel-major copy.
    let fill = |yp: SendPtr| {
        if per_image(g, cout) {
            let col_len = if g.pointwise() { 0 } else { k * p };
            with_scratch(col_len, 0, |col, _| {
                for n in 0..g.n {
                    let src = if g.pointwise() {
                        &x[n * k * p..][..k * p]
                    } else {
                        im2col(x, g, n, n + 1, col);
                        &*col
                    };
                    // SAFETY: image n's cout×p block of y.
                    let dst = unsafe { yp.at(n * cout * p) };
                    // SAFETY: y_n is cout×p, W is cout×k, col is k×p, all row-major and in bounds.
                    unsafe {
                        sgemm(
                            cout,
                            p,
                            k,
                            dst,
                            p as isize,
                            1,
                            false,
                            wp,
                            k as isize,
                            1,
                            src.as_ptr(),
                            p as isize,
                            1,
                        )
                    };
                }
            });
        } else {
            let l = g.n * p;
            with_scratch(k * l, cout * l, |col, tmp| {
                im2col(x, g, 0, g.n, col);
                let (li, ki) = (l as isize, k as isize);
                // SAFETY: tmp is cout×l, W cout×k, col k×l.
                unsafe {
                    sgemm(
                        cout,
                        l,
                        k,
                        tmp.as_mut_ptr(),
                        li,
                        1,
                        false,
                        wp,
                        ki,
                        1,
                        col.as_ptr(),
                        li,
                        1,
                    )
                };
                // SAFETY: y holds n·cout·p elements.
                unsafe { from_channel_major_raw(tmp, cout, p, g.n, yp) };
            });
        }
    };
    // SAFETY: see `fill`.
    unsafe { output_uninit(g.n * cout * p, fill) }
}

/// Backward pass: `[dx (N·Cin·H·W, only if need_dx) | dW (Cout·K)]` in one vector.
pub fn backward(x: &[f32], w: &[f32], dy: &[f32], g: &Geom, cout: usize, need_dx: bool) -> Vec<f32> {
    let (k, p) = (g.k(), g.p());
    let nx = if need_dx { g.n * g.c * g.h * g.w } else { 0 };
    if g.n == 0 || p == 0 {
        return vec![0f32; nx + cout * k];
    }
    let wp = w.as_ptr();
    let (ki, pi) = (k as isize, p as isize);
    // Every element is written once: dW by the first (non-accumulating) gemm, dx by a non-accumulating gemm
    // (1×1 stride 1) or by col2im, which zeroes each plane itself.
    let fill = |out: SendPtr| {
        // SAFETY: dW starts at nx.
        let dwp = unsafe { out.at(nx) };
        if per_image(g, cout) {
            let col_len = if g.pointwise() { 0 } else { k * p };
            let dcol_len = if g.pointwise() || !need_dx { 0 } else { k * p };
            with_scratch(col_len, dcol_len, |col, dcol| {
                for n in 0..g.n {
                    let dyn_ = dy[n * cout * p..][..cout * p].as_ptr();
                    let src = if g.pointwise() {
                        &x[n * k * p..][..k * p]
                    } else {
                        im2col(x, g, n, n + 1, col);
                        &*col
                    };
                    // SAFETY (all gemms below): shapes as documented, buffers sized above.
                    // dW (cout×k) += dY_n (cout×p) · col_nᵀ (p×k)
                    unsafe { sgemm(cout, k, p, dwp, ki, 1, n > 0, dyn_, pi, 1, src.as_ptr(), 1, pi) };
                    if need_dx {
                        // dcol_n (k×p) = Wᵀ (k×cout) · dY_n (cout×p)
                        if g.pointwise() {
                            let dst = unsafe { out.at(n * k * p) };
                            unsafe { sgemm(k, p, cout, dst, pi, 1, false, wp, 1, ki, dyn_, pi, 1) };
                        } else {
                            unsafe { sgemm(k, p, cout, dcol.as_mut_ptr(), pi, 1, false, wp, 1, ki, dyn_, pi, 1) };
                            unsafe { col2im_raw(dcol, g, n, n + 1, out) };
                        }
                    }
                }
            });
        } else {
            let l = g.n * p;
            let li = l as isize;
            with_scratch(k * l, cout * l, |col, dyc| {
                to_channel_major(dy, cout, p, 0, g.n, dyc);
                im2col(x, g, 0, g.n, col);
                unsafe { sgemm(cout, k, l, dwp, ki, 1, false, dyc.as_ptr(), li, 1, col.as_ptr(), 1, li) };
                if need_dx {
                    // The column matrix is no longer needed: reuse it for dcol.
                    unsafe {
                        sgemm(
                            k,
                            l,
                            cout,
                            col.as_mut_ptr(),
                            li,
                            1,
                            false,
                            wp,
                            1,
                            ki,
                            dyc.as_ptr(),
                            li,
                            1,
                        )
                    };
                    unsafe { col2im_raw(col, g, 0, g.n, out) };
                }
            });
        }
    };
    // SAFETY: see `fill`.
    unsafe { output_uninit(nx + cout * k, fill) }
}

impl CustomOp2 for Conv2d {
    fn name(&self) -> &'static str {
        "bnscope-conv2d"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (g, cout) = geom(l1.shape(), l2.shape(), self.stride, self.padding)?;
        let x = slice(s1, l1, "conv2d")?;
        let w = slice(s2, l2, "conv2d")?;
        let y = forward(x, w, &g, cout);
        Ok((CpuStorage::F32(y), Shape::from((g.n, cout, g.oh, g.ow))))
    }

    fn bwd(&self, x: &Tensor, w: &Tensor, _res: &Tensor, dy: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let need_dx = x.track_op();
        let need_dw = w.track_op();
        if !need_dx && !need_dw {
            return Ok((None, None));
        }
        let op = Conv2dBackward {
            stride: self.stride,
            padding: self.padding,
            need_dx,
        };
        let packed = x.apply_op3_no_bwd(w, &dy.contiguous()?, &op)?;
        let nx = if need_dx { x.elem_count() } else { 0 };
        let dx = if need_dx {
            Some(packed.narrow(0, 0, nx)?.reshape(x.shape())?)
        } else {
            None
        };
        let dw = if need_dw {
            Some(packed.narrow(0, nx, w.elem_count())?.reshape(w.shape())?)
        } else {
            None
        };
        Ok((dx, dw))
    }
}

/// `(x, w, dy) -> [dx | dW]` flattened (see [`backward`]).
struct Conv2dBackward {
    stride: usize,
    padding: usize,
    need_dx: bool,
}

impl CustomOp3 for Conv2dBackward {
    fn name(&self) -> &'static str {
        "bnscope-conv2d-backward"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (g, cout) = geom(l1.shape(), l2.shape(), self.stride, self.padding)?;
        if l3.shape().dims() != [g.n, cout, g.oh, g.ow] {
            candle_core::bail!("conv2d backward: gradient shape {:?}", l3.shape());
        }
        let x = slice(s1, l1, "conv2d backward")?;
        let w = slice(s2, l2, "conv2d backward")?;
        let dy = slice(s3, l3, "conv2d backward")?;
        let out = backward(x, w, dy, &g, cout, self.need_dx);
        let len = out.len();
        Ok((CpuStorage::F32(out), Shape::from(len)))
    }
}
