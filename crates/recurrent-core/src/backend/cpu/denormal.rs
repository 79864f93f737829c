//! Flushing denormal numbers to zero: the one place it is done.
//!
//! When gradients vanish through time (the IMDB lab's loss depends only on the last hidden
//! state) a large share of the backward pass operates on denormal floats, and each denormal
//! operand costs a microcode assist of about a hundred cycles on x86. PyTorch's first lab
//! steps take ~10 s instead of ~0.6 s for this reason alone (shared/design/PERFORMANCE.md).
//!
//! Every CPU kernel calls [`ensure`] on entry, which sets the FTZ (flush-to-zero) and DAZ
//! (denormals-are-zero) bits of this thread's MXCSR register once; the first call also sets
//! them on every thread of rayon's global pool, which runs the parallel products. The effect:
//! results and operands below ~1.18e-38 in magnitude become zero. That is far below any
//! tolerance in the tests and changes no result a user can see, as TensorFlow's default does.
//!
//! The switch: on by default; `RECURRENT_FLUSH_DENORMALS=0` in the environment, or
//! [`set_flush_denormals(false)`](set_flush_denormals), turns it off (for IEEE-exact
//! comparisons). On targets other than x86-64 and aarch64 it does nothing.
//!
//! If you run the library inside your own rayon pool, call [`apply_to_current_pool`] from
//! inside that pool once. If you call the kernels on a thread whose floating-point mode is not
//! yours to change (an interpreter's), wrap the call in [`preserving_thread_mode`].

use std::cell::Cell;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Once;

const UNSET: u8 = 0;
const ON: u8 = 1;
const OFF: u8 = 2;

/// The wanted mode, read from the environment on first use.
static WANTED: AtomicU8 = AtomicU8::new(UNSET);
static POOL_INIT: Once = Once::new();

thread_local! {
    /// The mode this thread's control register is known to be in.
    static APPLIED: Cell<u8> = const { Cell::new(UNSET) };
}

fn wanted() -> u8 {
    match WANTED.load(Ordering::Relaxed) {
        UNSET => {
            let on = std::env::var("RECURRENT_FLUSH_DENORMALS")
                .map(|v| !matches!(v.trim(), "0" | "false" | "off" | "no"))
                .unwrap_or(true);
            let mode = if on { ON } else { OFF };
            // Another thread may have set it explicitly meanwhile: keep theirs.
            match WANTED.compare_exchange(UNSET, mode, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => mode,
                Err(current) => current,
            }
        }
        m => m,
    }
}

/// Whether denormals are flushed to zero (the default).
pub fn flush_denormals() -> bool {
    wanted() == ON
}

/// Turn flushing on or off for the calling thread and rayon's global pool, now and for every
/// later kernel call.
pub fn set_flush_denormals(on: bool) {
    WANTED.store(if on { ON } else { OFF }, Ordering::Relaxed);
    apply_here();
    rayon::broadcast(|_| apply_here());
}

/// Build rayon's global pool with `num_threads` threads (all cores when `None`), each
/// flushing denormals as configured. Call it before any computation; it fails if the pool
/// already exists (it can be built once per process).
pub fn init_thread_pool(num_threads: Option<usize>) -> Result<(), String> {
    let mut b = rayon::ThreadPoolBuilder::new().start_handler(|_| apply_here());
    if let Some(n) = num_threads {
        b = b.num_threads(n);
    }
    b.build_global()
        .map_err(|e| format!("the thread pool was already started: {e}"))?;
    POOL_INIT.call_once(|| {});
    apply_here();
    Ok(())
}

/// Apply the current mode on every thread of the rayon pool this is called from (or the
/// global pool when called from outside any pool).
pub fn apply_to_current_pool() {
    rayon::broadcast(|_| apply_here());
}

/// Make sure the calling thread (and, on first use, the rayon pool) flushes denormals as
/// configured. Cheap: one thread-local read after the first call.
///
/// The first call never blocks on other threads (a kernel may already be running on a pool
/// worker): it builds rayon's global pool with a start handler that applies the mode to every
/// worker, or, when the pool already exists, queues the change on every worker without
/// waiting (workers that run a product before it lands just run it unflushed, once).
#[inline]
pub fn ensure() {
    let want = wanted();
    if APPLIED.with(|a| a.get()) != want {
        apply_here();
    }
    // The global pool runs the parallel products of kernels called from outside any pool.
    // Inside a pool (its owner applied the mode to it), or with the kernels held to the
    // calling thread, it is not used and not started.
    if rayon::current_thread_index().is_none() && !super::parallel::is_sequential() {
        POOL_INIT.call_once(|| {
            let built = rayon::ThreadPoolBuilder::new()
                .start_handler(|_| apply_here())
                .build_global();
            if built.is_err() {
                rayon::spawn_broadcast(|_| apply_here());
            }
        });
    }
}

