//! The fused recurrent op: one stacked-RNN layer (one or two directions) over a whole packed
//! sequence batch is one autograd node, whose backward is the hand-derived backpropagation
//! through time of the device's kernels ([`crate::rnn::host`] on the CPU).
//!
//! The two directions of a bidirectional layer run in parallel (each on half the threads),
//! and write their halves of the `[N, 2P]` output in place (no concatenation). The output's
//! storage is shared with the backward, which reads `h_{t-1}` from it instead of keeping a
//! copy.
//!
//! This op takes the packed layout (`x: [N, I]` plus batch sizes); turning batch-first,
//! padded or unbatched input into it, and sorting, is the `nn` layer's job.

use super::{host_grads, storage_grads, Grads};
use crate::autograd::{needs_grad, record_shared, BackwardOp, GradStorage};
use crate::error::{Error, Result};
use crate::rnn::host::{
    layer_backward, layer_forward, LayerArgs, LayerGrads, LayerSaved, RnnGrads, RnnWeights,
};
pub use crate::rnn::RnnMode;
use crate::rnn::{RnnDims, Steps};
use crate::tensor::{shared, DataRef, SharedStorage, Tensor};

/// The parameters of one direction of one layer, in PyTorch's layout.
#[derive(Clone, Copy, Debug)]
pub struct DirectionParams<'a> {
    /// `weight_ih_l{k}{_reverse}`: `[G*H, I]`.
    pub w_ih: &'a Tensor,
    /// `weight_hh_l{k}{_reverse}`: `[G*H, P]`.
    pub w_hh: &'a Tensor,
    /// `bias_ih_l{k}{_reverse}`: `[G*H]`.
    pub b_ih: Option<&'a Tensor>,
    /// `bias_hh_l{k}{_reverse}`: `[G*H]`.
    pub b_hh: Option<&'a Tensor>,
    /// `weight_hr_l{k}{_reverse}` (LSTM with `proj_size`): `[P, H]`.
    pub w_hr: Option<&'a Tensor>,
    /// Variational dropout on the recurrent input: `[B, P]`, one mask row per sequence (in the
    /// packed, length-sorted order), the same at every step; `None` for none.
    pub h_mask: Option<&'a Tensor>,
}

impl<'a> DirectionParams<'a> {
    fn tensors(&self) -> [Option<&'a Tensor>; 5] {
        [
            Some(self.w_ih),
            Some(self.w_hh),
            self.b_ih,
            self.b_hh,
            self.w_hr,
        ]
    }
}

/// The outputs of one layer.
#[derive(Clone, Debug)]
pub struct RnnLayerOutput {
    /// `[N, D*P]`: every packed row's hidden state, directions side by side.
    pub output: Tensor,
    /// `[D, B, P]`: each sequence's final hidden state per direction.
    pub h_n: Tensor,
    /// `[D, B, H]` (LSTM only): each sequence's final cell state per direction.
    pub c_n: Option<Tensor>,
}

fn check_shape(what: &str, t: &Tensor, expected: &[usize]) -> Result<()> {
    if t.shape() != expected {
        return Err(Error::shape(what, expected, t.shape()));
    }
    Ok(())
}

