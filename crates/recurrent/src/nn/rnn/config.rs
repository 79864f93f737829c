//! The configuration of the recurrent modules: PyTorch's arguments and defaults
//! ([`RnnOptions`]), a config type per module (`RnnConfig`, `LstmConfig`, `GruConfig`) with
//! `new(required...)`, `with_*` setters and `init()`, and the extras beyond PyTorch
//! (variational dropout, weight drop).

use super::base::RnnBase;
use super::layers::{Gru, Lstm, Rnn};
use crate::ops::rnn::RnnMode;
use crate::rng::with_global;
use crate::{Device, Error, Generator, Result};

/// The nonlinearity of an Elman [`Rnn`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Nonlinearity {
    /// `tanh` (the default).
    #[default]
    Tanh,
    /// `relu`.
    Relu,
}

impl Nonlinearity {
    /// Parse PyTorch's names `"tanh"` and `"relu"`.
    pub fn parse(s: &str) -> Result<Nonlinearity> {
        match s {
            "tanh" => Ok(Nonlinearity::Tanh),
            "relu" => Ok(Nonlinearity::Relu),
            other => Err(Error::invalid(format!(
                "Unknown nonlinearity '{other}'. Select from 'tanh' or 'relu'."
            ))),
        }
    }
}

/// Variational ("locked") dropout, beyond PyTorch's API (Gal & Ghahramani 2016, AWD-LSTM):
/// one mask per sequence, the same at every timestep, in training only. Off (0) by default,
/// so nothing changes unless asked for.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct VariationalDropout {
    /// On each layer's input.
    pub input: f64,
    /// On the recurrent state `h_{t-1}` where it enters the product with `W_hh`.
    pub state: f64,
    /// On each layer's output (the last layer's included).
    pub output: f64,
}

/// The arguments every recurrent module shares (PyTorch's names and defaults).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RnnOptions {
    /// Features per input step.
    pub input_size: usize,
    /// Features of the hidden state.
    pub hidden_size: usize,
    /// Stacked layers (default 1).
    pub num_layers: usize,
    /// Whether the layers have `bias_ih`/`bias_hh` (default true).
    pub bias: bool,
    /// Input and output as `[batch, seq, feature]` (default false: `[seq, batch, feature]`).
    pub batch_first: bool,
    /// Dropout probability on the outputs of every layer but the last, in training.
    pub dropout: f64,
    /// Run a second, reverse direction in every layer (default false).
    pub bidirectional: bool,
    /// Variational dropout (not in PyTorch; off by default).
    pub variational: VariationalDropout,
    /// DropConnect on `W_hh` (AWD-LSTM's "weight drop"; not in PyTorch; 0 by default): each
    /// training forward uses `W_hh ⊙ M / (1 - p)` with a fresh Bernoulli mask `M`.
    pub weight_drop: f64,
    /// Where the parameters live (default the CPU).
    pub device: Device,
}

impl RnnOptions {
    /// PyTorch's defaults for a module of `input_size` → `hidden_size`.
    pub fn new(input_size: usize, hidden_size: usize) -> Self {
        RnnOptions {
            input_size,
            hidden_size,
            num_layers: 1,
            bias: true,
            batch_first: false,
            dropout: 0.0,
            bidirectional: false,
            variational: VariationalDropout::default(),
            weight_drop: 0.0,
            device: Device::Cpu,
        }
    }
}

