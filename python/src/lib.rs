//! `recurrent._native`: the Rust side of the `recurrent` Python package.
//!
//! It runs a whole stack of recurrent layers forward, and backward through time, on buffers
//! that PyTorch owns. The Python side (`recurrent/_function.py`) validates every tensor
//! (device, dtype, shape, contiguity), allocates the outputs and gradients, and passes each
//! buffer as its address and element count; nothing is copied on the way in or out. The GIL
//! is released while the kernels run, on a rayon pool of the requested number of threads.
//!
//! This module is private to the package. Its functions trust that an address points to as
//! many live, aligned elements of the spec's dtype as the count says, and that output buffers
//! overlap nothing else; they check every count against the sizes the spec implies, and
//! reject null or misaligned addresses, so a wrong call from Python is an exception.
//!
//! Shapes: `L` layers, `D` directions, `T` steps, `B` batch, `N` packed rows, `I` input size,
//! `H` hidden size, `P` output size (`proj_size` or `H`).

use parking_lot::Mutex;
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use rayon::{ThreadPool, ThreadPoolBuilder};
use recurrent_core::rnn::host::{
    layer_backward, layer_forward, LayerArgs, LayerGrads, LayerSaved, RnnGrads, RnnWeights,
};
use recurrent_core::rnn::{RnnDims, RnnMode, Steps};
use recurrent_core::runtime;
use recurrent_core::Float;
use std::sync::Arc;

/// Rust's allocations in this module (the kernels' buffers) come from mimalloc, which keeps
/// freed memory for the next call: a training step frees and allocates the same large buffers,
/// which glibc would unmap and fault in again every time (measured: 25% of an inference call).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// How long freed memory stays committed for reuse before it goes back to the system: longer
/// than a training step, short enough that an idle interpreter gives it back.
const PURGE_DELAY_MS: std::os::raw::c_long = 1000;

/// Below this many floating-point operations a call runs on the calling thread: waking a
/// pool's sleeping workers costs tens of microseconds, more than two threads can save.
const SMALL_CALL_FLOPS: usize = 10_000_000;

/// A buffer owned by Python: `(address, element count)`.
type Buf = (usize, usize);

/// What a stack of layers is, as the Python side describes it.
#[derive(Clone, Copy, Debug)]
struct Spec {
    mode: RnnMode,
    input_size: usize,
    hidden_size: usize,
    proj_size: usize,
    num_layers: usize,
    directions: usize,
    bias: bool,
    double: bool,
}

/// `(mode, input_size, hidden_size, proj_size, num_layers, directions, bias, float64)`.
type SpecTuple = (String, usize, usize, usize, usize, usize, bool, bool);

