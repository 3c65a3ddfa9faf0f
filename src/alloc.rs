//! Memory that cannot be had is a one-line error, never an abort.
//!
//! Sizes that come from the user (`--image-size`, `--batch-size`, a data set, a file) decide how much bnscope
//! allocates. The large buffers are reserved fallibly where they are made ([`fallible`] around `try_reserve`, e.g.
//! [`crate::data::try_zeroed`]) and a failure there is an ordinary error naming the flag. Everything else (candle's
//! tensors, the kernels' activations, a decoder's buffers) goes through [`Guarded`], the binary's global allocator:
//! where the system allocator has no memory left (a `ulimit -v`, a cgroup, an exhausted machine), Rust would print
//! `memory allocation of N bytes failed` and abort (exit 134, a core dump); [`Guarded`] instead restores the
//! terminal, prints one `bnscope: error: out of memory …` line naming the run's sizes, and exits with 2. What was
//! written before stays as it was: the log ends at its last whole record, a checkpoint is replaced atomically or
//! not at all.
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::OnceLock;

/// The system allocator, with allocation failure turned into a one-line error and exit 2 (see the module's doc).
pub struct Guarded;

thread_local! {
    /// Above 0 while this thread runs [`fallible`]: a failed allocation returns null to its caller (a
    /// `try_reserve` that reports the error) instead of ending the process.
    static FALLIBLE: Cell<u32> = const { Cell::new(0) };
}

/// What the run asks of memory, for the out-of-memory line (`--image-size 1024, --batch-size 32`); set once by
/// `main` when the settings are known.
static CONTEXT: OnceLock<String> = OnceLock::new();

/// Sets the words the out-of-memory line names the run's sizes with (the first call wins).
pub fn set_context(words: String) {
    let _ = CONTEXT.set(words);
}

/// Runs `f` with allocation failures on this thread reported to the caller (`try_reserve` returns its error)
/// rather than ending the process.
pub fn fallible<R>(f: impl FnOnce() -> R) -> R {
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            let _ = FALLIBLE.try_with(|c| c.set(c.get().saturating_sub(1)));
        }
    }
    let _ = FALLIBLE.try_with(|c| c.set(c.get() + 1));
    let _reset = Reset;
    f()
}

fn in_fallible() -> bool {
    FALLIBLE.try_with(|c| c.get() > 0).unwrap_or(false)
}

/// A fixed buffer that `write!` fills without allocating (the allocator has just failed).
struct Line {
    buf: [u8; 1024],
    len: usize,
}

impl std::fmt::Write for Line {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let room = self.buf.len() - self.len;
        let n = s.len().min(room);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

/// `2.0 GiB`, without allocating.
struct Bytes(usize);

impl std::fmt::Display for Bytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let b = self.0 as f64;
        let k = 1024.0;
        if b >= k * k * k {
            write!(f, "{:.1} GiB", b / (k * k * k))
        } else if b >= k * k {
            write!(f, "{:.1} MiB", b / (k * k))
        } else {
            write!(f, "{} bytes", self.0)
        }
    }
}

#[cold]
fn out_of_memory(layout: Layout) -> ! {
    use std::fmt::Write;
    crate::terminal::restore_in_signal_handler(b"");
    let mut line = Line { buf: [0; 1024], len: 0 };
    let _ = write!(
        line,
        "bnscope: error: out of memory: {} more could not be allocated; the run",
        Bytes(layout.size())
    );
    if let Some(sizes) = CONTEXT.get() {
        let _ = write!(line, " ({sizes})");
    }
    let _ = writeln!(
        line,
        " needs more memory than this machine or its limits (ulimit -v, a container) allow; give a smaller \
         --image-size or --batch-size"
    );
    if line.len == line.buf.len() {
        // Cut short (a very long --data path): still one whole line.
        line.buf[line.len - 1] = b'\n';
    }
    // SAFETY: write(2) of our own buffer, then _exit(2): nothing here allocates or unwinds.
    unsafe {
        libc::write(2, line.buf.as_ptr().cast(), line.len);
        libc::_exit(2);
    }
}

// SAFETY: every method forwards to the system allocator with the caller's arguments; on failure it either returns
// null as the system allocator did (inside `fallible`) or ends the process without returning.
unsafe impl GlobalAlloc for Guarded {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc(layout);
        if p.is_null() && !in_fallible() {
            out_of_memory(layout);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc_zeroed(layout);
        if p.is_null() && !in_fallible() {
            out_of_memory(layout);
        }
        p
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = System.realloc(ptr, layout, new_size);
        if p.is_null() && !in_fallible() {
            out_of_memory(Layout::from_size_align_unchecked(new_size, layout.align()));
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

/// Checks before anything is loaded that one training step (and one evaluation batch) of `model` at
/// `image_size` can have the memory it needs at the least: the input batch and, where the model runs on the CPU
/// (`on_cpu`; a GPU holds them in its own memory), every convolution's output, which the backward pass keeps.
/// `batches` are the training and the evaluation batch sizes. The estimate is a lower bound (BatchNorm and ReLU outputs, gradients and workspace come
/// on top), reserved and released at once without being touched, so a run that cannot fit under this process's
/// limits (`ulimit -v`, a container's) is a one-line error naming the flags now, not an abort after minutes of
/// loading. A run that passes may still run out later; [`Guarded`] makes that one line too.
pub fn check_room(
    model: crate::model::Preset,
    image_size: usize,
    (batch_size, eval_batch_size): (usize, usize),
    on_cpu: bool,
) -> anyhow::Result<()> {
    let (convs, largest) = if on_cpu { model.conv_outputs(image_size) } else { (0, 0) };
    let input = 3 * (image_size as u64) * (image_size as u64);
    let train = (batch_size as u64).saturating_mul(convs.saturating_add(input));
    let eval = (eval_batch_size as u64).saturating_mul(largest.saturating_mul(2).saturating_add(input));
    let bytes = train.max(eval).saturating_mul(4);
    let ok = usize::try_from(bytes).is_ok_and(|n| {
        let mut v: Vec<u8> = Vec::new();
        fallible(|| v.try_reserve_exact(n)).is_ok()
    });
    if ok {
        return Ok(());
    }
    let (what, n) = if train >= eval {
        ("--batch-size", batch_size)
    } else {
        ("--eval-batch-size", eval_batch_size)
    };
    Err(crate::error::usage(format!(
        "--image-size {image_size} with {what} {n}: one step of {model} needs at least {} of memory, which cannot \
         be allocated here (this machine or its limits: ulimit -v, a container); give a smaller --image-size or \
         {what}",
        crate::format::human_bytes(bytes)
    )))
}
