//! Recurrent modules whose kind is chosen at run time, as torch.nn's `RNNBase` has a `mode`:
//! [`Recurrent`] (a stack of layers) and [`RecurrentCell`] (one step), with [`RnnState`]
//! holding `h` or, for an LSTM, `(h, c)`.
//!
//! An application that lets its user pick LSTM, GRU or Elman RNN holds one of these instead of
//! an enum of its own over [`Lstm`], [`Gru`] and [`Rnn`]; those typed modules remain, with the
//! same parameters, results and state dicts, and convert into a [`Recurrent`].

use super::base::RnnBase;
use super::cell::{CellBase, CellConfig, GruCell, LstmCell, RnnCell};
use super::config::{Nonlinearity, RnnOptions, VariationalDropout};
use super::layers::{Gru, Lstm, Rnn};
use super::packed::PackedSequence;
use crate::nn::module::Module;
use crate::rng::with_global;
use crate::{Error, Generator, Result, Tensor};
pub use recurrent_core::rnn::RnnMode;

/// The state a recurrent module carries from step to step: `h`, or `(h, c)` for an LSTM.
#[derive(Clone, Debug)]
pub enum RnnState {
    /// The hidden state of an Elman RNN or a GRU.
    H(Tensor),
    /// The hidden and cell states of an LSTM.
    HC(Tensor, Tensor),
}

impl RnnState {
    /// `h` (for an LSTM, the hidden part).
    pub fn h(&self) -> &Tensor {
        match self {
            RnnState::H(h) | RnnState::HC(h, _) => h,
        }
    }

    /// `c` of an LSTM.
    pub fn c(&self) -> Option<&Tensor> {
        match self {
            RnnState::H(_) => None,
            RnnState::HC(_, c) => Some(c),
        }
    }

    /// The same state cut from the graph (truncated backpropagation through time).
    ///
    /// ```
    /// use recurrent::nn::{RecurrentConfig, RnnMode};
    /// use recurrent::Tensor;
    /// let gru = RecurrentConfig::new(RnnMode::Gru, 3, 4).init().unwrap();
    /// let x = Tensor::zeros(&[5, 2, 3]).unwrap();
    /// let (_, state) = gru.forward(&x, None).unwrap();
    /// let (_, state) = gru.forward(&x, Some(&state.detach())).unwrap(); // the next chunk
    /// assert_eq!(state.h().shape(), &[1, 2, 4]);
    /// ```
    pub fn detach(&self) -> RnnState {
        match self {
            RnnState::H(h) => RnnState::H(h.detach()),
            RnnState::HC(h, c) => RnnState::HC(h.detach(), c.detach()),
        }
    }

    fn parts(&self) -> (&Tensor, Option<&Tensor>) {
        (self.h(), self.c())
    }
}

/// Check that `state` has the parts `mode` carries.
fn check_state(mode: RnnMode, state: Option<&RnnState>) -> Result<()> {
    match (mode, state) {
        (RnnMode::Lstm, Some(RnnState::H(_))) => Err(Error::invalid(
            "an LSTM's state is (h, c): pass RnnState::HC",
        )),
        (RnnMode::Lstm, _) | (_, None | Some(RnnState::H(_))) => Ok(()),
        (_, Some(RnnState::HC(..))) => Err(Error::invalid(format!(
            "only an LSTM has a cell state; a {} takes RnnState::H",
            mode.name()
        ))),
    }
}

fn state_of(h: Tensor, c: Option<Tensor>) -> RnnState {
    match c {
        Some(c) => RnnState::HC(h, c),
        None => RnnState::H(h),
    }
}

/// Configuration of a [`Recurrent`] module: `RecurrentConfig::new(mode, input_size,
/// hidden_size)`, `with_*` setters with PyTorch's names and defaults, then `init()`.
///
/// ```
/// use recurrent::nn::{RecurrentConfig, RnnMode};
/// let lstm = RecurrentConfig::new(RnnMode::Lstm, 8, 16)
///     .with_num_layers(2)
///     .with_bidirectional(true)
///     .with_proj_size(4)
///     .init()
///     .unwrap();
/// assert_eq!(lstm.mode(), RnnMode::Lstm);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RecurrentConfig {
    /// Which recurrence (`RnnTanh`, `RnnRelu`, `Lstm`, `Gru`).
    pub mode: RnnMode,
    /// The arguments shared by all recurrent modules.
    pub options: RnnOptions,
    /// LSTM `proj_size` (0: none).
    pub proj_size: usize,
}

