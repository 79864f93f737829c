//! The multi-layer recurrent modules `Rnn` (Elman, tanh or ReLU), `Lstm` (with `proj_size`)
//! and `Gru`, with PyTorch's arguments, defaults, validation, shapes and parameter names.
//!
//! Each layer (both directions) is one fused autograd node (`ops::rnn`); this file only
//! handles the surroundings: batch-first and unbatched input, default and user initial
//! states, packed input and its sort order, dropout between layers, and stacking `h_n`.

use super::packed::PackedSequence;
use crate::nn::init;
use crate::nn::module::Module;
use crate::ops::dropout::dropout_mask;
use crate::ops::rnn::{rnn_layer, DirectionParams, RnnMode};
use crate::rng::with_global;
use crate::rnn::{RnnDims, Steps};
use crate::{Device, Error, Generator, Result, Tensor};

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

/// A variational dropout mask for packed rows `[N, F]` on `device`: one `[F]` mask per
/// sequence (drawn once), repeated at every step of that sequence.
pub fn sequence_mask(
    steps: &Steps,
    f: usize,
    p: f32,
    g: &mut Generator,
    device: Device,
) -> Result<Tensor> {
    let per_seq = dropout_mask(&[steps.batch(), f], p, g, Device::Cpu)?.to_vec();
    let mut out = Vec::with_capacity(steps.total() * f);
    for t in 0..steps.len() {
        out.extend_from_slice(&per_seq[..steps.batch_size(t) * f]);
    }
    Tensor::from_vec(out, &[steps.total(), f])?.to_device(device)
}

/// The parameters of one direction of one layer.
#[derive(Clone, Debug)]
pub struct LayerParams {
    /// `weight_ih_l{k}`: `[G*H, I_k]`.
    pub w_ih: Tensor,
    /// `weight_hh_l{k}`: `[G*H, P]`.
    pub w_hh: Tensor,
    /// `bias_ih_l{k}`: `[G*H]`.
    pub b_ih: Option<Tensor>,
    /// `bias_hh_l{k}`: `[G*H]`.
    pub b_hh: Option<Tensor>,
    /// `weight_hr_l{k}` (LSTM projection): `[P, H]`.
    pub w_hr: Option<Tensor>,
}

impl LayerParams {
    fn as_direction<'a>(
        &'a self,
        w_hh: Option<&'a Tensor>,
        h_mask: Option<&'a Tensor>,
    ) -> DirectionParams<'a> {
        DirectionParams {
            w_ih: &self.w_ih,
            w_hh: w_hh.unwrap_or(&self.w_hh),
            b_ih: self.b_ih.as_ref(),
            b_hh: self.b_hh.as_ref(),
            w_hr: self.w_hr.as_ref(),
            h_mask,
        }
    }
}

/// What `Rnn`, `Lstm` and `Gru` share: configuration, parameters and the layer loop.
#[derive(Clone, Debug)]
pub struct RnnBase {
    mode: RnnMode,
    options: RnnOptions,
    proj_size: usize,
    /// `layers[k][d]`: layer `k`, direction `d` (1 = reverse).
    layers: Vec<Vec<LayerParams>>,
    training: bool,
}

/// The outputs of a recurrent module on padded input.
pub(crate) struct Outputs {
    pub(crate) output: Tensor,
    pub(crate) h_n: Tensor,
    pub(crate) c_n: Option<Tensor>,
}

