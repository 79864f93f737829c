//! A whole stack of layers forward and backward, over the slices of [`crate::buffers`].

use crate::buffers::{view, Buf};
use crate::spec::{internal, Spec};
use pyo3::prelude::*;
use recurrent_core::rnn::host::{
    layer_backward, layer_forward, LayerArgs, LayerGrads, LayerSaved, RnnGrads,
};
use recurrent_core::rnn::Steps;
use recurrent_core::Float;

/// What the backward pass of a layer stack keeps from its forward pass.
pub(crate) struct StackSaved<T> {
    pub(crate) steps: Steps,
    pub(crate) layers: Vec<LayerSaved<T>>,
    /// `[N, D*P]`: the outputs of layers `0..L-1` (the last layer's output is the caller's).
    pub(crate) hidden: Vec<Vec<T>>,
    /// `[N, D*P]`: the inputs of layers `1..L` after dropout (empty without dropout, where
    /// they are `hidden`).
    pub(crate) dropped: Vec<Vec<T>>,
}

impl<T: Clone> Clone for StackSaved<T> {
    fn clone(&self) -> Self {
        StackSaved {
            steps: self.steps.clone(),
            layers: self.layers.clone(),
            hidden: self.hidden.clone(),
            dropped: self.dropped.clone(),
        }
    }
}

impl<T> StackSaved<T> {
    pub(crate) fn bytes(&self) -> usize {
        let vecs: usize = self.hidden.iter().chain(&self.dropped).map(Vec::len).sum();
        self.layers.iter().map(LayerSaved::bytes).sum::<usize>() + vecs * std::mem::size_of::<T>()
    }
}

/// The inputs of a stack, as slices.
pub(crate) struct StackInputs<'a, T> {
    pub(crate) x: &'a [T],
    pub(crate) h0: &'a [T],
    pub(crate) c0: &'a [T],
    pub(crate) params: Vec<&'a [T]>,
    pub(crate) masks: Vec<&'a [T]>,
}

impl<'a, T> StackInputs<'a, T> {
    /// # Safety
    /// Every buffer must be as [`view`] requires.
    pub(crate) unsafe fn new(
        spec: &Spec,
        steps: &Steps,
        x: Buf,
        h0: Buf,
        c0: Option<Buf>,
        params: &[Buf],
        masks: &[Buf],
    ) -> PyResult<Self> {
        let (n, b) = (steps.total(), steps.batch());
        let (hs, cs) = spec.state_sizes(b);
        let l = spec.num_layers;
        let sizes = spec.param_sizes();
        if params.len() != sizes.len() {
            return Err(internal(format!(
                "{} parameters, expected {}",
                params.len(),
                sizes.len()
            )));
        }
        if !(masks.is_empty() || masks.len() == l - 1) {
            return Err(internal(format!(
                "{} dropout masks for {l} layers",
                masks.len()
            )));
        }
        let c0 = match (c0, cs) {
            (Some(c0), _) => view(c0, l * cs, "c_0")?,
            (None, 0) => &[][..],
            (None, _) => return Err(internal("an LSTM needs c_0".into())),
        };
        let mask_size = n * spec.directions * spec.out_size();
        Ok(StackInputs {
            x: view(x, n * spec.input_size, "input")?,
            h0: view(h0, l * hs, "h_0")?,
            c0,
            params: params
                .iter()
                .zip(&sizes)
                .map(|(&p, &s)| view(p, s, "a parameter"))
                .collect::<PyResult<_>>()?,
            masks: masks
                .iter()
                .map(|&m| view(m, mask_size, "a dropout mask"))
                .collect::<PyResult<_>>()?,
        })
    }
}

/// Forward through all layers. `out: [N, D*P]`, `h_n: [L*D, B, P]`, `c_n: [L*D, B, H]`.
pub(crate) fn stack_forward<T: Float>(
    spec: &Spec,
    steps: Steps,
    inp: &StackInputs<'_, T>,
    out: &mut [T],
    h_n: &mut [T],
    c_n: &mut [T],
    training: bool,
) -> Option<StackSaved<T>> {
    let l = spec.num_layers;
    let (hs, cs) = spec.state_sizes(steps.batch());
    let width = steps.total() * spec.directions * spec.out_size();
    let mut layers = Vec::new();
    let mut hidden: Vec<Vec<T>> = Vec::new();
    let mut dropped: Vec<Vec<T>> = Vec::new();
    for k in 0..l {
        let weights = spec.layer_weights(&inp.params, k);
        let x = if k == 0 {
            inp.x
        } else if !inp.masks.is_empty() {
            dropped.last().expect("input of layer k")
        } else {
            hidden.last().expect("input of layer k")
        };
        let args = LayerArgs {
            mode: spec.mode,
            dims: spec.layer_dims(k),
            steps: &steps,
            x,
            h0: &inp.h0[k * hs..(k + 1) * hs],
            c0: &inp.c0[k * cs..(k + 1) * cs],
            weights: &weights,
        };
        let (h_nk, c_nk) = (
            &mut h_n[k * hs..(k + 1) * hs],
            &mut c_n[k * cs..(k + 1) * cs],
        );
        if k + 1 == l {
            layers.extend(layer_forward(out, h_nk, c_nk, &args, training));
        } else {
            let mut o = vec![T::zero(); width];
            layers.extend(layer_forward(&mut o, h_nk, c_nk, &args, training));
            if let Some(mask) = inp.masks.get(k) {
                let next = o.iter().zip(*mask).map(|(&v, &m)| v * m).collect();
                if !training {
                    dropped.clear();
                }
                dropped.push(next);
            }
            if !training {
                hidden.clear();
            }
            hidden.push(o);
        }
    }
    training.then_some(StackSaved {
        steps,
        layers,
        hidden,
        dropped,
    })
}

