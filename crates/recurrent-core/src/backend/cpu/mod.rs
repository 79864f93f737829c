//! The CPU backend: kernels over plain slices, generic over `f32`/`f64` where the gradient
//! checks need it. Parallelism through rayon; matrix products through [`gemm`]; denormals
//! flushed to zero on entry to every kernel ([`denormal`]).

pub mod activation;
pub mod denormal;
pub mod elman;
pub mod float;
pub mod gemm;
#[cfg(test)]
pub(crate) mod gradcheck;
pub mod gru;
pub mod layer;
pub mod lstm;
pub mod parallel;
pub mod scan;