impl RnnBase {
    pub(crate) fn new(
        mode: RnnMode,
        o: RnnOptions,
        proj_size: usize,
        rng: &mut Generator,
    ) -> Result<RnnBase> {
        if !(0.0..=1.0).contains(&o.dropout) || o.dropout.is_nan() {
            return Err(Error::invalid(
                "dropout should be a number in range [0, 1] representing the probability of an element being zeroed",
            ));
        }
        let v = o.variational;
        for (name, p) in [
            ("variational input dropout", v.input),
            ("variational state dropout", v.state),
            ("variational output dropout", v.output),
            ("weight_drop", o.weight_drop),
        ] {
            if !(0.0..1.0).contains(&p) {
                return Err(Error::invalid(format!("{name} must be in [0, 1), got {p}")));
            }
        }
        if o.input_size == 0 {
            return Err(Error::invalid("input_size must be greater than zero"));
        }
        if o.hidden_size == 0 {
            return Err(Error::invalid("hidden_size must be greater than zero"));
        }
        if o.num_layers == 0 {
            return Err(Error::invalid("num_layers must be greater than zero"));
        }
        if proj_size > 0 && mode != RnnMode::Lstm {
            return Err(Error::invalid(
                "proj_size argument is only supported for LSTM, not RNN or GRU",
            ));
        }
        if proj_size > 0 && proj_size >= o.hidden_size {
            return Err(Error::invalid(
                "proj_size has to be smaller than hidden_size",
            ));
        }
        o.device.check_available()?;
        let g = mode.gate_multiplier() * o.hidden_size;
        let p = if proj_size > 0 {
            proj_size
        } else {
            o.hidden_size
        };
        let dirs = if o.bidirectional { 2 } else { 1 };
        let h = o.hidden_size;
        let mut layers = Vec::with_capacity(o.num_layers);
        for k in 0..o.num_layers {
            let in_k = if k == 0 { o.input_size } else { p * dirs };
            let mut ds = Vec::with_capacity(dirs);
            for _ in 0..dirs {
                // Registration order (and so initialisation order): w_ih, w_hh, b_ih, b_hh, w_hr.
                let w_ih = init::rnn_uniform(&[g, in_k], h, rng)?;
                let w_hh = init::rnn_uniform(&[g, p], h, rng)?;
                let (b_ih, b_hh) = if o.bias {
                    (
                        Some(init::rnn_uniform(&[g], h, rng)?),
                        Some(init::rnn_uniform(&[g], h, rng)?),
                    )
                } else {
                    (None, None)
                };
                let w_hr = if proj_size > 0 {
                    Some(init::rnn_uniform(&[proj_size, h], h, rng)?)
                } else {
                    None
                };
                let dev = |t: Tensor| t.to_device(o.device);
                ds.push(LayerParams {
                    w_ih: dev(w_ih)?,
                    w_hh: dev(w_hh)?,
                    b_ih: b_ih.map(dev).transpose()?,
                    b_hh: b_hh.map(dev).transpose()?,
                    w_hr: w_hr.map(dev).transpose()?,
                });
            }
            layers.push(ds);
        }
        Ok(RnnBase {
            mode,
            options: o,
            proj_size,
            layers,
            training: true,
        })
    }

    fn directions(&self) -> usize {
        if self.options.bidirectional {
            2
        } else {
            1
        }
    }

    fn out_size(&self) -> usize {
        if self.proj_size > 0 {
            self.proj_size
        } else {
            self.options.hidden_size
        }
    }

    fn is_lstm(&self) -> bool {
        self.mode == RnnMode::Lstm
    }

    /// Which recurrence the module computes.
    pub fn mode(&self) -> RnnMode {
        self.mode
    }

    pub(crate) fn set_training(&mut self, training: bool) {
        self.training = training;
    }

