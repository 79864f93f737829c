//! The single-step cells `RnnCell`, `LstmCell` and `GruCell`. They run the same fused layer
//! kernels as the multi-layer modules with one timestep, so a cell stepped T times and the
//! layer over T steps compute the same thing.

use super::config::Nonlinearity;
use crate::nn::init;
use crate::nn::module::Module;
use crate::ops::rnn::{rnn_layer, DirectionParams, RnnMode};
use crate::rng::with_global;
use crate::rnn::{RnnDims, Steps};
use crate::{Device, Error, Generator, Result, Tensor};

/// Configuration of a cell: `CellConfig::new(input_size, hidden_size)`, then `lstm()`,
/// `gru()` or `rnn()`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CellConfig {
    /// Features per input row.
    pub input_size: usize,
    /// Features of the hidden state.
    pub hidden_size: usize,
    /// Whether the cell has `bias_ih`/`bias_hh` (default true).
    pub bias: bool,
    /// The Elman cell's nonlinearity (ignored by LSTM and GRU cells).
    pub nonlinearity: Nonlinearity,
    /// Where the parameters live (default the CPU).
    pub device: Device,
}

impl CellConfig {
    /// A cell configuration with PyTorch's defaults.
    pub fn new(input_size: usize, hidden_size: usize) -> Self {
        CellConfig {
            input_size,
            hidden_size,
            bias: true,
            nonlinearity: Nonlinearity::Tanh,
            device: Device::Cpu,
        }
    }

    /// Put the parameters on `device` (an error when the cell is built, if this build cannot
    /// use it).
    ///
    /// ```
    /// use recurrent::nn::CellConfig;
    /// use recurrent::Device;
    /// assert!(CellConfig::new(3, 4).with_device(Device::Cuda(0)).gru().is_err());
    /// ```
    pub fn with_device(mut self, device: Device) -> Self {
        self.device = device;
        self
    }

    /// Set `bias`.
    ///
    /// ```
    /// use recurrent::nn::{CellConfig, Module};
    /// let cell = CellConfig::new(3, 4).with_bias(false).lstm().unwrap();
    /// assert_eq!(cell.state_dict().len(), 2); // weight_ih and weight_hh only
    /// ```
    pub fn with_bias(mut self, bias: bool) -> Self {
        self.bias = bias;
        self
    }

    /// Set the Elman nonlinearity.
    ///
    /// ```
    /// use recurrent::nn::{CellConfig, Nonlinearity};
    /// let cell = CellConfig::new(3, 4).with_nonlinearity(Nonlinearity::Relu).rnn().unwrap();
    /// let h = cell.forward(&recurrent::Tensor::ones(&[2, 3]).unwrap(), None).unwrap();
    /// assert!(h.to_vec().iter().all(|&v| v >= 0.0));
    /// ```
    pub fn with_nonlinearity(mut self, n: Nonlinearity) -> Self {
        self.nonlinearity = n;
        self
    }

    fn build(&self, mode: RnnMode, rng: &mut Generator) -> Result<CellBase> {
        if self.input_size == 0 || self.hidden_size == 0 {
            return Err(Error::invalid(
                "input_size and hidden_size must be greater than zero",
            ));
        }
        self.device.check_available()?;
        let (g, h) = (mode.gate_multiplier() * self.hidden_size, self.hidden_size);
        let dev = self.device;
        let w_ih = init::rnn_uniform(&[g, self.input_size], h, rng)?.to_device(dev)?;
        let w_hh = init::rnn_uniform(&[g, h], h, rng)?.to_device(dev)?;
        let (b_ih, b_hh) = if self.bias {
            (
                Some(init::rnn_uniform(&[g], h, rng)?.to_device(dev)?),
                Some(init::rnn_uniform(&[g], h, rng)?.to_device(dev)?),
            )
        } else {
            (None, None)
        };
        Ok(CellBase {
            mode,
            input_size: self.input_size,
            hidden_size: h,
            w_ih,
            w_hh,
            b_ih,
            b_hh,
        })
    }

    /// An `RnnCell` from the process-wide generator.
    pub fn rnn(&self) -> Result<RnnCell> {
        with_global(|g| self.rnn_with(g))
    }