/// Run one recurrent layer over a packed batch.
///
/// ```text
/// x:  [N, I]  packed rows (N = sum of batch sizes)
/// h0: [D, B, P];  c0: [D, B, H] (LSTM only)
/// dirs: D = 1 or 2 directions (the second runs in reverse)
/// ```
///
/// Returns the output `[N, D*P]`, `h_n: [D, B, P]` and (LSTM) `c_n: [D, B, H]`. All shapes
/// are validated; a mismatch is an `Err` naming the tensor.
pub fn rnn_layer(
    mode: RnnMode,
    x: &Tensor,
    steps: &Steps,
    h0: &Tensor,
    c0: Option<&Tensor>,
    dirs: &[DirectionParams<'_>],
    dims: RnnDims,
) -> Result<RnnLayerOutput> {
    let d = dirs.len();
    if !(1..=2).contains(&d) {
        return Err(Error::invalid(format!(
            "an RNN layer has 1 or 2 directions, got {d}"
        )));
    }
    let (i_size, h, p) = (dims.input_size, dims.hidden_size, dims.out_size());
    let (n, b) = (steps.total(), steps.batch());
    let g = mode.gate_multiplier() * h;
    if dims.proj_size > 0 && mode != RnnMode::Lstm {
        return Err(Error::invalid(
            "proj_size argument is only supported for LSTM, not RNN or GRU",
        ));
    }
    check_shape("input", x, &[n, i_size])?;
    check_shape("h_0", h0, &[d, b, p])?;
    match (mode, c0) {
        (RnnMode::Lstm, Some(c0)) => check_shape("c_0", c0, &[d, b, h])?,
        (RnnMode::Lstm, None) => return Err(Error::invalid("LSTM layer needs c_0")),
        (_, Some(_)) => return Err(Error::invalid("only an LSTM takes c_0")),
        _ => {}
    }
    for (k, dp) in dirs.iter().enumerate() {
        let sfx = if k == 1 { "_reverse" } else { "" };
        if let Some(m) = dp.h_mask {
            if m.numel() != b * p {
                return Err(Error::shape(format!("h_mask{sfx}"), &[b, p], m.shape()));
            }
        }
        check_shape(&format!("weight_ih{sfx}"), dp.w_ih, &[g, i_size])?;
        check_shape(&format!("weight_hh{sfx}"), dp.w_hh, &[g, p])?;
        if dp.b_ih.is_some() != dp.b_hh.is_some() {
            return Err(Error::invalid(
                "bias_ih and bias_hh must both be given or both absent",
            ));
        }
        if let Some(t) = dp.b_ih {
            check_shape(&format!("bias_ih{sfx}"), t, &[g])?;
        }
        if let Some(t) = dp.b_hh {
            check_shape(&format!("bias_hh{sfx}"), t, &[g])?;
        }
        match (dp.w_hr, dims.proj_size) {
            (Some(t), ps) if ps > 0 => check_shape(&format!("weight_hr{sfx}"), t, &[p, h])?,
            (None, 0) => {}
            _ => {
                return Err(Error::invalid(
                    "weight_hr must be given exactly when proj_size > 0",
                ))
            }
        }
    }

    // Node inputs: x, h0, (c0), then each direction's parameters in PyTorch's order.
    let mut inputs: Vec<&Tensor> = vec![x, h0];
    if let Some(c0) = c0 {
        inputs.push(c0);
    }
    for dp in dirs {
        inputs.extend(dp.tensors().into_iter().flatten());
    }
    let training = needs_grad(&inputs);

    let mut out = vec![0.0f32; n * d * p];
    let mut h_n = vec![0.0f32; d * b * p];
    let mut c_n = vec![0.0f32; if mode.has_cell_state() { d * b * h } else { 0 }];
    let saved = {
        let xd = x.data();
        let h0d = h0.data();
        let c0d = c0.map(|c| c.data());
        let guards: Vec<[Option<DataRef<'_>>; 5]> = dirs
            .iter()
            .map(|dp| dp.tensors().map(|t| t.map(Tensor::data)))
            .collect();
        let mask_guards: Vec<Option<DataRef<'_>>> =
            dirs.iter().map(|dp| dp.h_mask.map(Tensor::data)).collect();
        let weights: Vec<RnnWeights<'_, f32>> = guards
            .iter()
            .zip(&mask_guards)
            .map(|(g, m)| RnnWeights {
                h_mask: m.as_deref(),
                ..weights_of(g)
            })
            .collect();
        let layer = LayerArgs {
            mode,
            dims,
            steps,
            x: &xd,
            h0: &h0d,
            c0: c0d.as_deref().unwrap_or(&[]),
            weights: &weights,
        };
        layer_forward(&mut out, &mut h_n, &mut c_n, &layer, training)
    };

    let out_storage = shared(out);
    let backward: Option<Box<dyn BackwardOp>> = training.then(|| {
        Box::new(RnnBackward {
            mode,
            dims,
            steps: steps.clone(),
            x: x.clone(),
            h0: h0.clone(),
            c0: c0.cloned(),
            params: dirs
                .iter()
                .map(|dp| dp.tensors().map(|t| t.cloned()))
                .collect(),
            out: out_storage.clone(),
            masks: dirs
                .iter()
                .map(|dp| dp.h_mask.map(Tensor::detach))
                .collect(),
            saved: saved.expect("saved in training"),
        }) as Box<dyn BackwardOp>
    });
    let mut outputs = vec![(out_storage, vec![n, d * p]), (shared(h_n), vec![d, b, p])];
    if mode.has_cell_state() {
        outputs.push((shared(c_n), vec![d, b, h]));
    }
    let name = match mode {
        RnnMode::Lstm => "LstmBackward",
        RnnMode::Gru => "GruBackward",
        _ => "RnnBackward",
    };
    let mut res = record_shared(name, &inputs, outputs, backward).into_iter();
    let output = res.next().expect("output");
    let h_n = res.next().expect("h_n");
    Ok(RnnLayerOutput {
        output,
        h_n,
        c_n: res.next(),
    })
}

fn weights_of<'a>(g: &'a [Option<DataRef<'_>>; 5]) -> RnnWeights<'a, f32> {
    RnnWeights {
        w_ih: g[0].as_deref().expect("w_ih"),
        w_hh: g[1].as_deref().expect("w_hh"),
        b_ih: g[2].as_deref(),
        b_hh: g[3].as_deref(),
        w_hr: g[4].as_deref(),
        h_mask: None,
    }
}

struct RnnBackward {
    mode: RnnMode,
    dims: RnnDims,
    steps: Steps,
    x: Tensor,
    h0: Tensor,
    c0: Option<Tensor>,
    params: Vec<[Option<Tensor>; 5]>,
    out: SharedStorage,
    masks: Vec<Option<Tensor>>,
    saved: LayerSaved<f32>,
}

impl BackwardOp for RnnBackward {
    fn backward(self: Box<Self>, grads: GradStorage, needs: &[bool]) -> Result<GradStorage> {
        let grads = host_grads(grads);
        let RnnBackward {
            mode,
            dims,
            steps,
            x,
            h0,
            c0,
            params,
            out,
            masks,
            saved,
        } = *self;
        let d = params.len();
        let (i_size, h, p) = (dims.input_size, dims.hidden_size, dims.out_size());
        let (n, b) = (steps.total(), steps.batch());
        let lstm = mode.has_cell_state();
        let mut grads = grads.into_iter();
        let dout = grads.next().flatten();
        let dh_n = grads.next().flatten();
        let dc_n = grads.next().flatten();

        let mut dh0 = vec![0.0f32; d * b * p];
        let mut dc0 = vec![0.0f32; if lstm { d * b * h } else { 0 }];
        let mut dx = needs[0].then(|| vec![0.0f32; n * i_size]);
        // Gradient buffers for the parameters that exist and want one, in input order.
        let n_state = if lstm { 3 } else { 2 };
        let mut need_idx = n_state;
        let mut bufs: Vec<[Option<Vec<f32>>; 5]> = params
            .iter()
            .map(|ps| {
                std::array::from_fn(|j| {
                    ps[j].as_ref().and_then(|t| {
                        let want = needs[need_idx];
                        need_idx += 1;
                        want.then(|| vec![0.0f32; t.numel()])
                    })
                })
            })
            .collect();
        {
            let out_guard = out.read();
            let xd = x.data();
            let h0d = h0.data();
            let c0d = c0.as_ref().map(|c| c.data());
            let guards: Vec<[Option<DataRef<'_>>; 5]> = params
                .iter()
                .map(|ps| ps.each_ref().map(|t| t.as_ref().map(Tensor::data)))
                .collect();
            let mask_guards: Vec<Option<DataRef<'_>>> =
                masks.iter().map(|m| m.as_ref().map(Tensor::data)).collect();
            let weights: Vec<RnnWeights<'_, f32>> = guards
                .iter()
                .zip(&mask_guards)
                .map(|(g, m)| RnnWeights {
                    h_mask: m.as_deref(),
                    ..weights_of(g)
                })
                .collect();
            let layer = LayerArgs {
                mode,
                dims,
                steps: &steps,
                x: &xd,
                h0: &h0d,
                c0: c0d.as_deref().unwrap_or(&[]),
                weights: &weights,
            };
            let param_grads = bufs
                .iter_mut()
                .map(|[g0, g1, g2, g3, g4]| RnnGrads {
                    w_ih: g0.as_deref_mut(),
                    w_hh: g1.as_deref_mut(),
                    b_ih: g2.as_deref_mut(),
                    b_hh: g3.as_deref_mut(),
                    w_hr: g4.as_deref_mut(),
                })
                .collect();
            layer_backward(
                LayerGrads {
                    dx: dx.as_deref_mut(),
                    dh0: &mut dh0,
                    dc0: &mut dc0,
                    params: param_grads,
                },
                dout.as_deref(),
                dh_n.as_deref(),
                dc_n.as_deref(),
                saved,
                out_guard.as_slice(),
                &layer,
            );
        }
        let mut res: Grads = vec![dx, needs[1].then_some(dh0)];
        if lstm {
            res.push(needs[2].then_some(dc0));
        }
        for (ps, bs) in params.iter().zip(bufs) {
            for (p, buf) in ps.iter().zip(bs) {
                if p.is_some() {
                    res.push(buf);
                }
            }
        }
        Ok(storage_grads(res))
    }
}