/// Where the gradients of a stack go; see [`Saved::backward`].
pub(crate) struct StackGrads<'a, T> {
    pub(crate) dx: Option<&'a mut [T]>,
    pub(crate) dh0: &'a mut [T],
    pub(crate) dc0: &'a mut [T],
    pub(crate) dparams: Vec<Option<&'a mut [T]>>,
}

/// The forward's output and the gradients that reach the stack's outputs (`None`: zero).
pub(crate) struct OutputGrads<'a, T> {
    pub(crate) out: &'a [T],
    pub(crate) dout: Option<&'a [T]>,
    pub(crate) dh_n: Option<&'a [T]>,
    pub(crate) dc_n: Option<&'a [T]>,
}

/// Backward through all layers, from the last to the first.
pub(crate) fn stack_backward<T: Float>(
    spec: &Spec,
    saved: StackSaved<T>,
    inp: &StackInputs<'_, T>,
    outputs: OutputGrads<'_, T>,
    grads: StackGrads<'_, T>,
) {
    let OutputGrads {
        out,
        dout,
        dh_n,
        dc_n,
    } = outputs;
    let StackSaved {
        steps,
        layers,
        hidden,
        dropped,
    } = saved;
    let l = spec.num_layers;
    let (hs, cs) = spec.state_sizes(steps.batch());
    let per = spec.params_per_direction();
    let StackGrads {
        mut dx,
        dh0,
        dc0,
        dparams,
    } = grads;
    let mut dparams = dparams.into_iter();
    let mut per_layer: Vec<Vec<Option<&mut [T]>>> = (0..l)
        .map(|_| dparams.by_ref().take(per * spec.directions).collect())
        .collect();
    // ∂L/∂output of the layer being processed: the caller's for the last layer, then the
    // input gradient of the layer above (through its dropout mask).
    let mut dout_k: Option<Vec<T>> = None;
    for (k, saved_k) in layers.into_iter().enumerate().rev() {
        let weights = spec.layer_weights(&inp.params, k);
        let x = if k == 0 {
            inp.x
        } else if !dropped.is_empty() {
            &dropped[k - 1]
        } else {
            &hidden[k - 1]
        };
        let out_k = if k + 1 == l { out } else { &hidden[k] };
        let args = LayerArgs {
            mode: spec.mode,
            dims: spec.layer_dims(k),
            steps: &steps,
            x,
            h0: &inp.h0[k * hs..(k + 1) * hs],
            c0: &inp.c0[k * cs..(k + 1) * cs],
            weights: &weights,
        };
        let params = per_layer[k]
            .chunks_mut(per)
            .map(|ps| {
                let mut it = ps.iter_mut().map(|g| g.as_deref_mut());
                let w_ih = it.next().flatten();
                let w_hh = it.next().flatten();
                let (b_ih, b_hh) = if spec.bias {
                    (it.next().flatten(), it.next().flatten())
                } else {
                    (None, None)
                };
                RnnGrads {
                    w_ih,
                    w_hh,
                    b_ih,
                    b_hh,
                    w_hr: it.next().flatten(),
                }
            })
            .collect();
        let mut dx_below = (k > 0).then(|| vec![T::zero(); x.len()]);
        let layer_dx = if k > 0 {
            dx_below.as_deref_mut()
        } else {
            dx.as_deref_mut()
        };
        let dout_here = if k + 1 == l { dout } else { dout_k.as_deref() };
        layer_backward(
            LayerGrads {
                dx: layer_dx,
                dh0: &mut dh0[k * hs..(k + 1) * hs],
                dc0: &mut dc0[k * cs..(k + 1) * cs],
                params,
            },
            dout_here,
            dh_n.map(|g| &g[k * hs..(k + 1) * hs]),
            dc_n.map(|g| &g[k * cs..(k + 1) * cs]),
            saved_k,
            out_k,
            &args,
        );
        if let Some(mut d) = dx_below {
            if let Some(mask) = inp.masks.get(k - 1) {
                for (v, &m) in d.iter_mut().zip(*mask) {
                    *v *= m;
                }
            }
            dout_k = Some(d);
        }
    }
}