    /// An `RnnCell` from `rng`.
    pub fn rnn_with(&self, rng: &mut Generator) -> Result<RnnCell> {
        let mode = match self.nonlinearity {
            Nonlinearity::Tanh => RnnMode::RnnTanh,
            Nonlinearity::Relu => RnnMode::RnnRelu,
        };
        Ok(RnnCell(self.build(mode, rng)?))
    }

    /// An `LstmCell` from the process-wide generator.
    pub fn lstm(&self) -> Result<LstmCell> {
        with_global(|g| self.lstm_with(g))
    }

    /// An `LstmCell` from `rng`.
    pub fn lstm_with(&self, rng: &mut Generator) -> Result<LstmCell> {
        Ok(LstmCell(self.build(RnnMode::Lstm, rng)?))
    }

    /// A `GruCell` from the process-wide generator.
    pub fn gru(&self) -> Result<GruCell> {
        with_global(|g| self.gru_with(g))
    }

    /// A `GruCell` from `rng`.
    pub fn gru_with(&self, rng: &mut Generator) -> Result<GruCell> {
        Ok(GruCell(self.build(RnnMode::Gru, rng)?))
    }
}

/// Parameters and the step shared by the three cells.
#[derive(Clone, Debug)]
pub struct CellBase {
    mode: RnnMode,
    input_size: usize,
    hidden_size: usize,
    /// `weight_ih`: `[G*H, I]`.
    pub w_ih: Tensor,
    /// `weight_hh`: `[G*H, H]`.
    pub w_hh: Tensor,
    /// `bias_ih`: `[G*H]`.
    pub b_ih: Option<Tensor>,
    /// `bias_hh`: `[G*H]`.
    pub b_hh: Option<Tensor>,
}

impl CellBase {
    pub(crate) fn mode(&self) -> RnnMode {
        self.mode
    }

    pub(crate) fn label(&self) -> &'static str {
        match self.mode {
            RnnMode::Lstm => "LSTMCell",
            RnnMode::Gru => "GRUCell",
            _ => "RNNCell",
        }
    }

    pub(crate) fn visit(&self, f: &mut dyn FnMut(&str, &Tensor)) {
        f("weight_ih", &self.w_ih);
        f("weight_hh", &self.w_hh);
        if let Some(b) = &self.b_ih {
            f("bias_ih", b);
        }
        if let Some(b) = &self.b_hh {
            f("bias_hh", b);
        }
    }

    /// One step; `states` are `[h]` or `[h, c]`, each `[B, H]` or `[H]`.
    pub(crate) fn step(&self, input: &Tensor, states: Option<&[&Tensor]>) -> Result<Vec<Tensor>> {
        let label = self.label();
        if input.ndim() != 1 && input.ndim() != 2 {
            return Err(Error::invalid(format!(
                "{label}: Expected input to be 1D or 2D, got {}D instead",
                input.ndim()
            )));
        }
        if let Some(states) = states {
            for (i, s) in states.iter().enumerate() {
                if s.ndim() != 1 && s.ndim() != 2 {
                    let what = if states.len() == 1 {
                        "hidden".to_string()
                    } else {
                        format!("hx[{i}]")
                    };
                    return Err(Error::invalid(format!(
                        "{label}: Expected {what} to be 1D or 2D, got {}D instead",
                        s.ndim()
                    )));
                }
            }
        }
        let batched = input.ndim() == 2;
        let x = if batched {
            input.clone()
        } else {
            input.unsqueeze(0)?
        };
        if x.shape()[1] != self.input_size {
            return Err(Error::invalid(format!(
                "input has inconsistent input_size: got {} expected {}",
                x.shape()[1],
                self.input_size
            )));
        }
        let b = x.shape()[0];
        let n_states = if self.mode == RnnMode::Lstm { 2 } else { 1 };
        let states: Vec<Tensor> = match states {
            Some(s) => s
                .iter()
                .map(|t| {
                    if batched {
                        Ok((*t).clone())
                    } else {
                        t.unsqueeze(0)
                    }
                })
                .collect::<Result<_>>()?,
            None => (0..n_states)
                .map(|_| Tensor::zeros(&[b, self.hidden_size]))
                .collect::<Result<_>>()?,
        };
        for (i, s) in states.iter().enumerate() {
            if s.ndim() != 2 || s.shape()[0] != b {
                return Err(Error::invalid(format!(
                    "Input batch size {b} doesn't match hidden{i} batch size {}",
                    s.shape().first().copied().unwrap_or(0)
                )));
            }
            if s.shape()[1] != self.hidden_size {
                return Err(Error::invalid(format!(
                    "hidden{i} has inconsistent hidden_size: got {}, expected {}",
                    s.shape()[1],
                    self.hidden_size
                )));
            }
        }
        if b == 0 {
            return states
                .into_iter()
                .map(|s| if batched { Ok(s) } else { s.squeeze(0) })
                .collect();
        }
        let steps = Steps::full(1, b).expect("positive batch");
        let h0 = states[0].unsqueeze(0)?;
        let c0 = states.get(1).map(|c| c.unsqueeze(0)).transpose()?;
        let params = [DirectionParams {
            w_ih: &self.w_ih,
            w_hh: &self.w_hh,
            b_ih: self.b_ih.as_ref(),
            b_hh: self.b_hh.as_ref(),
            w_hr: None,
            h_mask: None,
        }];
        let dims = RnnDims {
            input_size: self.input_size,
            hidden_size: self.hidden_size,
            proj_size: 0,
        };
        let r = rnn_layer(self.mode, &x, &steps, &h0, c0.as_ref(), &params, dims)?;
        let mut out = vec![r.h_n.squeeze(0)?];
        if let Some(c) = r.c_n {
            out.push(c.squeeze(0)?);
        }
        if !batched {
            out = out
                .into_iter()
                .map(|t| t.squeeze(0))
                .collect::<Result<_>>()?;
        }
        Ok(out)
    }
}

