//! How the kernels run on this machine: threads, the floating-point mode, and what the
//! processor offers. Everything here is a control or a measurement; no computation lives here.

pub use crate::backend::cpu::activation::instruction_set;
pub use crate::backend::cpu::denormal::{
    apply_to_current_pool, flush_denormals, init_thread_pool, preserving_thread_mode,
    set_flush_denormals,
};
pub use crate::backend::cpu::gemm::ceiling as gemm_ceiling;
pub use crate::backend::cpu::parallel::{current_threads, on_this_thread};

/// The step kernel the `f32` recurrent layers use on this machine: `avx512`, `avx2`,
/// `portable`, or `gemm+…` (the GEMM crate's product, then the cell's equations), as chosen by
/// the CPU and `RECURRENT_STEP_KERNEL`.
///
/// ```
/// let k = recurrent_core::runtime::step_kernel();
/// assert!(["avx512", "avx2", "portable"].contains(&k.as_str()) || k.starts_with("gemm+"));
/// ```
pub fn step_kernel() -> String {
    <f32 as crate::Float>::step_kernel().name()
}