impl Spec {
    fn parse(t: SpecTuple) -> PyResult<Spec> {
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

    fn out_size(&self) -> usize {
        if self.proj_size > 0 {
            self.proj_size
        } else {
            self.hidden_size
        }
    }

    /// Floating-point operations of the forward products over `n` packed rows.
    fn forward_flops(&self, n: usize) -> usize {
        (0..self.num_layers)
            .map(|k| 2 * self.gates() * (self.layer_dims(k).input_size + self.out_size()))
            .sum::<usize>()
            * n
            * self.directions
    }

    fn gates(&self) -> usize {
        self.mode.gate_multiplier() * self.hidden_size
    }

    fn layer_dims(&self, k: usize) -> RnnDims {
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
    fn params_per_direction(&self) -> usize {
        2 + if self.bias { 2 } else { 0 } + usize::from(self.proj_size > 0)
    }

    /// Element counts of every parameter, in torch.nn's order (`_flat_weights`).
    fn param_sizes(&self) -> Vec<usize> {
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
    fn state_sizes(&self, b: usize) -> (usize, usize) {
        let c = if self.mode.has_cell_state() {
            self.directions * b * self.hidden_size
        } else {
            0
        };
        (self.directions * b * self.out_size(), c)
    }

    /// The weights of layer `k`, one entry per direction, from all parameters in order.
    fn layer_weights<'a, T>(&self, params: &[&'a [T]], k: usize) -> Vec<RnnWeights<'a, T>> {
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

fn internal(msg: String) -> PyErr {
    PyValueError::new_err(format!("recurrent: bad call into the native module: {msg}"))
}

/// The slice behind a Python buffer of `expected` elements.
///
/// # Safety
/// `buf.0` must point to `buf.1` live elements of `T` that stay valid, and are not written
/// by anyone else, for `'a`.
unsafe fn view<'a, T>(buf: Buf, expected: usize, what: &str) -> PyResult<&'a [T]> {
    check_buf::<T>(buf, expected, what)?;
    if expected == 0 {
        return Ok(&[]);
    }
    Ok(std::slice::from_raw_parts(buf.0 as *const T, expected))
}

/// The mutable slice behind a Python buffer of `expected` elements.
///
/// # Safety
/// As [`view`], and nothing else may read or write the buffer for `'a`.
unsafe fn view_mut<'a, T>(buf: Buf, expected: usize, what: &str) -> PyResult<&'a mut [T]> {
    check_buf::<T>(buf, expected, what)?;
    if expected == 0 {
        return Ok(&mut []);
    }
    Ok(std::slice::from_raw_parts_mut(buf.0 as *mut T, expected))
}

fn check_buf<T>(buf: Buf, expected: usize, what: &str) -> PyResult<()> {
    if buf.1 != expected {
        return Err(internal(format!(
            "{what} has {} elements, expected {expected}",
            buf.1
        )));
    }
    if expected > 0 && (buf.0 == 0 || buf.0 % std::mem::align_of::<T>() != 0) {
        return Err(internal(format!("{what} has a null or misaligned address")));
    }
    Ok(())
}

/// The time structure: `(address of T int64 batch sizes, T, 0)` for a PackedSequence, or
/// `(0, T, B)` for a padded batch.
fn steps_of(steps: (usize, usize, usize)) -> PyResult<Steps> {
    let (addr, t, b) = steps;
    let bad = || {
        PyValueError::new_err(
            "batch_sizes must be positive and non-increasing, with at least one step \
             (a PackedSequence made by torch.nn.utils.rnn.pack_padded_sequence or \
             pack_sequence)",
        )
    };
    if addr == 0 {
        return Steps::full(t, b).ok_or_else(bad);
    }
    // SAFETY: the Python side passes the data of a contiguous int64 CPU tensor of `t` elements.
    let sizes: &[i64] = unsafe { view((addr, t), t, "batch_sizes")? };
    let sizes: Vec<usize> = sizes
        .iter()
        .map(|&s| usize::try_from(s).map_err(|_| bad()))
        .collect::<PyResult<_>>()?;
    Steps::new(&sizes).ok_or_else(bad)
}

/// Run `f` (the kernels) with the GIL released: on the calling thread for small work or one
/// thread (its floating-point mode restored afterwards: it is the interpreter's), else inside
/// a rayon pool of `threads` threads, never rayon's global pool.
fn run_kernels<R: Send>(
    py: Python<'_>,
    threads: usize,
    flops: usize,
    f: impl FnOnce() -> R + Send,
) -> PyResult<R> {
    if threads <= 1 || flops < SMALL_CALL_FLOPS {
        return Ok(py.detach(|| runtime::preserving_thread_mode(|| runtime::on_this_thread(f))));
    }
    let pool = pool(threads)?;
    Ok(py.detach(|| pool.install(f)))
}

/// Rayon pools by size, built once, their threads flushing denormals as configured.
static POOLS: Mutex<Vec<Arc<ThreadPool>>> = Mutex::new(Vec::new());

fn pool(threads: usize) -> PyResult<Arc<ThreadPool>> {
    let threads = threads.max(1);
    let mut pools = POOLS.lock();
    if let Some(p) = pools.iter().find(|p| p.current_num_threads() == threads) {
        return Ok(p.clone());
    }
    let p = ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("recurrent-{i}"))
        .build()
        .map_err(|e| PyRuntimeError::new_err(format!("cannot start {threads} threads: {e}")))?;
    p.install(runtime::apply_to_current_pool);
    let p = Arc::new(p);
    pools.push(p.clone());
    Ok(p)
}

/// What the backward pass of a layer stack keeps from its forward pass.
struct StackSaved<T> {
    steps: Steps,
    layers: Vec<LayerSaved<T>>,
    /// `[N, D*P]`: the outputs of layers `0..L-1` (the last layer's output is the caller's).
    hidden: Vec<Vec<T>>,
    /// `[N, D*P]`: the inputs of layers `1..L` after dropout (empty without dropout, where
    /// they are `hidden`).
    dropped: Vec<Vec<T>>,
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
    fn bytes(&self) -> usize {
        let vecs: usize = self.hidden.iter().chain(&self.dropped).map(Vec::len).sum();
        self.layers.iter().map(LayerSaved::bytes).sum::<usize>() + vecs * std::mem::size_of::<T>()
    }
}

/// The inputs of a stack, as slices.
struct StackInputs<'a, T> {
    x: &'a [T],
    h0: &'a [T],
    c0: &'a [T],
    params: Vec<&'a [T]>,
    masks: Vec<&'a [T]>,
}

