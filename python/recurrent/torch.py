"""Drop-in replacements for torch.nn's recurrent modules, computed by recurrent's Rust kernels.

Change one import and keep the rest of the program::

    from recurrent.torch import LSTM          # instead of: from torch.nn import LSTM

    model = LSTM(128, 256, num_layers=2, batch_first=True)
    output, (h_n, c_n) = model(packed_or_padded_input)

Each class subclasses its torch.nn counterpart, so the constructor, the parameters (names,
shapes, order, initialisation), ``state_dict``, ``repr``, ``.to()``/``.double()`` and pickling
are torch.nn's own; only ``forward`` differs. It takes what torch.nn's takes (a batched or
unbatched tensor, or a ``PackedSequence``; ``hx`` or ``None``) and returns the same values,
with gradients for the input, ``hx`` and every parameter through PyTorch's autograd.

What is different: the computation runs on the CPU in float32 or float64 only (other devices
and dtypes raise a clear error); a whole stack of layers is one node of the autograd graph,
whose backward cannot itself be differentiated (no double backward); dropout between layers
draws its masks from PyTorch's generator, but not in the same order as torch.nn, so with
dropout on the two modules agree in distribution, not bit for bit.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence

from ._function import get_num_threads, run_stack, set_flush_denormals, set_num_threads

__all__ = [
    "LSTM",
    "GRU",
    "RNN",
    "LSTMCell",
    "GRUCell",
    "RNNCell",
    "set_num_threads",
    "get_num_threads",
    "set_flush_denormals",
]

_SUPPORTED_DTYPES = (torch.float32, torch.float64)

try:
    _eager_only = torch.compiler.disable
except AttributeError:  # torch < 2.1

    def _eager_only(fn):
        return fn


def _check_device(name, input, tensors):
    """Every tensor on the CPU, with torch.nn's message for a mix of devices."""
    dev = input.device
    if dev.type != "cpu":
        raise RuntimeError(
            f"recurrent.torch.{name} runs on the CPU only, but the input is on {dev}. "
            f"Use torch.nn.{name} on {dev} (its state_dict loads into recurrent.torch.{name} "
            "and back), or move the module and the input to the CPU with .cpu()."
        )
    for t in tensors:
        if t is not None and t.device.type != "cpu":
            raise RuntimeError(
                "Input and parameter tensors are not at the same device, found input tensor "
                f"at {dev} and parameter tensor at {t.device}"
            )


def _check_dtype(name, x, weight, states):
    if weight is not None and x.dtype != weight.dtype:
        raise ValueError(
            f"{name} input dtype ({x.dtype}) does not match weight dtype ({weight.dtype}). "
            f"Convert input: input.to({weight.dtype}), or convert model: model.to({x.dtype})"
        )
    if x.dtype not in _SUPPORTED_DTYPES:
        raise TypeError(
            f"recurrent.torch.{name} computes in float32 and float64, got {x.dtype}. "
            f"Convert the module and the input with .float(), or use torch.nn.{name} for "
            f"{x.dtype}."
        )
    for s in states:
        if s.dtype != x.dtype:
            raise RuntimeError(
                "Input and hidden tensors are not the same dtype, found input tensor with "
                f"{x.dtype} and hidden tensor with {s.dtype}"
            )


def _check_batch_sizes(data, batch_sizes):
    """A PackedSequence that the kernels can trust: torch.nn.utils.rnn.pack_padded_sequence
    accepts lengths longer than the padded sequence and then describes more rows than it holds."""
    if (
        not isinstance(batch_sizes, torch.Tensor)
        or batch_sizes.dim() != 1
        or batch_sizes.dtype != torch.int64
        or batch_sizes.device.type != "cpu"
    ):
        raise ValueError(
            "PackedSequence.batch_sizes must be a 1-D int64 CPU tensor, as "
            "torch.nn.utils.rnn.pack_padded_sequence makes it"
        )
    if batch_sizes.numel() == 0:
        raise RuntimeError("Expected sequence length to be larger than 0 in RNN")
    if data.dim() >= 1:
        rows = int(batch_sizes.sum())
        if rows != data.size(0):
            raise ValueError(
                f"PackedSequence is inconsistent: its batch_sizes add up to {rows} rows but its "
                f"data has {data.size(0)} (were the lengths given to pack_padded_sequence "
                "longer than the padded sequence?)"
            )
    if bool((batch_sizes <= 0).any()) or bool((batch_sizes[1:] > batch_sizes[:-1]).any()):
        raise ValueError(
            "PackedSequence.batch_sizes must be positive and non-increasing, as "
            "pack_padded_sequence and pack_sequence make them"
        )


