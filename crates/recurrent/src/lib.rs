//! `recurrent`: recurrent neural networks with PyTorch's semantics.
//!
//! - [`nn`]: the layers (`Rnn`, `Lstm`, `Gru` and their cells, `Linear`, `Embedding`,
//!   `Dropout`), the losses, packed sequences, and the [`nn::Module`] trait with PyTorch's
//!   parameter names and state dicts.
//! - [`optim`]: SGD, Adam, AdamW, RMSprop, gradient clipping and learning-rate schedules,
//!   with PyTorch's update rules.
//! - [`io`]: safetensors checkpoints that move both ways between this crate and PyTorch, and
//!   atomic file writes.
//!
//! The tensor and autograd engine is `recurrent-core`, re-exported here.
//!
//! ```
//! use recurrent::nn::{LstmConfig, Module};
//! use recurrent::Tensor;
//!
//! recurrent::manual_seed(0);
//! let lstm = LstmConfig::new(8, 16).with_num_layers(2).with_batch_first(true).init().unwrap();
//! let x = Tensor::zeros(&[4, 10, 8]).unwrap(); // [batch, time, features]
//! let (out, (h_n, c_n)) = lstm.forward(&x, None).unwrap();
//! assert_eq!(out.shape(), &[4, 10, 16]);
//! assert_eq!(h_n.shape(), &[2, 4, 16]);
//! assert_eq!(c_n.shape(), &[2, 4, 16]);
//! let names: Vec<String> = lstm.named_parameters().into_iter().map(|(n, _)| n).collect();
//! assert_eq!(names[..4], ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"]);
//! ```

#![warn(missing_docs)]

pub mod io;
pub mod nn;
pub mod optim;

pub use recurrent_core::*;
