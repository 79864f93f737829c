//! `recurrent-core`: an `f32` tensor, reverse-mode automatic differentiation over coarse fused
//! ops, and the device kernels behind them.
//!
//! It knows nothing of layers: modules, optimisers and checkpoints live in the `recurrent`
//! crate, which re-exports this one.

#![warn(missing_docs)]

pub mod autograd;
pub mod backend;
pub mod error;
pub mod ops;
pub mod rng;
pub mod rnn;
pub mod runtime;
pub mod tensor;

pub use autograd::{is_grad_enabled, no_grad};
pub use backend::cpu::float::Float;
pub use backend::Device;
pub use error::{Error, Result};
pub use ops::embedding::EmbeddingOptions;
pub use ops::loss::{ClassTarget, CrossEntropyOptions, Reduction};
pub use ops::pool::PoolMode;
pub use rng::{manual_seed, Generator};
pub use runtime::{flush_denormals, init_thread_pool, set_flush_denormals};
pub use tensor::Tensor;
