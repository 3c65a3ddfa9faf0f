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

use super::buf::{output_uninit, slice, with_scratch, SendPtr};
use super::gemm::{sgemm, sgemm_abt};
use super::im2col::{col2im_raw, from_channel_major_raw, im2col, to_channel_major, Geom};

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

/// Backward pass as two allocations: `(dx (N·Cin·H·W) if need_dx, dW (Cout·K))`.
pub fn backward_parts(
    x: &[f32],
    w: &[f32],
    dy: &[f32],
    g: &Geom,
    cout: usize,
    need_dx: bool,
) -> (Option<Vec<f32>>, Vec<f32>) {
    let (k, p) = (g.k(), g.p());
    let nx = if need_dx { g.n * g.c * g.h * g.w } else { 0 };
    if g.n == 0 || p == 0 {
        return (need_dx.then(|| vec![0f32; nx]), vec![0f32; cout * k]);
    }
    let wp = w.as_ptr();
    let (ki, pi) = (k as isize, p as isize);
    // Every element is written once: dW by the first (non-accumulating) gemm, dx by a non-accumulating gemm
    // (1×1 stride 1) or by col2im, which zeroes each plane itself.
    let fill = |out: SendPtr, dwo: SendPtr| {
        let dwp = dwo.0;
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
                    unsafe { sgemm_abt(cout, k, p, dwp, n > 0, dyn_, p, src.as_ptr(), p) };
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
                unsafe { sgemm_abt(cout, k, l, dwp, false, dyc.as_ptr(), l, col.as_ptr(), l) };
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
    let mut dx = Vec::new();
    // SAFETY: see `fill`; dx is filled inside dW's fill, so both are complete when it returns.
    let dw = unsafe { output_uninit(cout * k, |dwo| dx = output_uninit(nx, |out| fill(out, dwo))) };
    (need_dx.then_some(dx), dw)
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
            dw: std::sync::Mutex::new(None),
        };
        let out = x.apply_op3_no_bwd(w, &dy.contiguous()?, &op)?;
        let (dx, dw) = if need_dx {
            let dw = op
                .dw
                .lock()
                .map_err(|_| candle_core::Error::Msg("conv2d backward: poisoned".into()))?
                .take()
                .ok_or_else(|| candle_core::Error::Msg("conv2d backward: no weight gradient".into()))?;
            (Some(out), Tensor::from_vec(dw, w.shape(), w.device())?)
        } else {
            (None, out)
        };
        let dw = if need_dw { collect_weight_grad(w, dw) } else { None };
        Ok((dx, dw))
    }
}

thread_local! {
    /// Weight gradients held back from candle's `GradStore` while [`backward_collecting`] runs on this thread.
    static WEIGHT_GRADS: std::cell::RefCell<Option<Vec<(Tensor, Tensor)>>> = const { std::cell::RefCell::new(None) };
}

/// Inside [`backward_collecting`], keeps the gradient of a variable weight out of candle's backprop (returns
/// `None`); otherwise hands it back for candle to accumulate.
fn collect_weight_grad(w: &Tensor, dw: Tensor) -> Option<Tensor> {
    if !w.is_variable() {
        return Some(dw);
    }
    WEIGHT_GRADS.with(|cell| match cell.borrow_mut().as_mut() {
        Some(list) => {
            list.push((w.clone(), dw));
            None
        }
        None => Some(dw),
    })
}

/// `loss.backward()` with the same result, but the conv weights' gradients go straight into the returned store.
///
/// Why: candle's backprop accumulates every gradient it is handed as `or_insert` (a zero-filled tensor) + `add`
/// (a new tensor): three param-sized memory passes per conv weight on top of the gradient itself. For a
/// variable (a leaf, so nothing propagates further from it) the op's own buffer can be the final gradient.
/// Only variable weights are held back; a weight used by several convolutions gets its gradients summed here.
pub fn backward_collecting(loss: &Tensor) -> Result<candle_core::backprop::GradStore> {
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            WEIGHT_GRADS.with(|cell| cell.borrow_mut().take());
        }
    }
    let nested = WEIGHT_GRADS.with(|cell| cell.borrow().is_some());
    if nested {
        return loss.backward();
    }
    WEIGHT_GRADS.with(|cell| *cell.borrow_mut() = Some(Vec::new()));
    let reset = Reset;
    let grads = loss.backward();
    let held = WEIGHT_GRADS.with(|cell| cell.borrow_mut().take()).unwrap_or_default();
    drop(reset);
    let mut grads = grads?;
    for (w, dw) in held {
        let sum = match grads.get(&w) {
            Some(g) => g.add(&dw)?,
            None => dw,
        };
        grads.insert(&w, sum);
    }
    Ok(grads)
}

/// `(x, w, dy) -> dx`, with `dW` left in `dw`; or `-> dW` when `dx` is not needed (see [`backward`]). `dW` gets
/// its own allocation so that holding it does not keep `dx` alive.
struct Conv2dBackward {
    stride: usize,
    padding: usize,
    need_dx: bool,
    dw: std::sync::Mutex<Option<Vec<f32>>>,
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
        let (dx, dw) = backward_parts(x, w, dy, &g, cout, self.need_dx);
        match dx {
            Some(dx) => {
                *self
                    .dw
                    .lock()
                    .map_err(|_| candle_core::Error::Msg("conv2d backward: poisoned".into()))? = Some(dw);
                Ok((CpuStorage::F32(dx), l1.shape().clone()))
            }
            None => Ok((CpuStorage::F32(dw), l2.shape().clone())),
        }
    }
}
