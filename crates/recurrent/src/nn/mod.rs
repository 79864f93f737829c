//! Layers and losses with `torch.nn`'s names, arguments, defaults, shapes and parameter
//! names. Every forward returns `Result`: bad shapes are errors, never panics.

pub mod dropout;
pub mod embedding;
pub mod init;
pub mod linear;
pub mod loss;
pub mod module;
pub mod norm;
pub mod rnn;

pub use dropout::Dropout;
pub use embedding::{Embedding, EmbeddingConfig};
pub use linear::{Linear, LinearConfig};
pub use loss::{BceWithLogitsLoss, CrossEntropyLoss, MseLoss};
pub use module::{visit_child, Module, StateDict};
pub use norm::LayerNorm;
pub use rnn::*;
