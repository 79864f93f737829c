//! What `Rnn`, `Lstm` and `Gru` share: the parameters of every layer and direction, and the
//! layer loop around the fused recurrent op (`ops::rnn`, one autograd node per layer, both
//! directions): batch-first and unbatched input, default and user initial states, packed
//! input and its sort order, dropout between layers and its variational variants, stacking
//! `h_n`.

use super::config::RnnOptions;
use super::packed::PackedSequence;
use crate::nn::init;
use crate::ops::dropout::dropout_mask;
use crate::ops::rnn::{rnn_layer, DirectionParams, RnnMode};
use crate::rng::with_global;
use crate::rnn::{RnnDims, Steps};
use crate::{Device, Error, Generator, Result, Tensor};

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
