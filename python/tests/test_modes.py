"""The PyTorch machinery around a module: grad modes, train/eval and dropout, retain_graph,
threads, clip_grad_norm_, torch.compile, copying, and the empty edge cases."""

import copy
import io
import pickle

import pytest
import torch
from torch import nn

import recurrent.torch as rt
from recurrent import _native
from recurrent._function import StackFunction
from conftest import assert_close, twins


def test_no_grad_and_inference_mode_record_nothing():
    m = rt.LSTM(4, 6, num_layers=2)
    x = torch.randn(5, 3, 4, requires_grad=True)
    with torch.no_grad():
        out, (h, c) = m(x)
    assert out.grad_fn is None and not out.requires_grad
    with torch.inference_mode():
        out2, _ = m(x)
    assert out2.is_inference() and out2.grad_fn is None
    assert torch.equal(out, out2)
    _, (h3, _) = m(x)
    assert "StackFunction" in type(h3.grad_fn).__name__


def test_inference_keeps_no_saved_state(monkeypatch):
    """Without a gradient the native forward is asked not to save activations."""
    calls = []
    real = _native.forward

    def spy(*args):
        calls.append(args[10])  # `training`
        return real(*args)

    monkeypatch.setattr(_native, "forward", spy)
    m = rt.GRU(4, 6)
    x = torch.randn(5, 3, 4)
    with torch.no_grad():
        m(x)
    for p in m.parameters():
        p.requires_grad_(False)
    m(x)  # nothing requires a gradient
    m.weight_hh_l0.requires_grad_(True)
    m(x)
    assert calls == [False, False, True]


def test_dropout_between_layers_in_train_mode_only():
    torch.manual_seed(0)
    ref, ours = twins("LSTM", 4, 6, num_layers=3, dropout=0.5)
    x = torch.randn(7, 5, 4)
    ours.eval()
    ref.eval()
    assert_close(ours(x)[0], ref(x)[0], 1e-5, "eval mode: no dropout")
    ours.train()
    a = ours(x)[0]
    b = ours(x)[0]
    assert not torch.allclose(a, b), "train mode: two calls draw different masks"
    torch.manual_seed(123)
    c = ours(x)[0]
    torch.manual_seed(123)
    d = ours(x)[0]
    assert torch.equal(c, d), "the masks come from torch's generator"
    # the mask's scale keeps the expectation: mean over many draws is near the eval output
    with torch.no_grad():
        mean = torch.stack([ours(x)[0] for _ in range(300)]).mean(0)
    ours.eval()
    # not equal (the network is non-linear), but much closer than a single draw
    assert (mean - ours(x)[0]).abs().mean() < (a - ours(x)[0]).abs().mean()


def test_dropout_one_drops_everything_between_layers():
    m = rt.RNN(4, 6, num_layers=2, dropout=1.0)
    x = torch.randn(3, 2, 4)
    out, _ = m(x)
    # layer 2 sees zeros: its output is the bias-driven recurrence only, equal for every sequence
    assert torch.allclose(out[:, 0], out[:, 1])


def test_dropout_gradients_match_the_masks():
    """With dropout on, the backward applies the same masks as the forward: gradcheck passes
    when the masks are fixed by reseeding before every call."""
    m = rt.LSTM(3, 4, num_layers=2, dropout=0.3).double()
    x = torch.randn(4, 2, 3, dtype=torch.float64, requires_grad=True)

    def fn(x):
        torch.manual_seed(99)
        return m(x)[0]

    assert torch.autograd.gradcheck(fn, (x,), eps=1e-6, atol=1e-6)


def test_retain_graph_backward_twice():
    torch.manual_seed(0)
    m = rt.LSTM(4, 6, num_layers=2, bidirectional=True)
    x = torch.randn(5, 3, 4, requires_grad=True)
    out, _ = m(x)
    loss = out.pow(2).sum()
    g1 = torch.autograd.grad(loss, [x, *m.parameters()], retain_graph=True)
    g2 = torch.autograd.grad(loss, [x, *m.parameters()])
    for a, b in zip(g1, g2):
        assert torch.equal(a, b)
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        torch.autograd.grad(loss, [x])