def _dropout_masks(m, rows, width, dtype):
    """The masks of dropout between layers: ``L-1`` of ``[N, D*P]``, scaled by ``1/(1-p)``."""
    p = m.dropout
    if not m.training or p == 0 or m.num_layers == 1:
        return ()
    masks = []
    for _ in range(m.num_layers - 1):
        if p >= 1:
            masks.append(torch.zeros((rows, width), dtype=dtype))
        else:
            masks.append(torch.empty((rows, width), dtype=dtype).bernoulli_(1 - p).div_(1 - p))
    return tuple(masks)


def _connected_zeros(shapes, like, params):
    """Empty results (a batch of zero sequences) that still belong to the graph, as torch.nn's
    do: a backward pass through them gives every parameter a zero gradient."""
    outs = [like.new_zeros(s) for s in shapes]
    if torch.is_grad_enabled() and any(p.requires_grad for p in params):
        anchor = sum(p.sum() for p in params) * 0
        outs = [o + anchor for o in outs]
    return outs


def _rnn_forward(m, input, hx):
    """forward() of LSTM, GRU and RNN: torch.nn's argument handling, the Rust stack in between."""
    # By name, not from `_flat_weights`: this sees weights replaced by functional_call,
    # parametrizations or plain assignment, with nothing to keep in sync.
    params = [getattr(m, n) for n in m._flat_weights_names]
    lstm = m.mode == "LSTM"
    name = {"LSTM": "LSTM", "GRU": "GRU"}.get(m.mode, "RNN")
    dirs = 2 if m.bidirectional else 1
    out_size = m.proj_size if m.proj_size > 0 else m.hidden_size
    layers = m.num_layers

    def zeros_hx(batch, like):
        h = torch.zeros(layers * dirs, batch, out_size, dtype=like.dtype, device=like.device)
        if not lstm:
            return h
        c = torch.zeros(layers * dirs, batch, m.hidden_size, dtype=like.dtype, device=like.device)
        return (h, c)

    packed = isinstance(input, PackedSequence)
    if packed:
        data, batch_sizes, sorted_indices, unsorted_indices = input
        _check_device(name, data, params)
        _check_batch_sizes(data, batch_sizes)
        batch = int(batch_sizes[0])
        if hx is None:
            hx = zeros_hx(batch, data)
        m.check_forward_args(data, hx, batch_sizes)
        hx = m.permute_hidden(hx, sorted_indices)
        steps_t = batch_sizes.numel()
        x = data
        steps = (batch_sizes.data_ptr(), steps_t, 0)
        is_batched, batch_first = True, False
    else:
        sorted_indices = unsorted_indices = None
        if input.dim() not in (2, 3):
            tensor = " tensor" if name == "RNN" else ""
            raise ValueError(
                f"{name}: Expected input to be 2D or 3D, got {input.dim()}D{tensor} instead"
            )
        _check_device(name, input, params)
        is_batched = input.dim() == 3
        batch_first = m.batch_first and is_batched
        batch_dim = 0 if m.batch_first else 1
        if not is_batched:
            input = input.unsqueeze(batch_dim)
        if hx is not None:
            if lstm:
                if not isinstance(hx, (tuple, list)) or len(hx) != 2:
                    raise TypeError("LSTM expects hx to be a tuple (h_0, c_0)")
                want = 3 if is_batched else 2
                if hx[0].dim() != want or hx[1].dim() != want:
                    kind = "batched 3-D" if is_batched else "unbatched 2-D"
                    raise RuntimeError(
                        f"For {kind} input, hx and cx should also be {want}-D but got "
                        f"({hx[0].dim()}-D, {hx[1].dim()}-D) tensors"
                    )
                if not is_batched:
                    hx = (hx[0].unsqueeze(1), hx[1].unsqueeze(1))
            else:
                if is_batched and hx.dim() != 3:
                    raise RuntimeError(
                        f"For batched 3-D input, hx should also be 3-D but got {hx.dim()}-D tensor"
                    )
                if not is_batched:
                    if hx.dim() != 2:
                        raise RuntimeError(
                            "For unbatched 2-D input, hx should also be 2-D but got "
                            f"{hx.dim()}-D tensor"
                        )
                    hx = hx.unsqueeze(1)
        steps_t, batch = (input.size(1), input.size(0)) if m.batch_first else input.shape[:2]
        if hx is None:
            hx = zeros_hx(batch, input)
        m.check_forward_args(input, hx, None)
        if steps_t == 0:
            raise RuntimeError("Expected sequence length to be larger than 0 in RNN")
        x = input.transpose(0, 1) if m.batch_first else input
        x = x.contiguous().view(steps_t * batch, m.input_size)
        steps = (0, steps_t, batch)

    h0, c0 = (hx[0], hx[1]) if lstm else (hx, None)
    _check_device(name, x, (h0, c0))
    _check_dtype(name, x, params[0], (h0,) if c0 is None else (h0, c0))

    if batch == 0:
        out, h_n, *c_n = _connected_zeros(
            [(x.size(0), dirs * out_size), tuple(h0.shape)] + ([tuple(c0.shape)] if lstm else []),
            x,
            params,
        )
        c_n = c_n[0] if lstm else None
    else:
        spec = (
            m.mode,
            m.input_size,
            m.hidden_size,
            m.proj_size,
            layers,
            dirs,
            bool(m.bias),
            x.dtype == torch.float64,
        )
        masks = _dropout_masks(m, x.size(0), dirs * out_size, x.dtype)
        out, h_n, c_n = run_stack(
            spec,
            steps,
            x,
            h0.contiguous(),
            None if c0 is None else c0.contiguous(),
            masks,
            [p.contiguous() for p in params],
        )
    hidden = (h_n, c_n) if lstm else h_n

    if packed:
        output = PackedSequence(out, batch_sizes, sorted_indices, unsorted_indices)
        return output, m.permute_hidden(hidden, unsorted_indices)
    output = out.view(steps_t, batch, dirs * out_size)
    if batch_first:
        output = output.transpose(0, 1)
    if not is_batched:
        output = output.squeeze(1)
        hidden = (h_n.squeeze(1), c_n.squeeze(1)) if lstm else h_n.squeeze(1)
    return output, hidden


