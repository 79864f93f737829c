//! How the kernels run on this machine: threads, the floating-point mode, and what the
//! processor offers. Everything here is a control or a measurement; no computation lives here.

pub use crate::backend::cpu::activation::instruction_set;
pub use crate::backend::cpu::denormal::{
    apply_to_current_pool, flush_denormals, init_thread_pool, preserving_thread_mode,
    set_flush_denormals,
};
pub use crate::backend::cpu::gemm::ceiling as gemm_ceiling;
pub use crate::backend::cpu::parallel::{current_threads, on_this_thread};
