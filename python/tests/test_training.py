"""Training with recurrent.torch inside ordinary PyTorch code: state dicts both ways, a training
loop with torch.optim that follows torch.nn's step for step, and DistributedDataParallel."""

import os
import socket
import sys
import tempfile

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

import recurrent.torch as rt
from conftest import PAIRS, assert_close, twins


@pytest.mark.parametrize("kind", list(PAIRS))
def test_state_dict_moves_both_ways(kind):
    ref_cls, our_cls, extra = PAIRS[kind]
    kwargs = dict(extra, num_layers=2, bidirectional=True, bias=False)
    if kind == "LSTM":
        kwargs["proj_size"] = 3
    torch.manual_seed(1)
    ref = ref_cls(5, 7, **kwargs)
    torch.manual_seed(1)
    ours = our_cls(5, 7, **kwargs)
    # the same names, shapes, order and (same seed) the same initial values
    assert [(n, p.shape) for n, p in ours.named_parameters()] == [
        (n, p.shape) for n, p in ref.named_parameters()
    ]
    for (n, a), (_, b) in zip(ours.state_dict().items(), ref.state_dict().items()):
        assert torch.equal(a, b), n
    # and each loads into the other, strictly
    other_ref = ref_cls(5, 7, **kwargs)
    other_ref.load_state_dict(ours.state_dict(), strict=True)
    other_ours = our_cls(5, 7, **kwargs)
    other_ours.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(4, 2, 5)
    with torch.no_grad():
        assert_close(other_ours(x)[0], ref(x)[0], 1e-5, "output after load")


class Classifier(nn.Module):
    """The course's lab model in miniature: embedding, stacked LSTM, linear, one logit."""

    def __init__(self, lstm_cls, vocab=50, emb=8, hidden=12):
        super().__init__()
        self.emb = nn.Embedding(vocab, emb, padding_idx=0)
        self.lstm = lstm_cls(emb, hidden, num_layers=2, batch_first=True)
        self.fc = nn.Linear(hidden, 1)

    def forward(self, tokens, lengths):
        packed = pack_padded_sequence(self.emb(tokens), lengths, batch_first=True, enforce_sorted=False)
        _, (h_n, _) = self.lstm(packed)
        return self.fc(h_n[-1]).squeeze(1)


def train(model, steps, data, lr=0.01):
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for tokens, lengths, labels in data[:steps]:
        opt.zero_grad()
        loss = nn.functional.binary_cross_entropy_with_logits(model(tokens, lengths), labels)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
    return losses


def batches(n, batch=8, seq=12, vocab=50, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        lengths = torch.randint(2, seq + 1, (batch,), generator=g)
        tokens = torch.randint(1, vocab, (batch, seq), generator=g)
        tokens[torch.arange(seq)[None, :] >= lengths[:, None]] = 0
        labels = (tokens[:, 0] % 2).float()
        out.append((tokens, lengths, labels))
    return out


def test_training_loop_follows_torch_nn():
    data = batches(20)
    torch.manual_seed(0)
    ref = Classifier(nn.LSTM)
    torch.manual_seed(0)
    ours = Classifier(rt.LSTM)
    for (n, a), (_, b) in zip(ours.state_dict().items(), ref.state_dict().items()):
        assert torch.equal(a, b), n
    want = train(ref, 20, data)
    got = train(ours, 20, data)
    assert len(got) == 20
    for k, (g, w) in enumerate(zip(got, want)):
        assert abs(g - w) <= 1e-4 * (1 + abs(w)), f"step {k}: loss {g} vs torch.nn {w}"
    # and it learned something: the losses are not all equal
    assert max(got) - min(got) > 1e-3
    for (n, a), (_, b) in zip(ours.state_dict().items(), ref.state_dict().items()):
        assert_close(a, b, 1e-4, f"parameter {n} after 20 steps")


# --- DistributedDataParallel over gloo -------------------------------------------------------

DDP_STEPS = 3


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_data():
    g = torch.Generator().manual_seed(5)
    x = torch.randn(DDP_STEPS, 9, 8, 6, generator=g)  # steps, seq, batch, input
    lengths = torch.randint(1, 10, (DDP_STEPS, 8), generator=g)
    y = torch.randn(DDP_STEPS, 8, 5, generator=g)
    return x, lengths, y


def _ddp_model():
    torch.manual_seed(11)
    return rt.LSTM(6, 5, num_layers=2, bidirectional=False)


def _ddp_step_loss(model, x, lengths, y):
    packed = pack_padded_sequence(x, lengths, enforce_sorted=False)
    _, (h_n, _) = model(packed)
    return ((h_n[-1] - y) ** 2).mean()


def _ddp_worker(rank, world, port, out_path):
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        model = nn.parallel.DistributedDataParallel(_ddp_model())
        opt = torch.optim.SGD(model.parameters(), lr=0.5)
        x, lengths, y = _ddp_data()
        half = x.shape[2] // world
        for s in range(DDP_STEPS):
            rows = slice(rank * half, (rank + 1) * half)
            opt.zero_grad()
            _ddp_step_loss(model, x[s][:, rows], lengths[s][rows], y[s][rows]).backward()
            opt.step()
        if rank == 0:
            torch.save(model.module.state_dict(), out_path)
    finally:
        dist.destroy_process_group()


def test_ddp_two_processes_equal_one_process_on_the_whole_batch():
    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("this PyTorch build has no gloo backend")
    with tempfile.TemporaryDirectory() as tmp:
        out_path = os.path.join(tmp, "ddp.pt")
        mp.spawn(_ddp_worker, args=(2, _free_port(), out_path), nprocs=2, join=True)
        ddp_params = torch.load(out_path)
    model = _ddp_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    x, lengths, y = _ddp_data()
    for s in range(DDP_STEPS):
        opt.zero_grad()
        _ddp_step_loss(model, x[s], lengths[s], y[s]).backward()
        opt.step()
    start = _ddp_model().state_dict()
    moved = 0.0
    for name, p in model.state_dict().items():
        assert_close(ddp_params[name], p, 1e-5, f"DDP parameter {name}")
        moved = max(moved, (p - start[name]).abs().max().item())
    assert moved > 1e-3, "the parameters did not change: the test would prove nothing"