/// Run `f` with this thread in the configured mode, then put the thread's floating-point
/// control register back exactly as it was, even if `f` panics.
///
/// For kernels called on a thread that belongs to someone else, such as the Python
/// interpreter's, whose ops PyTorch runs with its own denormal setting.
///
/// ```
/// use recurrent_core::runtime::{on_this_thread, preserving_thread_mode};
/// // Kernels on the calling thread alone, flushing denormals inside; the thread's own mode
/// // is back when the call returns.
/// let two = preserving_thread_mode(|| on_this_thread(|| 1 + 1));
/// assert_eq!(two, 2);
/// ```
pub fn preserving_thread_mode<R>(f: impl FnOnce() -> R) -> R {
    struct Restore {
        control: u64,
        applied: u8,
    }
    impl Drop for Restore {
        fn drop(&mut self) {
            write_control(self.control);
            APPLIED.with(|a| a.set(self.applied));
        }
    }
    let _restore = Restore {
        control: control_register(),
        applied: APPLIED.with(|a| a.get()),
    };
    f()
}

/// This thread's floating-point control register (MXCSR on x86-64, FPCR on aarch64; 0
/// elsewhere).
pub fn control_register() -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        let mut csr: u32 = 0;
        // SAFETY: stmxcsr stores this thread's SSE control register into `csr`.
        unsafe { std::arch::asm!("stmxcsr [{}]", in(reg) &mut csr, options(nostack)) };
        u64::from(csr)
    }
    #[cfg(target_arch = "aarch64")]
    {
        let fpcr: u64;
        // SAFETY: reads this thread's floating-point control register.
        unsafe { std::arch::asm!("mrs {}, fpcr", out(reg) fpcr, options(nomem, nostack)) };
        fpcr
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    0
}

fn write_control(value: u64) {
    #[cfg(target_arch = "x86_64")]
    {
        let csr = value as u32;
        // SAFETY: loads a value read earlier from this thread's own MXCSR.
        unsafe { std::arch::asm!("ldmxcsr [{}]", in(reg) &csr, options(nostack, readonly)) };
    }
    #[cfg(target_arch = "aarch64")]
    // SAFETY: writes back a value read earlier from this thread's own FPCR.
    unsafe {
        std::arch::asm!("msr fpcr, {}", in(reg) value, options(nomem, nostack))
    };
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    let _ = value;
}

fn apply_here() {
    let want = wanted();
    set_hardware(want == ON);
    APPLIED.with(|a| a.set(want));
}

#[cfg(target_arch = "x86_64")]
fn set_hardware(on: bool) {
    const FTZ_DAZ: u32 = (1 << 15) | (1 << 6);
    let mut csr: u32 = 0;
    // SAFETY: stmxcsr/ldmxcsr read and write this thread's SSE control register; changing
    // the FTZ and DAZ bits alters no memory and no other state.
    unsafe {
        std::arch::asm!("stmxcsr [{}]", in(reg) &mut csr, options(nostack));
        let new = if on { csr | FTZ_DAZ } else { csr & !FTZ_DAZ };
        if new != csr {
            std::arch::asm!("ldmxcsr [{}]", in(reg) &new, options(nostack, readonly));
        }
    }
}

#[cfg(target_arch = "aarch64")]
fn set_hardware(on: bool) {
    const FZ: u64 = 1 << 24;
    let mut fpcr: u64;
    // SAFETY: reads and writes this thread's floating-point control register (FZ bit only).
    unsafe {
        std::arch::asm!("mrs {}, fpcr", out(reg) fpcr, options(nomem, nostack));
        let new = if on { fpcr | FZ } else { fpcr & !FZ };
        if new != fpcr {
            std::arch::asm!("msr fpcr, {}", in(reg) new, options(nomem, nostack));
        }
    }
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn set_hardware(_on: bool) {}

#[cfg(all(test, any(target_arch = "x86_64", target_arch = "aarch64")))]
mod tests {
    use super::*;

    #[test]
    fn denormals_flush_when_on_and_survive_when_off() {
        let tiny = f32::MIN_POSITIVE; // smallest normal
        let half = std::hint::black_box(0.5f32);
        set_flush_denormals(true);
        ensure();
        assert_eq!(std::hint::black_box(tiny) * half, 0.0);
        // the pool threads too
        let r: Vec<f32> =
            rayon::broadcast(|_| std::hint::black_box(tiny) * std::hint::black_box(0.5f32));
        assert!(r.iter().all(|&x| x == 0.0), "{r:?}");
        set_flush_denormals(false);
        assert!(std::hint::black_box(tiny) * half > 0.0);
        set_flush_denormals(true);
    }

    #[test]
    fn the_callers_mode_survives_a_preserving_call() {
        let tiny = f32::MIN_POSITIVE;
        let half = std::hint::black_box(0.5f32);
        std::thread::spawn(move || {
            // a thread that keeps IEEE denormals, as the Python interpreter's does
            assert!(std::hint::black_box(tiny) * half > 0.0);
            let before = control_register();
            let inside = preserving_thread_mode(|| {
                crate::backend::cpu::parallel::on_this_thread(ensure);
                std::hint::black_box(tiny) * half
            });
            assert_eq!(inside, 0.0, "the kernels flush");
            assert_eq!(control_register(), before);
            assert!(
                std::hint::black_box(tiny) * half > 0.0,
                "the caller does not"
            );
            // and the next call applies the mode again
            let again = preserving_thread_mode(|| {
                ensure();
                std::hint::black_box(tiny) * half
            });
            assert_eq!(again, 0.0);
        })
        .join()
        .unwrap();
    }
}
