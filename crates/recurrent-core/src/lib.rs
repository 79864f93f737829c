//! `recurrent-core`: an `f32` tensor, reverse-mode automatic differentiation over coarse fused
//! ops, and the device kernels behind them.
//!
//! It knows nothing of layers: modules, optimisers and checkpoints live in the `recurrent`
//! crate, which re-exports this one.

#![warn(missing_docs)]

pub mod backend;
pub mod error;
pub mod rng;

pub use backend::Device;
pub use error::{Error, Result};
pub use rng::{manual_seed, Generator};