    pub(crate) fn label(&self) -> &'static str {
        match self.mode {
            RnnMode::Lstm => "LSTM",
            RnnMode::Gru => "GRU",
            _ => "RNN",
        }
    }

    pub(crate) fn visit(&self, f: &mut dyn FnMut(&str, &Tensor)) {
        for (k, dirs) in self.layers.iter().enumerate() {
            for (d, lp) in dirs.iter().enumerate() {
                let sfx = if d == 1 { "_reverse" } else { "" };
                f(&format!("weight_ih_l{k}{sfx}"), &lp.w_ih);
                f(&format!("weight_hh_l{k}{sfx}"), &lp.w_hh);
                if let Some(b) = &lp.b_ih {
                    f(&format!("bias_ih_l{k}{sfx}"), b);
                }
                if let Some(b) = &lp.b_hh {
                    f(&format!("bias_hh_l{k}{sfx}"), b);
                }
                if let Some(w) = &lp.w_hr {
                    f(&format!("weight_hr_l{k}{sfx}"), w);
                }
            }
        }
    }

    fn hidden_shape(&self, batch: usize) -> [usize; 3] {
        [
            self.options.num_layers * self.directions(),
            batch,
            self.out_size(),
        ]
    }

    fn cell_shape(&self, batch: usize) -> [usize; 3] {
        [
            self.options.num_layers * self.directions(),
            batch,
            self.options.hidden_size,
        ]
    }

    fn check_hidden(t: &Tensor, expected: [usize; 3], label: &str) -> Result<()> {
        if t.shape() != expected {
            return Err(Error::invalid(format!(
                "Expected {label} size ({}, {}, {}), got {:?}",
                expected[0],
                expected[1],
                expected[2],
                t.shape()
            )));
        }
        Ok(())
    }

    fn check_hidden_pair(
        &self,
        h0: Option<&Tensor>,
        c0: Option<&Tensor>,
        batch: usize,
    ) -> Result<()> {
        let (hl, cl) = if self.is_lstm() {
            ("hidden[0]", "hidden[1]")
        } else {
            ("hidden", "")
        };
        if let Some(h) = h0 {
            Self::check_hidden(h, self.hidden_shape(batch), hl)?;
        }
        if let Some(c) = c0 {
            Self::check_hidden(c, self.cell_shape(batch), cl)?;
        }
        Ok(())
    }

    /// The layer loop over packed rows `x: [N, I]`; `h0: [L*D, B, P]`, `c0: [L*D, B, H]`.
    fn run(
        &self,
        x: &Tensor,
        steps: &Steps,
        h0: Option<Tensor>,
        c0: Option<Tensor>,
    ) -> Result<(Tensor, Tensor, Option<Tensor>)> {
        let d = self.directions();
        let b = steps.batch();
        let h0 = match h0 {
            Some(h) => h,
            None => Tensor::zeros(&self.hidden_shape(b))?,
        };
        let c0 = match (self.is_lstm(), c0) {
            (true, Some(c)) => Some(c),
            (true, None) => Some(Tensor::zeros(&self.cell_shape(b))?),
            (false, _) => None,
        };
        let nl = self.options.num_layers;
        let mut x = x.clone();
        let mut hs = Vec::with_capacity(nl);
        let mut cs = Vec::with_capacity(nl);
        for (k, dirs) in self.layers.iter().enumerate() {
            let (h0_k, c0_k) = if nl == 1 {
                (h0.clone(), c0.clone())
            } else {
                (
                    h0.narrow(0, k * d, d)?,
                    c0.as_ref().map(|c| c.narrow(0, k * d, d)).transpose()?,
                )
            };
            let dims = RnnDims {
                input_size: if k == 0 {
                    self.options.input_size
                } else {
                    d * self.out_size()
                },
                hidden_size: self.options.hidden_size,
                proj_size: self.proj_size,
            };
            let train = self.training;
            let v = self.options.variational;
            let p_out = self.out_size();
            let dev = x.device();
            if train && v.input > 0.0 {
                let m =
                    with_global(|g| sequence_mask(steps, dims.input_size, v.input as f32, g, dev))?;
                x = x.mul_mask(&m)?;
            }
            let state_masks: Vec<Option<Tensor>> = (0..d)
                .map(|_| {
                    (train && v.state > 0.0)
                        .then(|| {
                            with_global(|g| {
                                dropout_mask(&[steps.batch(), p_out], v.state as f32, g, dev)
                            })
                        })
                        .transpose()
                })
                .collect::<Result<_>>()?;
            let dropped: Vec<Option<Tensor>> = dirs
                .iter()
                .map(|lp| {
                    (train && self.options.weight_drop > 0.0)
                        .then(|| {
                            let m = with_global(|g| {
                                dropout_mask(
                                    lp.w_hh.shape(),
                                    self.options.weight_drop as f32,
                                    g,
                                    lp.w_hh.device(),
                                )
                            })?;
                            lp.w_hh.mul_mask(&m)
                        })
                        .transpose()
                })
                .collect::<Result<_>>()?;
            let params: Vec<DirectionParams<'_>> = dirs
                .iter()
                .zip(&dropped)
                .zip(&state_masks)
                .map(|((lp, w), m)| lp.as_direction(w.as_ref(), m.as_ref()))
                .collect();
            let r = rnn_layer(self.mode, &x, steps, &h0_k, c0_k.as_ref(), &params, dims)?;
            x = r.output;
            if train && v.output > 0.0 {
                let m = with_global(|g| sequence_mask(steps, d * p_out, v.output as f32, g, dev))?;
                x = x.mul_mask(&m)?;
            }
            if self.training && self.options.dropout > 0.0 && k + 1 < nl {
                let p = self.options.dropout as f32;
                x = with_global(|g| x.dropout(p, true, g))?;
            }
            hs.push(r.h_n);
            cs.extend(r.c_n);
        }
        let h_n = if nl == 1 {
            hs.pop().expect("one layer")
        } else {
            Tensor::cat(&hs, 0)?
        };
        let c_n = match cs.len() {
            0 => None,
            1 => cs.pop(),
            _ => Some(Tensor::cat(&cs, 0)?),
        };
        Ok((x, h_n, c_n))
    }

    pub(crate) fn forward_padded(
        &self,
        input: &Tensor,
        h0: Option<&Tensor>,
        c0: Option<&Tensor>,
    ) -> Result<Outputs> {
        let o = &self.options;
        let nd = input.ndim();
        if nd != 2 && nd != 3 {
            let tensor = if self.mode == RnnMode::RnnTanh || self.mode == RnnMode::RnnRelu {
                " tensor"
            } else {
                ""
            };
            return Err(Error::invalid(format!(
                "{}: Expected input to be 2D or 3D, got {nd}D{tensor} instead",
                self.label()
            )));
        }
        let batched = nd == 3;
        let batch_dim = if o.batch_first { 0 } else { 1 };
        let state_dim = if batched { 3 } else { 2 };
        if self.is_lstm() {
            if let (Some(h), Some(c)) = (h0, c0) {
                if h.ndim() != state_dim || c.ndim() != state_dim {
                    let kind = if batched {
                        "batched 3-D"
                    } else {
                        "unbatched 2-D"
                    };
                    return Err(Error::invalid(format!(
                        "For {kind} input, hx and cx should also be {state_dim}-D but got ({}-D, {}-D) tensors",
                        h.ndim(),
                        c.ndim()
                    )));
                }
            }
        } else if let Some(h) = h0 {
            if h.ndim() != state_dim {
                let kind = if batched {
                    "batched 3-D"
                } else {
                    "unbatched 2-D"
                };
                return Err(Error::invalid(format!(
                    "For {kind} input, hx should also be {state_dim}-D but got {}-D tensor",
                    h.ndim()
                )));
            }
        }
        let input = if batched {
            input.clone()
        } else {
            input.unsqueeze(batch_dim)?
        };
        let (h0, c0) = if batched {
            (h0.cloned(), c0.cloned())
        } else {
            (
                h0.map(|h| h.unsqueeze(1)).transpose()?,
                c0.map(|c| c.unsqueeze(1)).transpose()?,
            )
        };
        if input.shape()[2] != o.input_size {
            return Err(Error::invalid(format!(
                "input.size(-1) must be equal to input_size. Expected {}, got {}",
                o.input_size,
                input.shape()[2]
            )));
        }
        let (steps_n, batch) = if o.batch_first {
            (input.shape()[1], input.shape()[0])
        } else {
            (input.shape()[0], input.shape()[1])
        };
        self.check_hidden_pair(h0.as_ref(), c0.as_ref(), batch)?;
        if steps_n == 0 {
            return Err(Error::invalid(
                "Expected sequence length to be larger than 0 in RNN",
            ));
        }
        let d = self.directions();
        let (output, h_n, c_n) = if batch == 0 {
            // Nothing to compute; PyTorch returns empty outputs of the right shapes.
            let out_shape = if o.batch_first {
                [0, steps_n, d * self.out_size()]
            } else {
                [steps_n, 0, d * self.out_size()]
            };
            let c_n = self
                .is_lstm()
                .then(|| Tensor::zeros(&self.cell_shape(0)))
                .transpose()?;
            (
                Tensor::zeros(&out_shape)?,
                Tensor::zeros(&self.hidden_shape(0))?,
                c_n,
            )
        } else {
            let x_tm = if o.batch_first {
                input.transpose(0, 1)?
            } else {
                input
            };
            let steps = Steps::full(steps_n, batch).expect("positive sizes");
            let x = x_tm.reshape(&[steps_n * batch, o.input_size])?;
            let (out, h_n, c_n) = self.run(&x, &steps, h0, c0)?;
            let out = out.reshape(&[steps_n, batch, d * self.out_size()])?;
            let out = if o.batch_first {
                out.transpose(0, 1)?
            } else {
                out
            };
            (out, h_n, c_n)
        };
        if batched {
            Ok(Outputs { output, h_n, c_n })
        } else {
            Ok(Outputs {
                output: output.squeeze(batch_dim)?,
                h_n: h_n.squeeze(1)?,
                c_n: c_n.map(|c| c.squeeze(1)).transpose()?,
            })
        }
    }

    pub(crate) fn forward_packed(
        &self,
        seq: &PackedSequence,
        h0: Option<&Tensor>,
        c0: Option<&Tensor>,
    ) -> Result<(PackedSequence, Tensor, Option<Tensor>)> {
        let data = &seq.data;
        if data.ndim() != 2 {
            return Err(Error::invalid(format!(
                "input must have 2 dimensions, got {}",
                data.ndim()
            )));
        }
        if data.shape()[1] != self.options.input_size {
            return Err(Error::invalid(format!(
                "input.size(-1) must be equal to input_size. Expected {}, got {}",
                self.options.input_size,
                data.shape()[1]
            )));
        }
        let steps = Steps::new(&seq.batch_sizes).ok_or_else(|| {
            Error::invalid(format!(
                "PackedSequence batch_sizes must be non-empty, positive and non-increasing, got {:?}",
                seq.batch_sizes
            ))
        })?;
        if steps.total() != data.shape()[0] {
            return Err(Error::invalid(format!(
                "PackedSequence data has {} rows but its batch_sizes add up to {}",
                data.shape()[0],
                steps.total()
            )));
        }
        let batch = steps.batch();
        let permute = |t: Option<&Tensor>| -> Result<Option<Tensor>> {
            match (t, &seq.sorted_indices) {
                (Some(t), Some(idx)) if t.ndim() == 3 && t.shape()[1] == idx.len() => {
                    Ok(Some(t.index_select(1, idx)?))
                }
                (t, _) => Ok(t.cloned()),
            }
        };
        self.check_hidden_pair(h0, c0, batch)?;
        let (h0, c0) = (permute(h0)?, permute(c0)?);
        let (out, h_n, c_n) = self.run(data, &steps, h0, c0)?;
        let unsort = |t: Tensor| -> Result<Tensor> {
            match &seq.unsorted_indices {
                Some(idx) => t.index_select(1, idx),
                None => Ok(t),
            }
        };
        let packed = PackedSequence {
            data: out,
            batch_sizes: seq.batch_sizes.clone(),
            sorted_indices: seq.sorted_indices.clone(),
            unsorted_indices: seq.unsorted_indices.clone(),
        };
        Ok((packed, unsort(h_n)?, c_n.map(unsort).transpose()?))
    }

    /// The parameters of layer `k`, direction `d` (1 = reverse).
    pub fn layer(&self, k: usize, d: usize) -> Option<&LayerParams> {
        self.layers.get(k).and_then(|l| l.get(d))
    }

    /// The shared arguments.
    pub fn options(&self) -> &RnnOptions {
        &self.options
    }

    /// Whether dropout between layers is active.
    pub fn is_training(&self) -> bool {
        self.training
    }
}