def test_threads_follow_torch_unless_set():
    from recurrent.torch import get_num_threads, set_num_threads

    old = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert get_num_threads() == 1
        set_num_threads(2)
        assert get_num_threads() == 2
        torch.manual_seed(0)
        ref, ours = twins("GRU", 4, 6, num_layers=2)
        x = torch.randn(6, 40, 4)
        a = ours(x)[0]
        set_num_threads(1)
        b = ours(x)[0]
        assert_close(a, b, 1e-6, "one thread vs two")
        assert_close(b, ref(x)[0], 1e-5, "against torch.nn")
        with pytest.raises(ValueError, match="positive int"):
            set_num_threads(0)
    finally:
        set_num_threads(None)
        torch.set_num_threads(old)
    assert get_num_threads() == old


def test_optimiser_utilities_see_the_gradients():
    m = rt.GRU(4, 6)
    out, h = m(torch.randn(5, 3, 4))
    (out.sum() * 100).backward()
    total = torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
    assert total > 1.0
    norms = torch.stack([p.grad.norm() for p in m.parameters()])
    assert abs(norms.pow(2).sum().sqrt().item() - 1.0) < 1e-4


def test_torch_compile_runs_around_the_module():
    torch.manual_seed(0)
    ref, ours = twins("LSTM", 4, 6)
    compiled = torch.compile(lambda x: ours(x)[0].relu().sum(1), backend="eager")
    x = torch.randn(5, 3, 4)
    assert_close(compiled(x), ref(x)[0].relu().sum(1), 1e-5, "compiled")


def test_copy_pickle_and_repr_are_torch_nn_s():
    m = rt.LSTM(4, 6, num_layers=2, proj_size=3, batch_first=True)
    assert repr(m) == repr(nn.LSTM(4, 6, num_layers=2, proj_size=3, batch_first=True))
    for clone in (copy.deepcopy(m), pickle.loads(pickle.dumps(m))):
        assert type(clone) is rt.LSTM
        x = torch.randn(2, 5, 4)
        assert torch.equal(clone(x)[0], m(x)[0])
    buf = io.BytesIO()
    torch.save(m.state_dict(), buf)
    buf.seek(0)
    m2 = nn.LSTM(4, 6, num_layers=2, proj_size=3, batch_first=True)
    m2.load_state_dict(torch.load(buf))
    assert isinstance(m, nn.LSTM)


def test_functional_call_and_replaced_weights():
    torch.manual_seed(0)
    ref, ours = twins("RNN_TANH", 4, 6)
    x = torch.randn(5, 3, 4)
    w = {n: p * 0.5 for n, p in ref.named_parameters()}
    got = torch.func.functional_call(ours, w, (x,))[0]
    want = torch.func.functional_call(ref, w, (x,))[0]
    assert_close(got, want, 1e-5, "functional_call")


def test_empty_batch_gives_empty_results_in_the_graph():
    m = rt.LSTM(4, 6, num_layers=2)
    out, (h, c) = m(torch.randn(3, 0, 4))
    assert out.shape == (3, 0, 6) and h.shape == (2, 0, 6) and c.shape == (2, 0, 6)
    out.sum().backward()
    assert all(torch.equal(p.grad, torch.zeros_like(p)) for p in m.parameters())
    cell = rt.GRUCell(4, 6)
    assert cell(torch.randn(0, 4)).shape == (0, 6)


def test_zero_length_sequence_is_torch_nn_s_error():
    for m in (rt.LSTM(4, 6), nn.LSTM(4, 6)):
        with pytest.raises(RuntimeError, match="sequence length to be larger than 0"):
            m(torch.randn(0, 2, 4))


def test_gradient_of_h_n_only_and_of_c_n_only():
    torch.manual_seed(0)
    ref, ours = twins("LSTM", 4, 6, num_layers=2)
    x = torch.randn(5, 3, 4)
    for pick in (lambda r: r[1][0], lambda r: r[1][1]):
        ga = torch.autograd.grad(pick(ours(x)).sum(), list(ours.parameters()))
        gb = torch.autograd.grad(pick(ref(x)).sum(), list(ref.parameters()))
        for a, b in zip(ga, gb):
            assert_close(a, b, 1e-4, "gradient through h_n / c_n only")


def test_stack_function_is_one_node_per_stack():
    m = rt.LSTM(4, 6, num_layers=3, bidirectional=True)
    out, _ = m(torch.randn(5, 3, 4))
    fn = out.grad_fn
    while fn is not None and "StackFunction" not in type(fn).__name__:
        fn = fn.next_functions[0][0]
    assert fn is not None
    assert StackFunction.__name__ in type(fn).__name__
