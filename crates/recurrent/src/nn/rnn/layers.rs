//! The multi-layer recurrent modules `Rnn` (Elman, tanh or ReLU), `Lstm` (with `proj_size`)
//! and `Gru`, with PyTorch's arguments, defaults, validation, shapes and parameter names.
//! Their configuration is in [`super::config`], the layer loop they share in
//! [`super::base`].

use super::base::RnnBase;
use super::packed::PackedSequence;
use crate::nn::module::Module;
use crate::{Result, Tensor};

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
                self.0.set_training(training);
            }
            fn type_name(&self) -> &'static str {
                $name
            }
        }
    };
}

/// A multi-layer Elman RNN (`nn.RNN`): `h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)`.
#[derive(Clone, Debug)]
pub struct Rnn(pub(crate) RnnBase);

/// A multi-layer LSTM (`nn.LSTM`), optionally with a projection of the hidden state.
#[derive(Clone, Debug)]
pub struct Lstm(pub(crate) RnnBase);

/// A multi-layer GRU (`nn.GRU`).
#[derive(Clone, Debug)]
pub struct Gru(pub(crate) RnnBase);

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
