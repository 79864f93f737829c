//! Where the kernels run: the calling thread for small calls, else a pool per thread count.

use parking_lot::Mutex;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use rayon::{ThreadPool, ThreadPoolBuilder};
use recurrent_core::runtime;
use std::sync::Arc;

/// Below this many floating-point operations a call runs on the calling thread: waking a
/// pool's sleeping workers costs tens of microseconds, more than two threads can save.
pub(crate) const SMALL_CALL_FLOPS: usize = 10_000_000;

/// Run `f` (the kernels) with the GIL released: on the calling thread for small work or one
/// thread (its floating-point mode restored afterwards: it is the interpreter's), else inside
/// a rayon pool of `threads` threads, never rayon's global pool.
pub(crate) fn run_kernels<R: Send>(
    py: Python<'_>,
    threads: usize,
    flops: usize,
    f: impl FnOnce() -> R + Send,
) -> PyResult<R> {
    if threads <= 1 || flops < SMALL_CALL_FLOPS {
        return Ok(py.detach(|| runtime::preserving_thread_mode(|| runtime::on_this_thread(f))));
    }
    let pool = pool(threads)?;
    Ok(py.detach(|| pool.install(f)))
}

/// Rayon pools by size, built once, their threads flushing denormals as configured.
pub(crate) static POOLS: Mutex<Vec<Arc<ThreadPool>>> = Mutex::new(Vec::new());

pub(crate) fn pool(threads: usize) -> PyResult<Arc<ThreadPool>> {
    let threads = threads.max(1);
    let mut pools = POOLS.lock();
    if let Some(p) = pools.iter().find(|p| p.current_num_threads() == threads) {
        return Ok(p.clone());
    }
    let p = ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("recurrent-{i}"))
        .build()
        .map_err(|e| PyRuntimeError::new_err(format!("cannot start {threads} threads: {e}")))?;
    p.install(runtime::apply_to_current_pool);
    let p = Arc::new(p);
    pools.push(p.clone());
    Ok(p)
}

/// Apply the current denormal setting to the threads of every pool built so far.
pub(crate) fn apply_mode_to_pools() {
    for p in POOLS.lock().iter() {
        p.install(runtime::apply_to_current_pool);
    }
}