macro_rules! cell_common {
    ($t:ident, $name:literal) => {
        impl $t {
            /// The cell's parameters.
            pub fn base(&self) -> &CellBase {
                &self.0
            }
        }
        impl Module for $t {
            fn visit_parameters(&self, f: &mut dyn FnMut(&str, &Tensor)) {
                self.0.visit(f)
            }
            fn type_name(&self) -> &'static str {
                $name
            }
        }
    };
}

/// `nn.RNNCell`: `h' = act(W_ih x + b_ih + W_hh h + b_hh)`.
#[derive(Clone, Debug)]
pub struct RnnCell(CellBase);

/// `nn.LSTMCell`.
#[derive(Clone, Debug)]
pub struct LstmCell(CellBase);

/// `nn.GRUCell`.
#[derive(Clone, Debug)]
pub struct GruCell(CellBase);

cell_common!(RnnCell, "RNNCell");
cell_common!(LstmCell, "LSTMCell");
cell_common!(GruCell, "GRUCell");

impl RnnCell {
    /// `input: [B, I]` or `[I]`; `hx: [B, H]` or `[H]` (zeros if `None`) → `h': [B, H]`/`[H]`.
    pub fn forward(&self, input: &Tensor, hx: Option<&Tensor>) -> Result<Tensor> {
        let hs = hx.map(|h| [h]);
        Ok(self.0.step(input, hs.as_ref().map(|a| &a[..]))?.remove(0))
    }
}

impl GruCell {
    /// `input: [B, I]` or `[I]`; `hx: [B, H]` or `[H]` (zeros if `None`) → `h'`.
    pub fn forward(&self, input: &Tensor, hx: Option<&Tensor>) -> Result<Tensor> {
        let hs = hx.map(|h| [h]);
        Ok(self.0.step(input, hs.as_ref().map(|a| &a[..]))?.remove(0))
    }
}

impl LstmCell {
    /// `input: [B, I]` or `[I]`; `hx = (h, c)`, each `[B, H]` or `[H]` (zeros if `None`) →
    /// `(h', c')`.
    pub fn forward(
        &self,
        input: &Tensor,
        hx: Option<(&Tensor, &Tensor)>,
    ) -> Result<(Tensor, Tensor)> {
        let hs = hx.map(|(h, c)| [h, c]);
        let mut v = self.0.step(input, hs.as_ref().map(|a| &a[..]))?;
        let c = v.pop().expect("c'");
        let h = v.pop().expect("h'");
        Ok((h, c))
    }
}
