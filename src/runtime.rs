//! Process set-up and thread placement: what runs where, not what is computed.
//!
//! * [`init`] / [`tune_allocator`]: candle's element-wise pool and glibc's allocator, set once at start-up.
//! * [`name_pool`], [`in_pool`]: rayon's pool with named threads, and running a step or an evaluation on its
//!   first thread with a second one kept awake.
//! * The thread names and [`panic_is_relayed`], which the panic hooks ask (one place for the name strings).
//!
//! Callers: `main`, the trainer, the optimizer, `bench` and `profile`. Nothing here knows about models.
#[cfg(feature = "train")]
use std::sync::atomic::{AtomicBool, Ordering};

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
#[cfg(feature = "train")]
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
#[cfg(feature = "train")]
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

/// The trainer thread's name (`bnscope-trainer`): its panics are caught and shown by the front end.
pub const TRAINER_THREAD: &str = "bnscope-trainer";

/// Whether a panic on the current thread reaches a caller that reports it (so a panic hook should stay quiet):
/// the trainer thread catches its panics and shows them in place, and a panic on a rayon pool thread
/// ([`POOL_THREAD_PREFIX`]) propagates to the thread waiting on the pool (the trainer, or `bench`'s main thread,
/// whose own panic the hook then reports).
pub fn panic_is_relayed() -> bool {
    let t = std::thread::current();
    let name = t.name().unwrap_or("");
    name == TRAINER_THREAD || name.starts_with(POOL_THREAD_PREFIX)
}