macro_rules! rnn_module_common {
    ($t:ident, $name:literal) => {
        impl $t {
            /// The parameters and configuration shared by all recurrent modules.
            pub fn base(&self) -> &RnnBase {
                &self.0
            }
        }

        impl Module for $t {
            fn visit_parameters(&self, f: &mut dyn FnMut(&str, &Tensor)) {
                self.0.visit(f)
            }
            fn set_training(&mut self, training: bool) {
                self.0.training = training;
            }
            fn type_name(&self) -> &'static str {
                $name
            }
        }
    };
}

/// A multi-layer Elman RNN (`nn.RNN`): `h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)`.
#[derive(Clone, Debug)]
pub struct Rnn(RnnBase);

/// A multi-layer LSTM (`nn.LSTM`), optionally with a projection of the hidden state.
#[derive(Clone, Debug)]
pub struct Lstm(RnnBase);

/// A multi-layer GRU (`nn.GRU`).
#[derive(Clone, Debug)]
pub struct Gru(RnnBase);

rnn_module_common!(Rnn, "RNN");
rnn_module_common!(Lstm, "LSTM");
rnn_module_common!(Gru, "GRU");

impl Rnn {
    /// Run over a padded batch.
    ///
    /// `input`: `[L, N, H_in]` (`[N, L, H_in]` with `batch_first`) or unbatched `[L, H_in]`;
    /// `h_0`: `[D*num_layers, N, H_out]` (`[D*num_layers, H_out]` unbatched), zeros if `None`.
    /// Returns `output: [L, N, D*H_out]` (batch-first if configured) and `h_n` shaped as `h_0`.
    pub fn forward(&self, input: &Tensor, h_0: Option<&Tensor>) -> Result<(Tensor, Tensor)> {
        let o = self.0.forward_padded(input, h_0, None)?;
        Ok((o.output, o.h_n))
    }

