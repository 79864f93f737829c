"""torch.autograd.gradcheck in float64: the analytical gradients of the input, hx and every
parameter (made inputs through torch.func.functional_call) against finite differences."""

import pytest
import torch
from torch.func import functional_call
from torch.nn.utils.rnn import pack_padded_sequence

import recurrent.torch as rt


def gradcheck_module(module, x, hx, pack_lengths=None):
    module = module.double()
    names = [n for n, _ in module.named_parameters()]
    params = [p.detach().clone().requires_grad_(True) for p in module.parameters()]
    lstm = isinstance(hx, tuple)
    hs = list(hx) if lstm else [hx]

    def fn(x, *rest):
        hs_, ps = rest[: len(hs)], rest[len(hs) :]
        inp = x if pack_lengths is None else pack_padded_sequence(x, pack_lengths, enforce_sorted=False)
        h = tuple(hs_) if lstm else hs_[0]
        out, hid = functional_call(module, dict(zip(names, ps)), (inp, h))
        out = out.data if pack_lengths is not None else out
        hid = list(hid) if isinstance(hid, tuple) else [hid]
        return (out, *hid)

    inputs = (x.double().requires_grad_(True), *[h.double().requires_grad_(True) for h in hs], *params)
    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize(
    "cls,kwargs",
    [
        (rt.LSTM, dict(num_layers=2, bidirectional=True)),
        (rt.LSTM, dict(proj_size=2)),
        (rt.GRU, dict(num_layers=2, bidirectional=True)),
        (rt.RNN, dict(nonlinearity="tanh", bidirectional=True)),
        (rt.RNN, dict(nonlinearity="relu", num_layers=2)),
    ],
    ids=["lstm-2l-bi", "lstm-proj", "gru-2l-bi", "rnn-tanh-bi", "rnn-relu-2l"],
)
@pytest.mark.parametrize("packed", [False, True], ids=["padded", "packed"])
def test_layer_gradcheck(cls, kwargs, packed):
    torch.manual_seed(0)
    m = cls(3, 4, **kwargs)
    dirs = 2 if kwargs.get("bidirectional") else 1
    layers = kwargs.get("num_layers", 1)
    p = kwargs.get("proj_size", 0) or 4
    x = torch.randn(4, 3, 3)
    h = torch.randn(layers * dirs, 3, p)
    hx = (h, torch.randn(layers * dirs, 3, 4)) if cls is rt.LSTM else h
    gradcheck_module(m, x, hx, torch.tensor([4, 2, 3]) if packed else None)


@pytest.mark.parametrize("cls", [rt.LSTMCell, rt.GRUCell, rt.RNNCell])
def test_cell_gradcheck(cls):
    torch.manual_seed(0)
    m = cls(3, 4).double()
    names = [n for n, _ in m.named_parameters()]
    params = [p.detach().clone().requires_grad_(True) for p in m.parameters()]
    lstm = cls is rt.LSTMCell
    hs = [torch.randn(2, 4, dtype=torch.float64, requires_grad=True) for _ in range(2 if lstm else 1)]

    def fn(x, *rest):
        h = tuple(rest[: len(hs)]) if lstm else rest[0]
        return functional_call(m, dict(zip(names, rest[len(hs) :])), (x, h))

    x = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(fn, (x, *hs, *params), eps=1e-6, atol=1e-6, rtol=1e-4)
