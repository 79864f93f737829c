"""Bad input is a clear Python exception, never a crash of the interpreter: the messages are
torch.nn's where torch.nn has one, and say what to do where it does not."""

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence

import recurrent.torch as rt


def same_error(ours, ref, exc, match):
    """recurrent.torch raises what torch.nn raises (type and message)."""
    with pytest.raises(exc, match=match) as a:
        ours()
    with pytest.raises(exc, match=match) as b:
        ref()
    assert str(a.value) == str(b.value)


def test_wrong_input_size():
    x = torch.randn(3, 2, 6)
    same_error(lambda: rt.LSTM(4, 5)(x), lambda: nn.LSTM(4, 5)(x), RuntimeError, "input_size. Expected 4, got 6")


@pytest.mark.parametrize(
    "make,hx,match",
    [
        (lambda c: c(4, 5, 2), (torch.zeros(2, 3, 5), torch.zeros(2, 2, 5)), r"Expected hidden\[0\] size \(2, 2, 5\), got \[2, 3, 5\]"),
        (lambda c: c(4, 5, 2), (torch.zeros(2, 2, 5), torch.zeros(2, 3, 5)), r"Expected hidden\[1\] size"),
        (lambda c: c(4, 5, 2), (torch.zeros(2, 5), torch.zeros(2, 5)), "hx and cx should also be 3-D"),
    ],
)
def test_wrong_lstm_hx(make, hx, match):
    x = torch.randn(3, 2, 4)
    same_error(lambda: make(rt.LSTM)(x, hx), lambda: make(nn.LSTM)(x, hx), RuntimeError, match)


@pytest.mark.parametrize("ours,ref", [(rt.GRU, nn.GRU), (rt.RNN, nn.RNN)])
def test_wrong_hx(ours, ref):
    x = torch.randn(3, 2, 4)
    h = torch.zeros(1, 3, 5)
    same_error(lambda: ours(4, 5)(x, h), lambda: ref(4, 5)(x, h), RuntimeError, r"Expected hidden size \(1, 2, 5\), got \[1, 3, 5\]")
    h2 = torch.zeros(2, 5)
    same_error(lambda: ours(4, 5)(x, h2), lambda: ref(4, 5)(x, h2), RuntimeError, "hx should also be 3-D")
    xu = torch.randn(3, 4)
    same_error(lambda: ours(4, 5)(xu, h), lambda: ref(4, 5)(xu, h), RuntimeError, "hx should also be 2-D")


@pytest.mark.parametrize("ours,ref", [(rt.LSTM, nn.LSTM), (rt.GRU, nn.GRU), (rt.RNN, nn.RNN)])
def test_wrong_input_rank(ours, ref):
    x = torch.randn(3, 2, 4, 1)
    same_error(lambda: ours(4, 5)(x), lambda: ref(4, 5)(x), ValueError, "Expected input to be 2D or 3D")


def test_dtype_mismatch_is_torch_nn_s_error():
    x = torch.randn(3, 2, 4, dtype=torch.float64)
    same_error(lambda: rt.LSTM(4, 5)(x), lambda: nn.LSTM(4, 5)(x), ValueError, "does not match weight dtype")


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_is_a_clear_error(dtype):
    m = rt.LSTM(4, 5).to(dtype)
    with pytest.raises(TypeError, match=r"computes in float32 and float64, got torch\.(float16|bfloat16)"):
        m(torch.randn(3, 2, 4).to(dtype))
    cell = rt.GRUCell(4, 5).to(dtype)
    with pytest.raises(TypeError, match="float32 and float64"):
        cell(torch.randn(2, 4).to(dtype))


def test_hidden_state_of_another_dtype():
    m = rt.GRU(4, 5)
    with pytest.raises(RuntimeError, match="Input and hidden tensors are not the same dtype"):
        m(torch.randn(3, 2, 4), torch.zeros(1, 2, 5, dtype=torch.float64))