class LSTM(nn.LSTM):
    r"""``torch.nn.LSTM`` computed by recurrent's kernels (a drop-in replacement).

    Same constructor, parameters and results as :class:`torch.nn.LSTM`, including
    ``proj_size``, bidirectional and stacked layers, ``batch_first``, unbatched input and
    ``PackedSequence`` input; see the module docstring for what differs.

    Example::

        >>> import torch
        >>> from recurrent.torch import LSTM
        >>> lstm = LSTM(10, 20, num_layers=2)
        >>> output, (h_n, c_n) = lstm(torch.randn(5, 3, 10))
        >>> output.shape, h_n.shape
        (torch.Size([5, 3, 20]), torch.Size([2, 3, 20]))
    """

    @_eager_only
    def forward(self, input, hx=None):  # noqa: D102 (torch.nn.LSTM's)
        return _rnn_forward(self, input, hx)


class GRU(nn.GRU):
    r"""``torch.nn.GRU`` computed by recurrent's kernels (a drop-in replacement).

    Example::

        >>> import torch
        >>> from recurrent.torch import GRU
        >>> gru = GRU(10, 20, batch_first=True, bidirectional=True)
        >>> output, h_n = gru(torch.randn(3, 5, 10))
        >>> output.shape, h_n.shape
        (torch.Size([3, 5, 40]), torch.Size([2, 3, 20]))
    """

    @_eager_only
    def forward(self, input, hx=None):  # noqa: D102
        return _rnn_forward(self, input, hx)


class RNN(nn.RNN):
    r"""``torch.nn.RNN`` (Elman, ``tanh`` or ``relu``) computed by recurrent's kernels.

    Example::

        >>> import torch
        >>> from recurrent.torch import RNN
        >>> rnn = RNN(10, 20, nonlinearity="relu")
        >>> output, h_n = rnn(torch.randn(5, 10))  # unbatched
        >>> output.shape, h_n.shape
        (torch.Size([5, 20]), torch.Size([1, 20]))
    """

    @_eager_only
    def forward(self, input, hx=None):  # noqa: D102
        return _rnn_forward(self, input, hx)


