//! bnscope's own CPU kernels, wired into candle as custom ops so that autograd and the optimizer keep working.
//!
//! Why they exist (candle 0.11.1, CPU, f32, measured on a 2-vCPU EPYC, see `docs/PERFORMANCE.md`):
//! * [`conv`]: candle's conv2d forward is im2col + gemm but allocates and zero-fills per call, and its backward
//!   computes the input gradient with `conv_transpose2d` in direct loops (~10× slower than PyTorch) and the weight
//!   gradient with another slow path. Here forward, input gradient and weight gradient are each one gemm (the
//!   `gemm` crate, the one candle uses) around im2col / col2im, sharing scratch buffers.
//! * [`bn`]: candle builds train-mode BatchNorm out of ~10 tensor ops forward and ~20 backward, each a full pass
//!   over the activation plus an allocation. The fused op does two passes forward and two backward, and takes the
//!   following ReLU, or a residual block's `relu(bn(x) + skip)`, into the same passes.
//! * [`head`]: global average pool + linear classifier as one op, and cross-entropy as one op.
//! * `crate::optim` uses [`adam`] for a one-pass in-place Adam update instead of ~10 tensor ops per parameter.
//!
//! Every kernel is used only on the CPU, for f32, and while [`own_kernels`] is on; otherwise the
//! callers fall back to candle's ops. Each is tested against candle's reference ops in `tests/kernels.rs`.
pub mod adam;
pub mod bn;
pub mod conv;
pub mod head;
pub mod im2col;
pub mod step;

use candle_core::{CpuStorage, DType, Layout, Result, Tensor};
use rayon::prelude::*;

use std::sync::atomic::{AtomicBool, Ordering};

static OWN_KERNELS: AtomicBool = AtomicBool::new(true);

/// Whether bnscope's own CPU kernels are used (`bench --kernels candle` switches them off to compare).
pub fn own_kernels() -> bool {
    OWN_KERNELS.load(Ordering::Relaxed)
}

pub fn set_own_kernels(on: bool) {
    OWN_KERNELS.store(on, Ordering::Relaxed)
}

/// Whether the own kernels apply to these tensors: switch on, CPU, f32. The first time they do, the allocator is
/// tuned (see [`tune_allocator`]).
pub fn applies(ts: &[&Tensor]) -> bool {
    let yes = own_kernels() && ts.iter().all(|t| t.device().is_cpu() && t.dtype() == DType::F32);
    if yes {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(tune_allocator);
    }
    yes
}

/// Process set-up for the own CPU kernels: call once at start-up, before any other thread exists (it may set an
/// environment variable), when the own kernels are on (`bnscope bench` does so itself).
///
/// * `CANDLE_NUM_THREADS=1` unless the user set it: candle runs its element-wise CPU ops (with ≥ 64 K elements)
///   on its own spin-barrier pool of `threads − 1` workers, separate from rayon's pool that the gemms and these
///   kernels use. On 2 cores the two pools take turns badly: round 1's profile of resnet50@224 had 17 % of the
///   samples in candle's `BarrierGuard::drop` (the main thread spinning for a descheduled worker). With the fused
///   ops only autograd's gradient sums are left to candle, and running them inline is as fast or faster
///   (`docs/PERFORMANCE.md`).
/// * the allocator tuning of [`tune_allocator`].
pub fn init() {
    if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        // Single-threaded at this point (documented precondition), so no getenv can race with this.
        std::env::set_var("CANDLE_NUM_THREADS", "1");
    }
    tune_allocator();
}

/// Keeps freed activation buffers in the process instead of handing them back to the kernel.
///
/// Why: every candle op allocates its output (and autograd allocates a zeroed gradient plus a sum per node).
/// glibc's default dynamic thresholds serve multi-MB blocks with fresh `mmap`s or trim them off the heap top when
/// freed, so each step page-faults its activations back in: ~10 k faults per resnet18@64 step, and a 1×1 conv at
/// 56×56 took 4.5 ms instead of 2.3 ms. A fixed 32 MiB mmap threshold with no trimming lets the heap keep its
/// high-water mark (which the peak RSS is anyway). glibc only; elsewhere a no-op.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        extern "C" {
            fn mallopt(param: i32, value: i32) -> i32;
        }
        const M_TRIM_THRESHOLD: i32 = -1;
        const M_TOP_PAD: i32 = -2;
        const M_MMAP_THRESHOLD: i32 = -3;
        // SAFETY: plain glibc tuning calls; they only change the thresholds of later allocations.
        unsafe {
            mallopt(M_MMAP_THRESHOLD, 32 << 20);
            mallopt(M_TRIM_THRESHOLD, i32::MAX);
            mallopt(M_TOP_PAD, 16 << 20);
        }
    }
}

