"""The bridge between torch tensors and the Rust kernels: one autograd Function per layer stack.

The forward of :class:`StackFunction` runs every layer of a stack (both directions, dropout
between layers) in one call into ``recurrent._native``; its backward runs the hand-derived
backpropagation through time of all layers in one call. Tensors cross as their data address and
element count (no copy); the callers in :mod:`recurrent.torch` make them contiguous CPU tensors
of one dtype first. The Rust side releases the GIL while it computes, on a thread pool of
:func:`get_num_threads` threads.
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from . import _native

_threads: int | None = None


def set_num_threads(n: int | None) -> None:
    """Use ``n`` threads in the recurrent kernels; ``None`` (the default) follows
    ``torch.get_num_threads()``, so the kernels and PyTorch's own ops never run more threads
    than PyTorch is set to."""
    global _threads
    if n is not None:
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"set_num_threads expects a positive int or None, got {n!r}")
    _threads = n


def get_num_threads() -> int:
    """The number of threads the recurrent kernels use."""
    return _threads if _threads is not None else torch.get_num_threads()


def set_flush_denormals(on: bool) -> None:
    """Flush denormal numbers to zero inside the recurrent kernels (on by default; it changes no
    result above 1.2e-38 and avoids the slow path of the CPU). It never changes the setting of
    PyTorch's own ops (``torch.set_flush_denormal``)."""
    _native.set_flush_denormals(bool(on))


def _buf(t):
    return (t.data_ptr(), t.numel())


def _opt_buf(t):
    return None if t is None else (t.data_ptr(), t.numel())


def _keep_graph() -> bool:
    """Whether the running backward pass keeps the graph (``retain_graph=True``)."""
    try:
        return bool(torch._C._autograd._get_current_graph_task_keep_graph())
    except (AttributeError, RuntimeError):
        # Unknown: keep the saved state (always correct; costs a copy of it).
        return True


def run_forward(spec, steps, x, h0, c0, masks, params, training):
    """Run the stack; returns ``(out, h_n, c_n, saved)``.

    ``spec = (mode, input_size, hidden_size, proj_size, num_layers, directions, bias, float64)``,
    ``steps = (batch_sizes address, T, 0)`` for packed input or ``(0, T, B)`` for a padded batch;
    ``x: [N, I]``, ``h0: [L*D, B, P]``, ``c0: [L*D, B, H]`` or ``None``; ``masks``: ``L-1``
    dropout masks ``[N, D*P]`` or none; ``params``: torch.nn's flat weights. All contiguous,
    on the CPU, of the spec's dtype.
    """
    mode, _, hidden, proj, layers, dirs = spec[:6]
    out_size = proj if proj > 0 else hidden
    batch = h0.shape[1]
    out = x.new_empty((x.shape[0], dirs * out_size))
    h_n = x.new_empty((layers * dirs, batch, out_size))
    c_n = x.new_empty((layers * dirs, batch, hidden)) if c0 is not None else None
    saved = _native.forward(
        spec,
        steps,
        _buf(x),
        _buf(h0),
        _opt_buf(c0),
        [_buf(p) for p in params],
        [_buf(m) for m in masks],
        _buf(out),
        _buf(h_n),
        _opt_buf(c_n),
        training,
        get_num_threads(),
    )
    return out, h_n, c_n, saved


class StackFunction(torch.autograd.Function):
    """A whole stack of recurrent layers as one node of PyTorch's graph.

    ``apply(spec, steps, x, h0, c0, masks, *params)`` returns ``(out, h_n)``, plus ``c_n`` for
    an LSTM (see :func:`run_forward`).
    """

    @staticmethod
    def forward(ctx, spec, steps, x, h0, c0, masks, *params):
        ctx.set_materialize_grads(False)
        out, h_n, c_n, saved = run_forward(spec, steps, x, h0, c0, masks, params, True)
        ctx.spec = spec
        ctx.masks = masks
        ctx.state = saved
        ctx.save_for_backward(x, h0, c0, out, *params)
        if c_n is None:
            return out, h_n
        return out, h_n, c_n

    @staticmethod
    @once_differentiable
    def backward(ctx, dout, dh_n, dc_n=None):
        x, h0, c0, out, *params = ctx.saved_tensors
        needs = ctx.needs_input_grad
        dx = torch.zeros_like(x) if needs[2] else None
        dh0 = torch.empty_like(h0) if needs[3] else None
        dc0 = torch.empty_like(c0) if c0 is not None and needs[4] else None
        dparams = [torch.zeros_like(p) if need else None for p, need in zip(params, needs[6:])]
        dout, dh_n, dc_n = (None if g is None else g.contiguous() for g in (dout, dh_n, dc_n))
        state = ctx.state
        if state is None:
            raise RuntimeError(
                "Trying to backward through the graph a second time (or directly access "
                "saved tensors after they have already been freed). Specify "
                "retain_graph=True if you need to backward through the graph a second time."
            )
        keep = _keep_graph()
        state.backward(
            _buf(x),
            _buf(h0),
            _opt_buf(c0),
            [_buf(p) for p in params],
            [_buf(m) for m in ctx.masks],
            _buf(out),
            _opt_buf(dout),
            _opt_buf(dh_n),
            _opt_buf(dc_n),
            _opt_buf(dx),
            _opt_buf(dh0),
            _opt_buf(dc0),
            [_opt_buf(g) for g in dparams],
            get_num_threads(),
            keep,
        )
        if not keep:
            ctx.state = None
        return (None, None, dx, dh0, dc0, None, *dparams)


def run_stack(spec, steps, x, h0, c0, masks, params):
    """Forward of a stack, recorded in PyTorch's graph when a gradient is needed.

    Returns ``(out, h_n, c_n)`` (``c_n`` is ``None`` except for an LSTM).
    """
    if torch.is_grad_enabled() and (
        x.requires_grad
        or h0.requires_grad
        or (c0 is not None and c0.requires_grad)
        or any(p.requires_grad for p in params)
    ):
        res = StackFunction.apply(spec, steps, x, h0, c0, masks, *params)
        return res if c0 is not None else (res[0], res[1], None)
    out, h_n, c_n, _ = run_forward(spec, steps, x, h0, c0, masks, params, False)
    return out, h_n, c_n