def _cell_forward(m, name, mode, input, hx):
    """forward() of the cells: one step of the layer kernel (``T = 1``)."""
    lstm = mode == "LSTM"
    if input.dim() not in (1, 2):
        raise ValueError(f"{name}: Expected input to be 1D or 2D, got {input.dim()}D instead")
    if lstm:
        if hx is not None:
            if not isinstance(hx, (tuple, list)) or len(hx) != 2:
                raise TypeError("LSTMCell expects hx to be a tuple (h_0, c_0)")
            for idx, value in enumerate(hx):
                if value.dim() not in (1, 2):
                    raise ValueError(
                        f"LSTMCell: Expected hx[{idx}] to be 1D or 2D, got {value.dim()}D instead"
                    )
    elif hx is not None and hx.dim() not in (1, 2):
        raise ValueError(f"{name}: Expected hidden to be 1D or 2D, got {hx.dim()}D instead")
    is_batched = input.dim() == 2
    if not is_batched:
        input = input.unsqueeze(0)
    params = [m.weight_ih, m.weight_hh]
    if m.bias:
        params += [m.bias_ih, m.bias_hh]
    _check_device(name, input, params)
    batch = input.size(0)
    if hx is None:
        zeros = torch.zeros(batch, m.hidden_size, dtype=input.dtype, device=input.device)
        states = [zeros, zeros] if lstm else [zeros]
    else:
        states = list(hx) if lstm else [hx]
        if not is_batched:
            states = [s.unsqueeze(0) for s in states]
    _check_device(name, input, states)
    if input.size(1) != m.input_size:
        raise RuntimeError(
            f"input has inconsistent input_size: got {input.size(1)} expected {m.input_size}"
        )
    for k, s in enumerate(states):
        if s.dim() != 2:
            raise RuntimeError(
                f"Expected 2D hidden{k} (batch x hidden_size), but got {s.dim()}D tensor"
            )
        if s.size(0) != batch:
            raise RuntimeError(
                f"Input batch size {batch} doesn't match hidden{k} batch size {s.size(0)}"
            )
        if s.size(1) != m.hidden_size:
            raise RuntimeError(
                f"hidden{k} has inconsistent hidden_size: got {s.size(1)}, expected {m.hidden_size}"
            )
    _check_dtype(name, input, m.weight_ih, states)
    if batch == 0:
        res = _connected_zeros([(0, m.hidden_size)] * len(states), input, params)
    else:
        spec = (mode, m.input_size, m.hidden_size, 0, 1, 1, bool(m.bias), input.dtype == torch.float64)
        _, h_n, c_n = run_stack(
            spec,
            (0, 1, batch),
            input.contiguous(),
            states[0].contiguous().unsqueeze(0),
            states[1].contiguous().unsqueeze(0) if lstm else None,
            (),
            [p.contiguous() for p in params],
        )
        res = [h_n[0], c_n[0]] if lstm else [h_n[0]]
    if not is_batched:
        res = [r.squeeze(0) for r in res]
    return tuple(res) if lstm else res[0]


class LSTMCell(nn.LSTMCell):
    r"""``torch.nn.LSTMCell`` computed by recurrent's LSTM kernel with one step.

    Example::

        >>> import torch
        >>> from recurrent.torch import LSTMCell
        >>> cell = LSTMCell(10, 20)
        >>> h, c = cell(torch.randn(3, 10))
        >>> h.shape
        torch.Size([3, 20])
    """

    @_eager_only
    def forward(self, input, hx=None):  # noqa: D102
        return _cell_forward(self, "LSTMCell", "LSTM", input, hx)


class GRUCell(nn.GRUCell):
    r"""``torch.nn.GRUCell`` computed by recurrent's GRU kernel with one step.

    Example::

        >>> import torch
        >>> from recurrent.torch import GRUCell
        >>> cell = GRUCell(10, 20)
        >>> cell(torch.randn(3, 10)).shape
        torch.Size([3, 20])
    """

    @_eager_only
    def forward(self, input, hx=None):  # noqa: D102
        return _cell_forward(self, "GRUCell", "GRU", input, hx)


class RNNCell(nn.RNNCell):
    r"""``torch.nn.RNNCell`` (``tanh`` or ``relu``) computed by recurrent's Elman kernel.

    Example::

        >>> import torch
        >>> from recurrent.torch import RNNCell
        >>> cell = RNNCell(10, 20, nonlinearity="relu")
        >>> cell(torch.randn(10)).shape
        torch.Size([20])
    """

    @_eager_only
    def forward(self, input, hx=None):  # noqa: D102
        if self.nonlinearity == "tanh":
            mode = "RNN_TANH"
        elif self.nonlinearity == "relu":
            mode = "RNN_RELU"
        else:
            raise RuntimeError(f"Unknown nonlinearity: {self.nonlinearity}")
        return _cell_forward(self, "RNNCell", mode, input, hx)