    /// Run over a packed batch: returns the packed output and `h_n: [D*num_layers, N, H_out]`
    /// in the caller's batch order (each sequence's state after its own last step).
    pub fn forward_packed(
        &self,
        input: &PackedSequence,
        h_0: Option<&Tensor>,
    ) -> Result<(PackedSequence, Tensor)> {
        let (p, h, _) = self.0.forward_packed(input, h_0, None)?;
        Ok((p, h))
    }
}

impl Gru {
    /// Run over a padded batch; shapes as [`Rnn::forward`].
    pub fn forward(&self, input: &Tensor, h_0: Option<&Tensor>) -> Result<(Tensor, Tensor)> {
        let o = self.0.forward_padded(input, h_0, None)?;
        Ok((o.output, o.h_n))
    }

    /// Run over a packed batch; see [`Rnn::forward_packed`].
    pub fn forward_packed(
        &self,
        input: &PackedSequence,
        h_0: Option<&Tensor>,
    ) -> Result<(PackedSequence, Tensor)> {
        let (p, h, _) = self.0.forward_packed(input, h_0, None)?;
        Ok((p, h))
    }
}

/// `(h_n, c_n)` of an LSTM.
pub type LstmState = (Tensor, Tensor);

impl Lstm {
    /// Run over a padded batch.
    ///
    /// `input`: `[L, N, H_in]` (`[N, L, H_in]` with `batch_first`) or unbatched `[L, H_in]`;
    /// `hx = (h_0, c_0)`: `h_0: [D*num_layers, N, H_out]`, `c_0: [D*num_layers, N, H_cell]`
    /// (without the `N` dim when unbatched), zeros if `None`. `H_out` is `proj_size` if set,
    /// else `hidden_size`. Returns `output: [L, N, D*H_out]` and `(h_n, c_n)`.
    pub fn forward(
        &self,
        input: &Tensor,
        hx: Option<(&Tensor, &Tensor)>,
    ) -> Result<(Tensor, LstmState)> {
        let o = self
            .0
            .forward_padded(input, hx.map(|h| h.0), hx.map(|h| h.1))?;
        Ok((o.output, (o.h_n, o.c_n.expect("LSTM has c_n"))))
    }

    /// Run over a packed batch; `(h_n, c_n)` in the caller's batch order.
    pub fn forward_packed(
        &self,
        input: &PackedSequence,
        hx: Option<(&Tensor, &Tensor)>,
    ) -> Result<(PackedSequence, LstmState)> {
        let (p, h, c) = self
            .0
            .forward_packed(input, hx.map(|h| h.0), hx.map(|h| h.1))?;
        Ok((p, (h, c.expect("LSTM has c_n"))))
    }
}