/// Names of rayon's pool threads (see [`name_pool`]).
pub const POOL_THREAD_PREFIX: &str = "bnscope-pool-";

/// Builds rayon's global pool with named threads (`bnscope-pool-0`, …; `RAYON_NUM_THREADS` still sets their
/// number), so that panic hooks and profilers can tell them apart. Call before anything uses rayon; later calls,
/// or a pool that already exists, leave it as it is.
pub fn name_pool() {
    let _ = rayon::ThreadPoolBuilder::new()
        .thread_name(|i| format!("{POOL_THREAD_PREFIX}{i}"))
        .build_global();
}

/// Runs `f` on the first thread of rayon's pool (the caller waits), so that the kernels' parallel loops and gemms
/// inside it fork from a pool thread.
///
/// Why: a parallel loop started from a thread outside the pool (bnscope's trainer thread, `bench`'s main thread)
/// hands its work to the pool and sleeps until the pool is done: two thread wake-ups per loop, each tens of µs
/// on a VM. tiny@64 runs ~100 such loops a step, and a quarter of its samples were in the scheduler. From inside
/// the pool the forking thread works on its own loop and the other threads join in as they wake.
///
/// Always the *same* pool thread (index 0, via `rayon::broadcast`; the other threads return at once and are free
/// to help): glibc gives each thread its own malloc arena, and a step's activation buffers should come back to
/// the arena they were freed into. Steps wandering between threads made each arena keep its own high-water mark
/// (resnet50@224 peak RSS 1.04 → 1.43 GB); one shared arena instead (`M_ARENA_MAX=1`) let the trainer thread's
/// small long-lived allocations (epoch events queued for a stalled terminal) land between the activations and
/// fragment the heap (RSS +250–400 MB in 10 s of a stalled TUI at full speed).
///
/// Work on another device runs right here instead: a CUDA context is bound per thread, and GPU work is queued
/// from the trainer thread.
pub fn in_pool<R: Send>(dev: &candle_core::Device, f: impl FnOnce() -> R + Send) -> R {
    if !dev.is_cpu() || rayon::current_thread_index().is_some() {
        return f();
    }
    let f = std::sync::Mutex::new(Some(f));
    let out = std::sync::Mutex::new(None);
    rayon::broadcast(|ctx| {
        if ctx.index() == 0 {
            let f = f.lock().unwrap_or_else(|e| e.into_inner()).take();
            if let Some(f) = f {
                let r = with_warm_pool(f);
                *out.lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
            }
        }
    });
    let r = out.into_inner().unwrap_or_else(|e| e.into_inner());
    r.expect("rayon::broadcast runs on thread 0")
}

/// Runs `f` (on a pool thread) while another pool thread, if there is one, stays awake taking work from the pool
/// instead of going to sleep between parallel loops.
///
/// Why: rayon parks an idle thread after a few microseconds, and a loop that starts while it sleeps must wake it
/// (a futex call and a scheduler round trip, tens of µs on a VM); a tiny@64 step has ~100 such loops and spent
/// ~14 % of its samples in the scheduler. `PyTorch`'s OpenMP threads spin the same way between parallel regions.
/// The spinning thread yields the CPU to other threads (the UI) every few hundred spins, and stops when `f` ends.
fn with_warm_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    if rayon::current_num_threads() < 2 {
        return f();
    }
    let done = AtomicBool::new(false);
    let me = rayon::current_thread_index();
    let (out, ()) = rayon::join(
        || {
            // Also when `f` panics: join waits for the spinner before passing the panic on.
            struct Done<'a>(&'a AtomicBool);
            impl Drop for Done<'_> {
                fn drop(&mut self) {
                    self.0.store(true, Ordering::Release);
                }
            }
            let _done = Done(&done);
            f()
        },
        || {
            // Popped back by `f`'s own thread (nobody stole it in time, or while `f` waits inside a loop):
            // nothing to keep awake, and spinning there would block `f`.
            if rayon::current_thread_index() == me {
                return;
            }
            let mut idle = 0u32;
            while !done.load(Ordering::Acquire) {
                match rayon::yield_now() {
                    Some(rayon::Yield::Executed) => idle = 0,
                    _ => {
                        idle += 1;
                        if idle.is_multiple_of(256) {
                            std::thread::yield_now();
                        } else {
                            std::hint::spin_loop();
                        }
                    }
                }
            }
        },
    );
    out
}

