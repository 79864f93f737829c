//! The spec of a layer stack as the Python side describes it, and the sizes it implies.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use recurrent_core::rnn::host::RnnWeights;
use recurrent_core::rnn::{RnnDims, RnnMode};

/// What a stack of layers is, as the Python side describes it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Spec {
    pub(crate) mode: RnnMode,
    pub(crate) input_size: usize,
    pub(crate) hidden_size: usize,
    pub(crate) proj_size: usize,
    pub(crate) num_layers: usize,
    pub(crate) directions: usize,
    pub(crate) bias: bool,
    pub(crate) double: bool,
}

/// `(mode, input_size, hidden_size, proj_size, num_layers, directions, bias, float64)`.
pub(crate) type SpecTuple = (String, usize, usize, usize, usize, usize, bool, bool);

impl Spec {
    pub(crate) fn parse(t: SpecTuple) -> PyResult<Spec> {
        let (mode, input_size, hidden_size, proj_size, num_layers, directions, bias, double) = t;
        let mode = RnnMode::parse(&mode)
            .ok_or_else(|| PyValueError::new_err(format!("unknown RNN mode {mode:?}")))?;
        if input_size == 0 || hidden_size == 0 || num_layers == 0 || !(1..=2).contains(&directions)
        {
            return Err(PyValueError::new_err(format!(
                "invalid sizes: input_size {input_size}, hidden_size {hidden_size}, \
                 num_layers {num_layers}, directions {directions}"
            )));
        }
        if proj_size > 0 && (mode != RnnMode::Lstm || proj_size >= hidden_size) {
            return Err(PyValueError::new_err(
                "proj_size must be smaller than hidden_size, and only an LSTM has one",
            ));
        }
        Ok(Spec {
            mode,
            input_size,
            hidden_size,
            proj_size,
            num_layers,
            directions,
            bias,
            double,
        })
    }

    pub(crate) fn out_size(&self) -> usize {
        if self.proj_size > 0 {
            self.proj_size
        } else {
            self.hidden_size
        }
    }

    /// Floating-point operations of the forward products over `n` packed rows.
    pub(crate) fn forward_flops(&self, n: usize) -> usize {
        (0..self.num_layers)
            .map(|k| 2 * self.gates() * (self.layer_dims(k).input_size + self.out_size()))
            .sum::<usize>()
            * n
            * self.directions
    }

    pub(crate) fn gates(&self) -> usize {
        self.mode.gate_multiplier() * self.hidden_size
    }

    pub(crate) fn layer_dims(&self, k: usize) -> RnnDims {
        RnnDims {
            input_size: if k == 0 {
                self.input_size
            } else {
                self.directions * self.out_size()
            },
            hidden_size: self.hidden_size,
            proj_size: self.proj_size,
        }
    }

    /// Parameters per layer-direction, in torch.nn's order: `weight_ih, weight_hh,
    /// [bias_ih, bias_hh], [weight_hr]`.
    pub(crate) fn params_per_direction(&self) -> usize {
        2 + if self.bias { 2 } else { 0 } + usize::from(self.proj_size > 0)
    }

    /// Element counts of every parameter, in torch.nn's order (`_flat_weights`).
    pub(crate) fn param_sizes(&self) -> Vec<usize> {
        let (g, h, p) = (self.gates(), self.hidden_size, self.out_size());
        let mut sizes = Vec::new();
        for k in 0..self.num_layers {
            let i = self.layer_dims(k).input_size;
            for _ in 0..self.directions {
                sizes.extend([g * i, g * p]);
                if self.bias {
                    sizes.extend([g, g]);
                }
                if self.proj_size > 0 {
                    sizes.push(p * h);
                }
            }
        }
        sizes
    }

    /// Element counts of `h` and `c` for one layer (both directions) and a batch of `b`.
    pub(crate) fn state_sizes(&self, b: usize) -> (usize, usize) {
        let c = if self.mode.has_cell_state() {
            self.directions * b * self.hidden_size
        } else {
            0
        };
        (self.directions * b * self.out_size(), c)
    }

    /// The weights of layer `k`, one entry per direction, from all parameters in order.
    pub(crate) fn layer_weights<'a, T>(
        &self,
        params: &[&'a [T]],
        k: usize,
    ) -> Vec<RnnWeights<'a, T>> {
        let per = self.params_per_direction();
        (0..self.directions)
            .map(|dir| {
                let ps = &params[(k * self.directions + dir) * per..][..per];
                let (b_ih, b_hh) = if self.bias {
                    (Some(ps[2]), Some(ps[3]))
                } else {
                    (None, None)
                };
                RnnWeights {
                    w_ih: ps[0],
                    w_hh: ps[1],
                    b_ih,
                    b_hh,
                    w_hr: (self.proj_size > 0).then(|| ps[per - 1]),
                    h_mask: None,
                }
            })
            .collect()
    }
}

pub(crate) fn internal(msg: String) -> PyErr {
    PyValueError::new_err(format!("recurrent: bad call into the native module: {msg}"))
}