impl RecurrentConfig {
    /// A `mode` module of `input_size` → `hidden_size` with PyTorch's defaults.
    pub fn new(mode: RnnMode, input_size: usize, hidden_size: usize) -> Self {
        RecurrentConfig {
            mode,
            options: RnnOptions::new(input_size, hidden_size),
            proj_size: 0,
        }
    }

    /// Set `num_layers`.
    ///
    /// ```
    /// # use recurrent::nn::{RecurrentConfig, RnnMode};
    /// let c = RecurrentConfig::new(RnnMode::Gru, 3, 4).with_num_layers(3);
    /// assert_eq!(c.options.num_layers, 3);
    /// ```
    pub fn with_num_layers(mut self, n: usize) -> Self {
        self.options.num_layers = n;
        self
    }

    /// Set `bias`.
    ///
    /// ```
    /// # use recurrent::nn::{Module, RecurrentConfig, RnnMode};
    /// let m = RecurrentConfig::new(RnnMode::Lstm, 3, 4).with_bias(false).init().unwrap();
    /// assert!(m.state_dict().iter().all(|(n, _)| !n.starts_with("bias")));
    /// ```
    pub fn with_bias(mut self, bias: bool) -> Self {
        self.options.bias = bias;
        self
    }

    /// Set `batch_first`.
    ///
    /// ```
    /// # use recurrent::nn::{RecurrentConfig, RnnMode};
    /// let m = RecurrentConfig::new(RnnMode::Gru, 3, 4).with_batch_first(true).init().unwrap();
    /// let x = recurrent::Tensor::zeros(&[2, 5, 3]).unwrap(); // [batch, time, features]
    /// assert_eq!(m.forward(&x, None).unwrap().0.shape(), &[2, 5, 4]);
    /// ```
    pub fn with_batch_first(mut self, batch_first: bool) -> Self {
        self.options.batch_first = batch_first;
        self
    }

    /// Set `dropout` (between layers, training only).
    ///
    /// ```
    /// # use recurrent::nn::{RecurrentConfig, RnnMode};
    /// let c = RecurrentConfig::new(RnnMode::Lstm, 3, 4).with_num_layers(2).with_dropout(0.3);
    /// assert_eq!(c.init().unwrap().base().options().dropout, 0.3);
    /// ```
    pub fn with_dropout(mut self, p: f64) -> Self {
        self.options.dropout = p;
        self
    }

    /// Set `bidirectional`.
    ///
    /// ```
    /// # use recurrent::nn::{RecurrentConfig, RnnMode};
    /// let m = RecurrentConfig::new(RnnMode::RnnTanh, 3, 4).with_bidirectional(true).init().unwrap();
    /// let x = recurrent::Tensor::zeros(&[5, 2, 3]).unwrap();
    /// assert_eq!(m.forward(&x, None).unwrap().0.shape(), &[5, 2, 8]);
    /// ```
    pub fn with_bidirectional(mut self, on: bool) -> Self {
        self.options.bidirectional = on;
        self
    }

    /// Variational dropout on layer inputs, the recurrent state and layer outputs (not in
    /// PyTorch; off by default).
    ///
    /// ```
    /// # use recurrent::nn::{RecurrentConfig, RnnMode};
    /// let c = RecurrentConfig::new(RnnMode::Lstm, 3, 4).with_variational_dropout(0.1, 0.2, 0.3);
    /// assert_eq!(c.options.variational.output, 0.3);
    /// ```
    pub fn with_variational_dropout(mut self, input: f64, state: f64, output: f64) -> Self {
        self.options.variational = VariationalDropout {
            input,
            state,
            output,
        };
        self
    }

    /// DropConnect on the hidden-to-hidden weights (not in PyTorch; 0 by default).
    ///
    /// ```
    /// # use recurrent::nn::{RecurrentConfig, RnnMode};
    /// let c = RecurrentConfig::new(RnnMode::Lstm, 3, 4).with_weight_drop(0.5);
    /// assert_eq!(c.options.weight_drop, 0.5);
    /// ```
    pub fn with_weight_drop(mut self, p: f64) -> Self {
        self.options.weight_drop = p;
        self
    }

