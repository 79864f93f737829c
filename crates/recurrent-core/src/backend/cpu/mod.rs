//! The CPU backend: kernels over plain slices, generic over `f32`/`f64` (the gradient checks
//! run in `f64`, the Python package runs both). Parallelism through rayon ([`parallel`]);
//! matrix products through [`gemm`]; denormals flushed to zero on entry to every kernel
//! ([`denormal`]).
//!
//! The recurrent kernels: [`scan`] is the one time loop of a layer-direction, generic over a
//! [`cell::CellKernel`] that [`lstm`], [`gru`] and [`elman`] implement with their equations;
//! [`weight_grads`] does the products after the reverse loop; [`layer`] runs the directions of
//! a layer and picks the kernel of a mode. Nothing outside this crate names this module: the
//! layers call [`crate::ops`], and [`crate::rnn::host`] and [`crate::runtime`] are the public
//! faces of what is here.

pub mod activation;
pub mod cell;
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
pub mod rows;
pub mod scan;
pub mod step;
pub mod weight_grads;
