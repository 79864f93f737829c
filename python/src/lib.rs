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

mod buffers;
mod spec;
mod stack;
mod threads;

use buffers::{steps_of, view, view_mut, Buf};
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use recurrent_core::rnn::Steps;
use recurrent_core::Float;
use spec::{internal, Spec, SpecTuple};
use stack::{stack_backward, stack_forward, OutputGrads, StackGrads, StackInputs, StackSaved};
use threads::run_kernels;

/// Rust's allocations in this module (the kernels' buffers) come from mimalloc, which keeps
/// freed memory for the next call: a training step frees and allocates the same large buffers,
/// which glibc would unmap and fault in again every time (measured: 25% of an inference call).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// How long freed memory stays committed for reuse before it goes back to the system: longer
/// than a training step, short enough that an idle interpreter gives it back.
const PURGE_DELAY_MS: std::os::raw::c_long = 1000;

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
    threads::apply_mode_to_pools();
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
