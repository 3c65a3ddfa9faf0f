//! Matrix products for the convolution kernels, on the `gemm` crate (the one candle uses), with bnscope's own
//! choice of how a product is split across rayon's threads.
use rayon::prelude::*;

use super::buf::SendPtr;

/// Multiply-accumulates from which [`sgemm`] splits a wide product by columns across threads.
const SPLIT_N_MIN_MACS: usize = 1 << 23;

/// `dst (m×n) = [dst +] a (m×k) · b (k×n)` with explicit row/column strides (in elements), f32.
///
/// # Safety
/// The pointers with their strides must address valid, non-overlapping (dst vs. a/b) memory.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn sgemm(
    m: usize,
    n: usize,
    k: usize,
    dst: *mut f32,
    dst_rs: isize,
    dst_cs: isize,
    accumulate: bool,
    a: *const f32,
    a_rs: isize,
    a_cs: isize,
    b: *const f32,
    b_rs: isize,
    b_cs: isize,
) {
    if m == 0 || n == 0 {
        return;
    }
    let threads = rayon::current_num_threads();
    if threads > 1 && m * n * k >= SPLIT_N_MIN_MACS && n >= m && n >= 256 {
        // Wide and not tall (ResNet's early stages: 64 output channels × 3136 pixels): the `gemm` crate's own
        // threading divides rows, of which there are too few here (64×3136×576: 1.45 ms, barely faster than one
        // thread's 1.70 ms). Each thread takes a block of columns instead (0.90 ms). Every output element is
        // still one gemm's dot product over the whole depth, so the result does not depend on the split.
        let step = n.div_ceil(threads).next_multiple_of(16);
        let (d, pa, pb) = (SendPtr(dst), SendPtr(a as *mut f32), SendPtr(b as *mut f32));
        (0..n.div_ceil(step)).into_par_iter().for_each(|c| {
            let (d, pa, pb) = (d, pa, pb); // whole wrappers, not their raw-pointer fields
            let (lo, hi) = (c * step, ((c + 1) * step).min(n));
            let off = |p: SendPtr, cs: isize| p.0.wrapping_offset(lo as isize * cs);
            // SAFETY: columns lo..hi of dst and b (inside the caller's ranges); column blocks are disjoint.
            unsafe {
                ::gemm::gemm(
                    m,
                    hi - lo,
                    k,
                    off(d, dst_cs),
                    dst_cs,
                    dst_rs,
                    accumulate,
                    pa.0,
                    a_cs,
                    a_rs,
                    off(pb, b_cs),
                    b_cs,
                    b_rs,
                    1.0f32,
                    1.0f32,
                    false,
                    false,
                    false,
                    ::gemm::Parallelism::None,
                )
            }
        });
        return;
    }
    // Below ~1 MFLOP the fork/join costs more than it gains.
    let par = if threads > 1 && m * n * k >= 1 << 18 {
        ::gemm::Parallelism::Rayon(threads)
    } else {
        ::gemm::Parallelism::None
    };
    ::gemm::gemm(
        m, n, k, dst, dst_cs, dst_rs, accumulate, a, a_cs, a_rs, b, b_cs, b_rs, 1.0f32, 1.0f32, false, false, false,
        par,
    )
}

/// `dst (m×n) = [dst +] a (m×depth) · bᵀ`, with `a` and `b (n×depth)` row-major (row strides `lda`, `ldb`):
/// the shape of a convolution's weight gradient, `dY · colᵀ`.
///
/// Why not plain [`sgemm`]: the output is small (`Cout × Cin·k²`) and the depth long (the batch's pixels), and
/// the `gemm` crate only threads over the output. On two threads, 16×144 at depth 3072 took 0.60 ms threaded
/// and 0.46 ms on one thread; 64×576 at depth 3136 (resnet50's first stage, per image) 3.35 / 2.49 ms. Here the
/// depth is cut in two halves computed side by side (0.25 and 1.48 ms), the second into a scratch block that is
/// then added. The cut depends on the shape only, never on the thread count, so results are the same on any
/// machine with any `RAYON_NUM_THREADS`.
///
/// # Safety
/// As [`sgemm`]: `dst` holds `m×n` elements (row stride `n`), `a` and `b` their rows of `depth` elements.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn sgemm_abt(
    m: usize,
    n: usize,
    depth: usize,
    dst: *mut f32,
    accumulate: bool,
    a: *const f32,
    lda: usize,
    b: *const f32,
    ldb: usize,
) {
    let (ni, la, lb) = (n as isize, lda as isize, ldb as isize);
    if m * n > DEPTH_SPLIT_MAX_OUT || depth < 256 || m * n * depth < DEPTH_SPLIT_MIN_MACS {
        // SAFETY: the caller's contract.
        unsafe { sgemm(m, n, depth, dst, ni, 1, accumulate, a, la, 1, b, 1, lb) };
        return;
    }
    let half = depth / 2;
    let threads = rayon::current_num_threads();
    let par = if threads > 2 {
        ::gemm::Parallelism::Rayon(threads / 2)
    } else {
        ::gemm::Parallelism::None
    };
    let mut tmp: Vec<f32> = Vec::with_capacity(m * n);
    let (d, t, pa, pb) = (
        SendPtr(dst),
        SendPtr(tmp.as_mut_ptr()),
        SendPtr(a as *mut f32),
        SendPtr(b as *mut f32),
    );
    let part = move |out: SendPtr, acc: bool, lo: usize, hi: usize| {
        let (out, pa, pb) = (out, pa, pb);
        // SAFETY: columns lo..hi of a's and b's rows; out is dst or the m×n scratch.
        unsafe {
            ::gemm::gemm(
                m,
                n,
                hi - lo,
                out.0,
                1,
                ni,
                acc,
                pa.0.add(lo),
                1,
                la,
                pb.0.add(lo),
                lb,
                1,
                1.0f32,
                1.0f32,
                false,
                false,
                false,
                par,
            )
        }
    };
    rayon::join(|| part(d, accumulate, 0, half), || part(t, false, half, depth));
    // SAFETY: the second gemm wrote all m·n elements of the scratch (not accumulating).
    unsafe { tmp.set_len(m * n) };
    // SAFETY: dst holds m·n elements (caller).
    let out = unsafe { std::slice::from_raw_parts_mut(dst, m * n) };
    for (o, v) in out.iter_mut().zip(&tmp) {
        *o += *v;
    }
}

/// [`sgemm_abt`] splits the depth where the output has at most this many elements…
const DEPTH_SPLIT_MAX_OUT: usize = 1 << 18;
/// …and the product at least this many multiply-accumulates.
const DEPTH_SPLIT_MIN_MACS: usize = 1 << 21;
