"""Helpers shared by the tests: build a torch.nn module and its recurrent.torch twin with the
same parameters, and compare results with the tolerances of the issue (outputs 1e-5, gradients
1e-4, both relative to 1 + |reference|)."""

import torch
from torch import nn

import recurrent.torch as rt

PAIRS = {
    "LSTM": (nn.LSTM, rt.LSTM, {}),
    "GRU": (nn.GRU, rt.GRU, {}),
    "RNN_TANH": (nn.RNN, rt.RNN, {"nonlinearity": "tanh"}),
    "RNN_RELU": (nn.RNN, rt.RNN, {"nonlinearity": "relu"}),
}

CELLS = {
    "LSTMCell": (nn.LSTMCell, rt.LSTMCell, {}),
    "GRUCell": (nn.GRUCell, rt.GRUCell, {}),
    "RNNCell_tanh": (nn.RNNCell, rt.RNNCell, {"nonlinearity": "tanh"}),
    "RNNCell_relu": (nn.RNNCell, rt.RNNCell, {"nonlinearity": "relu"}),
}


def twins(kind, *args, table=PAIRS, dtype=torch.float32, **kwargs):
    """(torch.nn module, recurrent.torch module) with identical parameters."""
    ref_cls, our_cls, extra = table[kind]
    kwargs = {**extra, **kwargs}
    ref = ref_cls(*args, **kwargs).to(dtype)
    ours = our_cls(*args, **kwargs).to(dtype)
    ours.load_state_dict(ref.state_dict(), strict=True)
    return ref, ours


def assert_close(got, want, tol, what=""):
    """|got - want| <= tol * (1 + |want|) elementwise, with the worst element in the message."""
    assert got.shape == want.shape, f"{what}: shape {tuple(got.shape)} != {tuple(want.shape)}"
    assert got.dtype == want.dtype, f"{what}: dtype {got.dtype} != {want.dtype}"
    err = (got - want).abs() / (1 + want.abs())
    worst = err.max().item() if err.numel() else 0.0
    assert worst <= tol, f"{what}: max relative error {worst:.3g} > {tol:g}"


def flat(results):
    """The tensors of a forward result (output or PackedSequence, hidden or (h, c)), in order."""
    out = []
    for r in results if isinstance(results, (tuple, list)) else [results]:
        if isinstance(r, nn.utils.rnn.PackedSequence):
            out.append(r.data)
        elif isinstance(r, (tuple, list)):
            out.extend(flat(r))
        else:
            out.append(r)
    return out