macro_rules! rnn_config {
    ($(#[$doc:meta])* $name:ident, $module:ident, $($extra_field:ident : $extra_ty:ty = $extra_default:expr),*) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq)]
        pub struct $name {
            /// The arguments shared by all recurrent modules.
            pub options: RnnOptions,
            $(
                #[doc = concat!("`", stringify!($extra_field), "`.")]
                pub $extra_field: $extra_ty,
            )*
        }

        impl $name {
            /// The module's configuration with PyTorch's defaults.
            pub fn new(input_size: usize, hidden_size: usize) -> Self {
                $name {
                    options: RnnOptions::new(input_size, hidden_size),
                    $($extra_field: $extra_default,)*
                }
            }
            /// Set `num_layers`.
            ///
            #[doc = concat!("```\nuse recurrent::nn::Module;\nlet m = recurrent::nn::", stringify!($name), "::new(3, 4).with_num_layers(2).init().unwrap();\nassert!(m.state_dict().iter().any(|(n, _)| n == \"weight_hh_l1\"));\n```")]
            pub fn with_num_layers(mut self, n: usize) -> Self {
                self.options.num_layers = n;
                self
            }
            /// Set `bias`.
            ///
            #[doc = concat!("```\nuse recurrent::nn::Module;\nlet m = recurrent::nn::", stringify!($name), "::new(3, 4).with_bias(false).init().unwrap();\nassert!(m.state_dict().iter().all(|(n, _)| !n.starts_with(\"bias\")));\n```")]
            pub fn with_bias(mut self, bias: bool) -> Self {
                self.options.bias = bias;
                self
            }
            /// Set `batch_first`.
            ///
            #[doc = concat!("```\nlet m = recurrent::nn::", stringify!($name), "::new(3, 4).with_batch_first(true).init().unwrap();\nlet x = recurrent::Tensor::zeros(&[2, 5, 3]).unwrap(); // [batch, time, features]\nassert_eq!(m.forward(&x, None).unwrap().0.shape(), &[2, 5, 4]);\n```")]
            pub fn with_batch_first(mut self, batch_first: bool) -> Self {
                self.options.batch_first = batch_first;
                self
            }
            /// Set `dropout` (between layers, training only).
            ///
            #[doc = concat!("```\nuse recurrent::nn::Module;\nlet m = recurrent::nn::", stringify!($name), "::new(3, 4).with_num_layers(2).with_dropout(0.5).init().unwrap();\nassert_eq!(m.base().options().dropout, 0.5);\n```")]
            pub fn with_dropout(mut self, p: f64) -> Self {
                self.options.dropout = p;
                self
            }
            /// Set `bidirectional`.
            ///
            #[doc = concat!("```\nlet m = recurrent::nn::", stringify!($name), "::new(3, 4).with_bidirectional(true).init().unwrap();\nlet x = recurrent::Tensor::zeros(&[5, 2, 3]).unwrap();\nassert_eq!(m.forward(&x, None).unwrap().0.shape(), &[5, 2, 8]); // both directions\n```")]
            pub fn with_bidirectional(mut self, on: bool) -> Self {
                self.options.bidirectional = on;
                self
            }
            /// Variational dropout on layer inputs, the recurrent state and layer outputs
            /// (one mask per sequence, the same at every step; not in PyTorch).
            ///
            #[doc = concat!("```\nlet m = recurrent::nn::", stringify!($name), "::new(3, 4).with_variational_dropout(0.1, 0.2, 0.3).init().unwrap();\nassert_eq!(m.base().options().variational.state, 0.2);\n```")]
            pub fn with_variational_dropout(mut self, input: f64, state: f64, output: f64) -> Self {
                self.options.variational = VariationalDropout { input, state, output };
                self
            }
            /// DropConnect on the hidden-to-hidden weights (AWD-LSTM's weight drop; not in PyTorch).
            ///
            #[doc = concat!("```\nlet m = recurrent::nn::", stringify!($name), "::new(3, 4).with_weight_drop(0.5).init().unwrap();\nassert_eq!(m.base().options().weight_drop, 0.5);\n```")]
            pub fn with_weight_drop(mut self, p: f64) -> Self {
                self.options.weight_drop = p;
                self
            }
            /// Put the parameters on `device` (an error at `init` when this build cannot use it).
            ///
            #[doc = concat!("```\nuse recurrent::Device;\nassert!(recurrent::nn::", stringify!($name), "::new(3, 4).with_device(Device::Cpu).init().is_ok());\nassert!(recurrent::nn::", stringify!($name), "::new(3, 4).with_device(Device::Cuda(0)).init().is_err()); // no CUDA backend in this build\n```")]
            pub fn with_device(mut self, device: Device) -> Self {
                self.options.device = device;
                self
            }
            /// Build with PyTorch's initialisation from the process-wide generator.
            pub fn init(&self) -> Result<$module> {
                with_global(|g| self.init_with(g))
            }
        }
    };
}

rnn_config!(
    /// Configuration of an Elman [`Rnn`]: `RnnConfig::new(input_size, hidden_size)` plus
    /// `with_*` setters, then `init()`.
    RnnConfig, Rnn, nonlinearity: Nonlinearity = Nonlinearity::Tanh
);
rnn_config!(
    /// Configuration of an [`Lstm`]: `LstmConfig::new(input_size, hidden_size)` plus `with_*`
    /// setters, then `init()`.
    LstmConfig, Lstm, proj_size: usize = 0
);
rnn_config!(
    /// Configuration of a [`Gru`]: `GruConfig::new(input_size, hidden_size)` plus `with_*`
    /// setters, then `init()`.
    GruConfig, Gru,
);

impl RnnConfig {
    /// Set `nonlinearity`.
    ///
    /// ```
    /// use recurrent::nn::{Nonlinearity, RnnConfig};
    /// let m = RnnConfig::new(3, 4).with_nonlinearity(Nonlinearity::Relu).init().unwrap();
    /// let (out, _) = m.forward(&recurrent::Tensor::ones(&[5, 2, 3]).unwrap(), None).unwrap();
    /// assert!(out.to_vec().iter().all(|&v| v >= 0.0));
    /// ```
    pub fn with_nonlinearity(mut self, n: Nonlinearity) -> Self {
        self.nonlinearity = n;
        self
    }
    /// Build with PyTorch's initialisation drawn from `rng`.
    pub fn init_with(&self, rng: &mut Generator) -> Result<Rnn> {
        let mode = match self.nonlinearity {
            Nonlinearity::Tanh => RnnMode::RnnTanh,
            Nonlinearity::Relu => RnnMode::RnnRelu,
        };
        Ok(Rnn(RnnBase::new(mode, self.options, 0, rng)?))
    }
}

impl LstmConfig {
    /// Set `proj_size` (0 disables the projection).
    ///
    /// ```
    /// use recurrent::nn::LstmConfig;
    /// let m = LstmConfig::new(3, 8).with_proj_size(2).init().unwrap();
    /// let (out, (h, c)) = m.forward(&recurrent::Tensor::zeros(&[4, 1, 3]).unwrap(), None).unwrap();
    /// assert_eq!((out.shape(), h.shape(), c.shape()), (&[4, 1, 2][..], &[1, 1, 2][..], &[1, 1, 8][..]));
    /// ```
    pub fn with_proj_size(mut self, p: usize) -> Self {
        self.proj_size = p;
        self
    }
    /// Build with PyTorch's initialisation drawn from `rng`.
    pub fn init_with(&self, rng: &mut Generator) -> Result<Lstm> {
        Ok(Lstm(RnnBase::new(
            RnnMode::Lstm,
            self.options,
            self.proj_size,
            rng,
        )?))
    }
}

impl GruConfig {
    /// Build with PyTorch's initialisation drawn from `rng`.
    pub fn init_with(&self, rng: &mut Generator) -> Result<Gru> {
        Ok(Gru(RnnBase::new(RnnMode::Gru, self.options, 0, rng)?))
    }
}