def test_cuda_tensor_is_a_clear_error():
    """A CUDA input, made without a GPU through PyTorch's fake tensors."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    m = rt.LSTM(4, 5)
    with FakeTensorMode(allow_non_fake_inputs=True):
        x = torch.empty(3, 2, 4, device="cuda")
        assert x.is_cuda
        with pytest.raises(RuntimeError, match=r"runs on the CPU only, but the input is on cuda:0.*torch\.nn\.LSTM"):
            m(x)
        with pytest.raises(RuntimeError, match="runs on the CPU only"):
            rt.LSTMCell(4, 5)(torch.empty(2, 4, device="cuda"))


def test_other_devices_are_clear_errors():
    m = rt.GRU(4, 5)
    with pytest.raises(RuntimeError, match="runs on the CPU only, but the input is on meta"):
        m(torch.empty(3, 2, 4, device="meta"))
    meta_model = rt.GRU(4, 5).to("meta")
    with pytest.raises(RuntimeError, match="not at the same device, found input tensor at cpu and parameter tensor at meta"):
        meta_model(torch.randn(3, 2, 4))
    with pytest.raises(RuntimeError, match="not at the same device"):
        m(torch.randn(3, 2, 4), torch.empty(1, 2, 5, device="meta"))


def test_lengths_longer_than_the_sequence():
    """pack_padded_sequence accepts lengths longer than the padded sequence and makes a
    PackedSequence that describes more rows than it holds: a clear error, not a read past the
    end of the buffer."""
    x = torch.randn(3, 2, 4)
    packed = pack_padded_sequence(x, torch.tensor([9, 2]))
    for m in (rt.LSTM(4, 5), rt.GRU(4, 5, bidirectional=True), rt.RNN(4, 5, num_layers=2)):
        with pytest.raises(ValueError, match="longer than the padded sequence"):
            m(packed)


def test_malformed_packed_sequences():
    data = torch.randn(5, 4)
    bad = [
        (torch.tensor([2, 3]), "positive and non-increasing"),
        (torch.tensor([5, 0]), "positive and non-increasing"),
        (torch.tensor([2.0, 3.0]), "1-D int64 CPU tensor"),
    ]
    for sizes, match in bad:
        with pytest.raises(ValueError, match=match):
            rt.LSTM(4, 5)(PackedSequence(data, sizes))
    with pytest.raises(RuntimeError, match="larger than 0"):
        rt.LSTM(4, 5)(PackedSequence(torch.randn(0, 4), torch.tensor([], dtype=torch.int64)))


@pytest.mark.parametrize(
    "ours,ref,args,match",
    [
        (rt.LSTMCell, nn.LSTMCell, (torch.randn(2, 3),), "input has inconsistent input_size: got 3 expected 4"),
        (rt.LSTMCell, nn.LSTMCell, (torch.randn(2, 4), (torch.zeros(2, 6), torch.zeros(2, 5))), "hidden0 has inconsistent hidden_size: got 6, expected 5"),
        (rt.LSTMCell, nn.LSTMCell, (torch.randn(2, 4), (torch.zeros(2, 5), torch.zeros(2, 6))), "hidden1 has inconsistent hidden_size"),
        (rt.LSTMCell, nn.LSTMCell, (torch.randn(2, 4), (torch.zeros(3, 5), torch.zeros(3, 5))), "Input batch size 2 doesn't match hidden0 batch size 3"),
        (rt.GRUCell, nn.GRUCell, (torch.randn(2, 4), torch.zeros(2, 6)), "hidden0 has inconsistent hidden_size"),
        (rt.RNNCell, nn.RNNCell, (torch.randn(2, 4), torch.zeros(3, 5)), "Input batch size 2 doesn't match hidden0 batch size 3"),
        (rt.RNNCell, nn.RNNCell, (torch.randn(2, 4, 1),), "Expected input to be 1D or 2D, got 3D"),
        (rt.GRUCell, nn.GRUCell, (torch.randn(4), torch.zeros(1, 5)), r"Expected 2D hidden0 \(batch x hidden_size\), but got 3D tensor"),
    ],
)
def test_cell_errors_are_torch_nn_s(ours, ref, args, match):
    same_error(lambda: ours(4, 5)(*args), lambda: ref(4, 5)(*args), (RuntimeError, ValueError), match)


def test_bad_constructor_arguments_are_torch_nn_s():
    for args, kwargs in [
        ((4, 5), dict(dropout=2)),
        ((4, 5), dict(proj_size=5)),
        ((0, 5), {}),
        ((4, 5), dict(nonlinearity="sigmoid")),
    ]:
        cls, ref = (rt.RNN, nn.RNN) if "nonlinearity" in kwargs else (rt.LSTM, nn.LSTM)
        same_error(lambda: cls(*args, **kwargs), lambda: ref(*args, **kwargs), ValueError, ".")
    same_error(lambda: rt.GRU(4, 5, proj_size=2), lambda: nn.GRU(4, 5, proj_size=2), ValueError, "proj_size argument is only supported for LSTM")


def test_unknown_cell_nonlinearity():
    cell = rt.RNNCell(4, 5)
    cell.nonlinearity = "sigmoid"
    with pytest.raises(RuntimeError, match="Unknown nonlinearity: sigmoid"):
        cell(torch.randn(2, 4))