    /// Put the parameters on `device` (an error at `init` when this build cannot use it).
    ///
    /// ```
    /// # use recurrent::nn::{RecurrentConfig, RnnMode};
    /// let c = RecurrentConfig::new(RnnMode::Gru, 3, 4).with_device(recurrent::Device::Cuda(0));
    /// assert!(c.init().is_err()); // this build has no CUDA backend
    /// ```
    pub fn with_device(mut self, device: crate::Device) -> Self {
        self.options.device = device;
        self
    }

    /// Set `proj_size` (LSTM only; an error for another mode at `init`).
    ///
    /// ```
    /// # use recurrent::nn::{RecurrentConfig, RnnMode};
    /// let m = RecurrentConfig::new(RnnMode::Lstm, 3, 8).with_proj_size(2).init().unwrap();
    /// let (out, state) = m.forward(&recurrent::Tensor::zeros(&[4, 1, 3]).unwrap(), None).unwrap();
    /// assert_eq!((out.shape(), state.c().unwrap().shape()), (&[4, 1, 2][..], &[1, 1, 8][..]));
    /// assert!(RecurrentConfig::new(RnnMode::Gru, 3, 8).with_proj_size(2).init().is_err());
    /// ```
    pub fn with_proj_size(mut self, p: usize) -> Self {
        self.proj_size = p;
        self
    }

    /// Build with PyTorch's initialisation from the process-wide generator.
    pub fn init(&self) -> Result<Recurrent> {
        with_global(|g| self.init_with(g))
    }

    /// Build with PyTorch's initialisation drawn from `rng`.
    pub fn init_with(&self, rng: &mut Generator) -> Result<Recurrent> {
        Ok(Recurrent(RnnBase::new(
            self.mode,
            self.options,
            self.proj_size,
            rng,
        )?))
    }
}

/// A multi-layer recurrent module of a kind chosen at run time: an Elman RNN, an LSTM or a
/// GRU, with the same parameters, results and state dict as [`Rnn`], [`Lstm`] and [`Gru`].
///
/// ```
/// use recurrent::nn::{pack_padded_sequence, RecurrentConfig, RnnMode, RnnState};
/// use recurrent::Tensor;
/// for mode in [RnnMode::Lstm, RnnMode::Gru, RnnMode::RnnTanh] {
///     let m = RecurrentConfig::new(mode, 3, 4).with_batch_first(true).init().unwrap();
///     let x = Tensor::zeros(&[2, 5, 3]).unwrap();
///     let (out, state) = m.forward(&x, None).unwrap();
///     assert_eq!(out.shape(), &[2, 5, 4]);
///     assert_eq!(state.c().is_some(), mode == RnnMode::Lstm);
///     let packed = pack_padded_sequence(&x, &[5, 3], true, true).unwrap();
///     let (out, _) = m.forward_packed(&packed, Some(&state)).unwrap();
///     assert_eq!(out.data.shape(), &[8, 4]);
/// }
/// ```
#[derive(Clone, Debug)]
pub struct Recurrent(RnnBase);

impl Recurrent {
    /// Which recurrence this module computes.
    pub fn mode(&self) -> RnnMode {
        self.0.mode()
    }

    /// The parameters and configuration.
    pub fn base(&self) -> &RnnBase {
        &self.0
    }

    /// Run over a padded batch (shapes as [`Lstm::forward`]); `state` is `h_0`, or `(h_0,
    /// c_0)` for an LSTM (zeros if `None`). Returns the output and the final state.
    pub fn forward(&self, input: &Tensor, state: Option<&RnnState>) -> Result<(Tensor, RnnState)> {
        check_state(self.mode(), state)?;
        let (h0, c0) = state.map(RnnState::parts).unzip();
        let o = self.0.forward_padded(input, h0, c0.flatten())?;
        Ok((o.output, state_of(o.h_n, o.c_n)))
    }

    /// Run over a packed batch: the packed output and the final state in the caller's batch
    /// order.
    pub fn forward_packed(
        &self,
        input: &PackedSequence,
        state: Option<&RnnState>,
    ) -> Result<(PackedSequence, RnnState)> {
        check_state(self.mode(), state)?;
        let (h0, c0) = state.map(RnnState::parts).unzip();
        let (out, h, c) = self.0.forward_packed(input, h0, c0.flatten())?;
        Ok((out, state_of(h, c)))
    }
}