impl<'a, T> StackInputs<'a, T> {
    /// # Safety
    /// Every buffer must be as [`view`] requires.
    unsafe fn new(
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
fn stack_forward<T: Float>(
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
struct StackGrads<'a, T> {
    dx: Option<&'a mut [T]>,
    dh0: &'a mut [T],
    dc0: &'a mut [T],
    dparams: Vec<Option<&'a mut [T]>>,
}

/// The forward's output and the gradients that reach the stack's outputs (`None`: zero).
struct OutputGrads<'a, T> {
    out: &'a [T],
    dout: Option<&'a [T]>,
    dh_n: Option<&'a [T]>,
    dc_n: Option<&'a [T]>,
}

/// Backward through all layers, from the last to the first.
fn stack_backward<T: Float>(
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

enum SavedStack {
    F32(StackSaved<f32>),
    F64(StackSaved<f64>),
}

/// The saved state of one training forward call, consumed by its backward.
#[pyclass(module = "recurrent._native")]
struct Saved {
    spec: Spec,
    state: Option<SavedStack>,
}

/// Run a stack of recurrent layers forward.
///
/// `spec`: `(mode, input_size, hidden_size, proj_size, num_layers, directions, bias,
/// float64)`; `steps`: `(batch_sizes address, T, 0)` or `(0, T, B)`; `x: [N, I]`;
/// `h0: [L*D, B, P]`; `c0: [L*D, B, H]` (LSTM); `params`: torch.nn's `_flat_weights`;
/// `masks`: `L-1` dropout masks `[N, D*P]` (scaled by `1/(1-p)`), or none; outputs
/// `out: [N, D*P]`, `h_n`, `c_n`. With `training`, returns the state for the backward pass.
#[pyfunction]
#[pyo3(signature = (spec, steps, x, h0, c0, params, masks, out, h_n, c_n, training, threads))]
#[allow(clippy::too_many_arguments)]
fn forward(
    py: Python<'_>,
    spec: SpecTuple,
    steps: (usize, usize, usize),
    x: Buf,
    h0: Buf,
    c0: Option<Buf>,
    params: Vec<Buf>,
    masks: Vec<Buf>,
    out: Buf,
    h_n: Buf,
    c_n: Option<Buf>,
    training: bool,
    threads: usize,
) -> PyResult<Option<Saved>> {
    let spec = Spec::parse(spec)?;
    let steps = steps_of(steps)?;
    let (hs, cs) = spec.state_sizes(steps.batch());
    let (l, n) = (spec.num_layers, steps.total());
    let out_size = n * spec.directions * spec.out_size();
    fn run<T: Float>(
        py: Python<'_>,
        threads: usize,
        spec: &Spec,
        steps: Steps,
        bufs: (Buf, Buf, Option<Buf>, &[Buf], &[Buf]),
        outs: (Buf, Buf, Option<Buf>),
        sizes: (usize, usize, usize),
        training: bool,
    ) -> PyResult<Option<StackSaved<T>>> {
        let (x, h0, c0, params, masks) = bufs;
        let (out_size, h_size, c_size) = sizes;
        // SAFETY: the Python side passes live, contiguous CPU tensors of this dtype; the
        // outputs are freshly allocated and alias nothing.
        let (inp, out, h_n, c_n) = unsafe {
            let inp = StackInputs::<T>::new(spec, &steps, x, h0, c0, params, masks)?;
            let out = view_mut::<T>(outs.0, out_size, "output")?;
            let h_n = view_mut::<T>(outs.1, h_size, "h_n")?;
            let c_n = match outs.2 {
                Some(c) => view_mut::<T>(c, c_size, "c_n")?,
                None if c_size == 0 => &mut [][..],
                None => return Err(internal("an LSTM needs c_n".into())),
            };
            (inp, out, h_n, c_n)
        };
        let flops = spec.forward_flops(steps.total());
        run_kernels(py, threads, flops, || {
            stack_forward(spec, steps, &inp, out, h_n, c_n, training)
        })
    }
    let bufs = (x, h0, c0, &params[..], &masks[..]);
    let outs = (out, h_n, c_n);
    let sizes = (out_size, l * hs, l * cs);
    let state = if spec.double {
        run::<f64>(py, threads, &spec, steps, bufs, outs, sizes, training)?.map(SavedStack::F64)
    } else {
        run::<f32>(py, threads, &spec, steps, bufs, outs, sizes, training)?.map(SavedStack::F32)
    };
    Ok(state.map(|s| Saved {
        spec,
        state: Some(s),
    }))
}

#[pymethods]
impl Saved {
    /// Backward through the stack. Inputs as in `forward` (the same tensors), plus `out`
    /// (the forward's output), the output gradients `dout`, `dh_n`, `dc_n` (`None`: zero),
    /// and where the gradients go: `dx` and `dparams[i]` are *added* to (pass zeros), `dh0`
    /// and `dc0` are written; `None` for a gradient that is not wanted. With `keep`
    /// (`retain_graph=True`) the saved state survives for another backward pass.
    #[pyo3(signature = (x, h0, c0, params, masks, out, dout, dh_n, dc_n, dx, dh0, dc0, dparams, threads, keep))]
    #[allow(clippy::too_many_arguments)]
    fn backward(
        &mut self,
        py: Python<'_>,
        x: Buf,
        h0: Buf,
        c0: Option<Buf>,
        params: Vec<Buf>,
        masks: Vec<Buf>,
        out: Buf,
        dout: Option<Buf>,
        dh_n: Option<Buf>,
        dc_n: Option<Buf>,
        dx: Option<Buf>,
        dh0: Option<Buf>,
        dc0: Option<Buf>,
        dparams: Vec<Option<Buf>>,
        threads: usize,
        keep: bool,
    ) -> PyResult<()> {
        let spec = self.spec;
        let state = if keep {
            match self.state.as_ref() {
                Some(SavedStack::F32(s)) => Some(SavedStack::F32(s.clone())),
                Some(SavedStack::F64(s)) => Some(SavedStack::F64(s.clone())),
                None => None,
            }
        } else {
            self.state.take()
        };
        let state = state.ok_or_else(|| {
            PyRuntimeError::new_err(
                "Trying to backward through the graph a second time (or directly access saved \
                 tensors after they have already been freed). Saved intermediate values of the \
                 graph are freed when you call .backward() or autograd.grad(). Specify \
                 retain_graph=True if you need to backward through the graph a second time or \
                 if you need to access saved tensors after calling backward.",
            )
        })?;
        let args = BackwardBufs {
            x,
            h0,
            c0,
            params: &params,
            masks: &masks,
            out,
            dout,
            dh_n,
            dc_n,
            dx,
            dh0,
            dc0,
            dparams: &dparams,
        };
        match state {
            SavedStack::F32(s) => run_backward(py, threads, &spec, s, &args),
            SavedStack::F64(s) => run_backward(py, threads, &spec, s, &args),
        }
    }

    /// Bytes of activations held for the backward pass.
    fn nbytes(&self) -> usize {
        match &self.state {
            Some(SavedStack::F32(s)) => s.bytes(),
            Some(SavedStack::F64(s)) => s.bytes(),
            None => 0,
        }
    }
}

struct BackwardBufs<'a> {
    x: Buf,
    h0: Buf,
    c0: Option<Buf>,
    params: &'a [Buf],
    masks: &'a [Buf],
    out: Buf,
    dout: Option<Buf>,
    dh_n: Option<Buf>,
    dc_n: Option<Buf>,
    dx: Option<Buf>,
    dh0: Option<Buf>,
    dc0: Option<Buf>,
    dparams: &'a [Option<Buf>],
}

fn run_backward<T: Float>(
    py: Python<'_>,
    threads: usize,
    spec: &Spec,
    saved: StackSaved<T>,
    a: &BackwardBufs<'_>,
) -> PyResult<()> {
    let steps = saved.steps.clone();
    let (hs, cs) = spec.state_sizes(steps.batch());
    let l = spec.num_layers;
    let n = steps.total();
    let out_size = n * spec.directions * spec.out_size();
    let sizes = spec.param_sizes();
    if a.dparams.len() != sizes.len() {
        return Err(internal(format!(
            "{} parameter gradients, expected {}",
            a.dparams.len(),
            sizes.len()
        )));
    }
    // Scratch for the state gradients the caller does not want.
    let mut dh0_scratch = vec![T::zero(); if a.dh0.is_none() { l * hs } else { 0 }];
    let mut dc0_scratch = vec![T::zero(); if a.dc0.is_none() { l * cs } else { 0 }];
    // SAFETY: as in `forward`; the gradient buffers are fresh tensors that alias nothing.
    let (inp, outputs, grads) = unsafe {
        let inp = StackInputs::<T>::new(spec, &steps, a.x, a.h0, a.c0, a.params, a.masks)?;
        let out = view::<T>(a.out, out_size, "output")?;
        let dout = a
            .dout
            .map(|b| view::<T>(b, out_size, "output gradient"))
            .transpose()?;
        let dh_n = a
            .dh_n
            .map(|b| view::<T>(b, l * hs, "h_n gradient"))
            .transpose()?;
        let dc_n = a
            .dc_n
            .map(|b| view::<T>(b, l * cs, "c_n gradient"))
            .transpose()?;
        let dx =
            a.dx.map(|b| view_mut::<T>(b, n * spec.input_size, "input gradient"))
                .transpose()?;
        let dh0 = match a.dh0 {
            Some(b) => view_mut::<T>(b, l * hs, "h_0 gradient")?,
            None => &mut dh0_scratch[..],
        };
        let dc0 = match a.dc0 {
            Some(b) => view_mut::<T>(b, l * cs, "c_0 gradient")?,
            None => &mut dc0_scratch[..],
        };
        let dparams = a
            .dparams
            .iter()
            .zip(&sizes)
            .map(|(b, &s)| {
                b.map(|b| view_mut::<T>(b, s, "a parameter gradient"))
                    .transpose()
            })
            .collect::<PyResult<Vec<_>>>()?;
        (
            inp,
            OutputGrads {
                out,
                dout,
                dh_n,
                dc_n,
            },
            StackGrads {
                dx,
                dh0,
                dc0,
                dparams,
            },
        )
    };
    // The backward pass does about twice the forward's products.
    let flops = 2 * spec.forward_flops(n);
    run_kernels(py, threads, flops, || {
        stack_backward(spec, saved, &inp, outputs, grads)
    })
}

/// Flush denormal numbers to zero in the kernels (the default) or not; applies to every pool.
#[pyfunction]
fn set_flush_denormals(on: bool) -> PyResult<()> {
    recurrent_core::set_flush_denormals(on);
    for p in POOLS.lock().iter() {
        p.install(runtime::apply_to_current_pool);
    }
    Ok(())
}

/// Whether the kernels flush denormal numbers to zero.
#[pyfunction]
fn flush_denormals() -> bool {
    recurrent_core::flush_denormals()
}

/// The instruction sets the kernels dispatch to on this CPU, for benchmark reports.
#[pyfunction]
fn cpu_features() -> Vec<&'static str> {
    let mut f = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            f.push("avx512f");
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            f.push("avx2");
        }
        if std::arch::is_x86_feature_detected!("fma") {
            f.push("fma");
        }
    }
    #[cfg(target_arch = "aarch64")]
    f.push("neon");
    f
}

/// The Rust side of the `recurrent` package.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    /// `mi_option_purge_delay` in mimalloc v3's `mi_option_e` (libmimalloc-sys 0.1.49).
    const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
    // SAFETY: sets a mimalloc option; valid at any time.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS) };
    m.add_function(wrap_pyfunction!(forward, m)?)?;
    m.add_function(wrap_pyfunction!(set_flush_denormals, m)?)?;
    m.add_function(wrap_pyfunction!(flush_denormals, m)?)?;
    m.add_function(wrap_pyfunction!(cpu_features, m)?)?;
    m.add_class::<Saved>()?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
