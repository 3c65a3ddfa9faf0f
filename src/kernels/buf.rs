//! Buffers shared by the kernels: host slices of candle storage, raw pointers for disjoint parallel writes,
//! uninitialised outputs and per-thread scratch space.
use candle_core::{CpuStorage, Layout, Result};

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