impl Module for Recurrent {
    fn visit_parameters(&self, f: &mut dyn FnMut(&str, &Tensor)) {
        self.0.visit(f)
    }
    fn set_training(&mut self, training: bool) {
        self.0.set_training(training);
    }
    fn type_name(&self) -> &'static str {
        self.0.label()
    }
}

impl From<Lstm> for Recurrent {
    fn from(m: Lstm) -> Self {
        Recurrent(m.base().clone())
    }
}

impl From<Gru> for Recurrent {
    fn from(m: Gru) -> Self {
        Recurrent(m.base().clone())
    }
}

impl From<Rnn> for Recurrent {
    fn from(m: Rnn) -> Self {
        Recurrent(m.base().clone())
    }
}

/// One step of a recurrent cell of a kind chosen at run time (`nn.RNNCell`, `nn.LSTMCell` or
/// `nn.GRUCell`), with their parameters and results.
///
/// ```
/// use recurrent::nn::{CellConfig, RecurrentCell, RnnMode, RnnState};
/// use recurrent::Tensor;
/// let cell = RecurrentCell::new(RnnMode::Lstm, &CellConfig::new(3, 4)).unwrap();
/// let x = Tensor::zeros(&[2, 3]).unwrap();
/// let s = cell.forward(&x, None).unwrap();
/// let s = cell.forward(&x, Some(&s)).unwrap();
/// assert!(matches!(s, RnnState::HC(..)));
/// ```
#[derive(Clone, Debug)]
pub struct RecurrentCell(CellBase);

impl RecurrentCell {
    /// A `mode` cell with the sizes and bias of `cfg`, initialised from the process-wide
    /// generator (`RnnTanh`/`RnnRelu` override `cfg`'s nonlinearity).
    pub fn new(mode: RnnMode, cfg: &CellConfig) -> Result<RecurrentCell> {
        with_global(|g| Self::new_with(mode, cfg, g))
    }

    /// As [`RecurrentCell::new`], drawing the initialisation from `rng`.
    pub fn new_with(mode: RnnMode, cfg: &CellConfig, rng: &mut Generator) -> Result<RecurrentCell> {
        Ok(RecurrentCell(match mode {
            RnnMode::Lstm => cfg.lstm_with(rng)?.base().clone(),
            RnnMode::Gru => cfg.gru_with(rng)?.base().clone(),
            RnnMode::RnnTanh => cfg
                .with_nonlinearity(Nonlinearity::Tanh)
                .rnn_with(rng)?
                .base()
                .clone(),
            RnnMode::RnnRelu => cfg
                .with_nonlinearity(Nonlinearity::Relu)
                .rnn_with(rng)?
                .base()
                .clone(),
        }))
    }

    /// Which recurrence this cell computes.
    pub fn mode(&self) -> RnnMode {
        self.0.mode()
    }

    /// One step: `input: [B, I]` or `[I]`, `state` as the cell's kind carries it (zeros if
    /// `None`) → the next state.
    pub fn forward(&self, input: &Tensor, state: Option<&RnnState>) -> Result<RnnState> {
        check_state(self.mode(), state)?;
        let parts: Option<Vec<&Tensor>> = state.map(|s| match s {
            RnnState::H(h) => vec![h],
            RnnState::HC(h, c) => vec![h, c],
        });
        let mut out = self.0.step(input, parts.as_deref())?;
        let c = (out.len() == 2).then(|| out.pop().expect("c'"));
        let h = out.pop().expect("h'");
        Ok(state_of(h, c))
    }
}

impl Module for RecurrentCell {
    fn visit_parameters(&self, f: &mut dyn FnMut(&str, &Tensor)) {
        self.0.visit(f)
    }
    fn type_name(&self) -> &'static str {
        self.0.label()
    }
}

impl From<LstmCell> for RecurrentCell {
    fn from(c: LstmCell) -> Self {
        RecurrentCell(c.base().clone())
    }
}

impl From<GruCell> for RecurrentCell {
    fn from(c: GruCell) -> Self {
        RecurrentCell(c.base().clone())
    }
}

impl From<RnnCell> for RecurrentCell {
    fn from(c: RnnCell) -> Self {
        RecurrentCell(c.base().clone())
    }
}
