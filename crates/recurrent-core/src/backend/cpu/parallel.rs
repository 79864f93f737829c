//! How many threads the CPU kernels may use.
//!
//! The kernels split work over the threads of the rayon pool they run in (batch slices carried
//! through time, the two directions of a layer, large products, transposes). [`on_this_thread`]
//! holds them to the calling thread instead, with no hand-off to a pool at all: for work too
//! small to gain from threads, where waking a pool costs more than it saves (a call at batch 1
//! takes a few microseconds; waking a sleeping worker, tens).

use std::cell::Cell;

thread_local! {
    static SEQUENTIAL: Cell<bool> = const { Cell::new(false) };
}

/// Whether the kernels on this thread are held to it by [`on_this_thread`].
pub fn is_sequential() -> bool {
    SEQUENTIAL.with(|s| s.get())
}

/// The threads the kernels on this thread may use: 1 inside [`on_this_thread`], else the size
/// of the current rayon pool.
pub fn current_threads() -> usize {
    if is_sequential() {
        1
    } else {
        rayon::current_num_threads()
    }
}

/// Run `f` with every kernel it calls on the calling thread alone (no rayon pool is used or
/// started), restoring the previous setting afterwards, even if `f` panics.
///
/// ```
/// use recurrent_core::runtime::{current_threads, on_this_thread};
/// assert_eq!(on_this_thread(current_threads), 1);
/// ```
pub fn on_this_thread<R>(f: impl FnOnce() -> R) -> R {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            SEQUENTIAL.with(|s| s.set(self.0));
        }
    }
    let _restore = Restore(SEQUENTIAL.with(|s| s.replace(true)));
    f()
}

/// `rayon::join` when the kernels may use more than one thread, else `a` then `b` here.
pub fn join<A, B, RA, RB>(a: A, b: B) -> (RA, RB)
where
    A: FnOnce() -> RA + Send,
    B: FnOnce() -> RB + Send,
    RA: Send,
    RB: Send,
{
    if current_threads() > 1 {
        rayon::join(a, b)
    } else {
        (a(), b())
    }
}