/// The f32 slice behind a contiguous layout.
pub(crate) fn slice<'a>(s: &'a CpuStorage, l: &Layout, what: &str) -> Result<&'a [f32]> {
    let (a, b) = l
        .contiguous_offsets()
        .ok_or_else(|| candle_core::Error::Msg(format!("{what}: input must be contiguous")))?;
    Ok(&s.as_slice::<f32>()?[a..b])
}

/// A raw pointer that may cross threads; users guarantee disjoint writes.
#[derive(Clone, Copy)]
pub(crate) struct SendPtr(pub *mut f32);
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

impl SendPtr {
    /// # Safety
    /// `off..off + len` must be inside the allocation and not written by anyone else meanwhile.
    #[inline]
    pub unsafe fn slice_mut<'a>(self, off: usize, len: usize) -> &'a mut [f32] {
        std::slice::from_raw_parts_mut(self.0.add(off), len)
    }

    /// The element pointer at `off` (a method, so that closures capture the whole `Send` wrapper).
    ///
    /// # Safety
    /// `off` must be inside the allocation (or one past its end).
    #[inline]
    pub unsafe fn at(self, off: usize) -> *mut f32 {
        self.0.add(off)
    }

    /// As [`Self::slice_mut`], for memory that may not be initialised yet (write with `MaybeUninit::write`).
    ///
    /// # Safety
    /// As [`Self::slice_mut`].
    #[inline]
    pub unsafe fn uninit<'a>(self, off: usize, len: usize) -> &'a mut [std::mem::MaybeUninit<f32>] {
        std::slice::from_raw_parts_mut(self.0.add(off) as *mut std::mem::MaybeUninit<f32>, len)
    }
}

/// A `Vec<f32>` of length `n` whose elements `fill` must all write, through the pointer it gets (raw-pointer
/// writes, or [`SendPtr::uninit`] slices; never a `&mut [f32]` over unwritten memory). Skips the zero-fill pass of
/// `vec![0.0; n]` (round 1: ~4 % of a resnet50@224 step went to `memset`).
///
/// # Safety
/// `fill` must initialise all `n` elements before it returns normally (if it unwinds, the vector is dropped
/// empty).
pub(crate) unsafe fn output_uninit(n: usize, fill: impl FnOnce(SendPtr)) -> Vec<f32> {
    let mut v: Vec<f32> = Vec::with_capacity(n);
    fill(SendPtr(v.as_mut_ptr()));
    // SAFETY: the caller's contract: all n elements were written.
    unsafe { v.set_len(n) };
    v
}

thread_local! {
    static SCRATCH: std::cell::RefCell<[Vec<f32>; 2]> = const { std::cell::RefCell::new([Vec::new(), Vec::new()]) };
}

/// Runs `f` with two scratch buffers of at least `a` and `b` elements (contents left from earlier use). They are kept per
/// thread and only grow, so the hot loops neither allocate nor page-fault after the first step; their size is
/// bounded by the largest layer's im2col matrix (≈ 7 M floats for resnet50@224, batch 3).
pub(crate) fn with_scratch<R>(a: usize, b: usize, f: impl FnOnce(&mut [f32], &mut [f32]) -> R) -> R {
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut bufs) => {
            let [x, y] = &mut *bufs;
            for (buf, n) in [(&mut *x, a), (&mut *y, b)] {
                if buf.len() < n {
                    *buf = vec![0f32; n];
                }
            }
            f(&mut x[..a], &mut y[..b])
        }
        // Re-entered (a kernel called from inside another on the same thread): plain allocations.
        Err(_) => f(&mut vec![0f32; a], &mut vec![0f32; b]),
    })
}

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
                gemm::gemm(
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
                    gemm::Parallelism::None,
                )
            }
        });
        return;
    }
    // Below ~1 MFLOP the fork/join costs more than it gains.
    let par = if threads > 1 && m * n * k >= 1 << 18 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    gemm::gemm(
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
        gemm::Parallelism::Rayon(threads / 2)
    } else {
        gemm::Parallelism::None
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
            gemm::gemm(
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
