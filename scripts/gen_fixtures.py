#!/usr/bin/env python3
"""Write the golden fixtures that `cargo test` compares `recurrent` against.

Everything is computed by PyTorch itself (CPU, float32, one thread): inputs, PyTorch-named
weights, outputs, final states, and the gradients of the input, the initial states and every
parameter for a random upstream gradient on all outputs. The fixtures are committed, so the
Rust tests need no Python; `fixtures/manifest.json` lists every case, and a listed case whose
tensors are missing makes the tests fail.

Usage:  pip install -r scripts/requirements.txt && python scripts/gen_fixtures.py [--keep-existing]

--keep-existing: where a tensor is already in the committed fixture file and the new value is
within 1e-6 (1 + |value|) of it, keep the committed bytes. PyTorch's CPU kernels (oneDNN's LSTM)
differ in the last bits from one CPU to another, so this adds new cases without touching the
values of the old ones; a larger difference is an error.
"""

import itertools
import json
import math
import os
import sys
import zlib

import torch
from safetensors.torch import load_file, save_file
from torch.nn.utils.rnn import pack_padded_sequence

SEED = 20261126
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures")

# Small shapes keep the files small; they still exercise every code path.
T, B, I, H, PROJ = 5, 3, 3, 4, 2
LENGTHS_SORTED = [5, 3, 2]
LENGTHS_UNSORTED = [2, 5, 3]  # distinct, so the sort order is unambiguous
SMALL_DIMS = (T, B, I, H, PROJ, LENGTHS_UNSORTED)

# Large-batch cases: batches of 19 and 17 rows are above the kernels' slice threshold
# (MIN_SLICE_ROWS = 8 in recurrent-core's backend/cpu/scan.rs), so with two threads per
# direction the batch is split into slices that separate threads carry through time. Only the
# batch matters for that; the other sizes stay small. Their own seed, so the other cases keep
# their values. A packed batch's lengths are a permutation of 1..B (distinct: torch.sort in
# pack_padded_sequence is not stable, so tied lengths would make the packed order arbitrary),
# hence T = B for those.
BIG_SEED = 20261127
BIG_T, BIG_I, BIG_H, BIG_PROJ = 5, 5, 6, 3
# (batch, bidirectional, batch_first, input kind), each with 2 layers and initial states.
BIG_CASES = [
    (19, False, False, "padded"),
    (19, True, False, "padded"),
    (19, False, False, "packed_unsorted"),
    (19, True, False, "packed_unsorted"),
    (17, True, True, "packed_unsorted"),
]

MODES = {
    "rnn_tanh": (torch.nn.RNN, dict(nonlinearity="tanh")),
    "rnn_relu": (torch.nn.RNN, dict(nonlinearity="relu")),
    "lstm": (torch.nn.LSTM, {}),
    "lstm_proj": (torch.nn.LSTM, dict(proj_size=PROJ)),
    "gru": (torch.nn.GRU, {}),
}
INPUT_KINDS = ["padded", "packed_sorted", "packed_unsorted", "unbatched"]


def case_seed(case_id, seed=SEED):
    """A per-case seed that does not depend on Python's randomised string hash."""
    return (seed ^ zlib.crc32(case_id.encode())) % (2**31)


def c(t):
    return t.detach().contiguous().clone()


KEEP_EXISTING = False


def write(store, fname):
    """save_file into fixtures/, keeping the committed bytes of unchanged tensors with --keep-existing."""
    path = os.path.join(ROOT, fname)
    if KEEP_EXISTING and os.path.exists(path):
        old = load_file(path)
        kept = 0
        for k, v in store.items():
            o = old.get(k)
            if o is None:
                continue
            if o.shape != v.shape or o.dtype != v.dtype or not ((o - v).abs() <= 1e-6 * (1 + o.abs())).all():
                raise SystemExit(f"{fname}: {k} differs from the committed fixture beyond the last bits")
            if not torch.equal(o, v):
                kept += 1
            store[k] = o
        if kept:
            print(f"{fname}: kept the committed bytes of {kept} tensors that differ in the last bits", file=sys.stderr)
    save_file(store, path)


def rnn_case(
    store, case_id, mode, num_layers, bidirectional, batch_first, init_state, kind, bias=True, dims=SMALL_DIMS, seed=SEED
):
    """One layer case; `dims` = (T, B, I, H, proj_size, unsorted lengths), the small shapes by default."""
    T, B, I, H, PROJ, lengths_unsorted = dims
    extra = dict(MODES[mode][1])
    if "proj_size" in extra:
        extra["proj_size"] = PROJ
    cls = MODES[mode][0]
    torch.manual_seed(case_seed(case_id, seed))
    m = cls(I, H, num_layers=num_layers, bias=bias, batch_first=batch_first, bidirectional=bidirectional, **extra)
    d = 2 if bidirectional else 1
    p = PROJ if mode == "lstm_proj" else H
    lstm = mode.startswith("lstm")
    unbatched = kind == "unbatched"
    if unbatched:
        x = torch.randn(T, I)
    elif batch_first:
        x = torch.randn(B, T, I)
    else:
        x = torch.randn(T, B, I)
    x.requires_grad_(True)
    hshape = (num_layers * d, p) if unbatched else (num_layers * d, B, p)
    cshape = (num_layers * d, H) if unbatched else (num_layers * d, B, H)
    h0 = torch.randn(*hshape, requires_grad=True) if init_state else None
    c0 = torch.randn(*cshape, requires_grad=True) if (init_state and lstm) else None
    hx = None
    if init_state:
        hx = (h0, c0) if lstm else h0

    lengths = None
    if kind in ("packed_sorted", "packed_unsorted"):
        lengths = LENGTHS_SORTED if kind == "packed_sorted" else lengths_unsorted
        packed = pack_padded_sequence(x, lengths, batch_first=batch_first, enforce_sorted=(kind == "packed_sorted"))
        out, hidden = m(packed, hx)
        out_t = out.data
    else:
        out, hidden = m(x, hx)
        out_t = out
    h_n, c_n = (hidden if lstm else (hidden, None))

    g_out = torch.randn_like(out_t)
    g_h = torch.randn_like(h_n)
    loss = (out_t * g_out).sum() + (h_n * g_h).sum()
    g_c = None
    if lstm:
        g_c = torch.randn_like(c_n)
        loss = loss + (c_n * g_c).sum()
    loss.backward()

    pre = case_id + "."
    store[pre + "input"] = c(x)
    store[pre + "output"] = c(out_t)
    store[pre + "h_n"] = c(h_n)
    store[pre + "g_output"] = c(g_out)
    store[pre + "g_h_n"] = c(g_h)
    store[pre + "grad.input"] = c(x.grad)
    if lstm:
        store[pre + "c_n"] = c(c_n)
        store[pre + "g_c_n"] = c(g_c)
    if init_state:
        store[pre + "h0"] = c(h0)
        store[pre + "grad.h0"] = c(h0.grad)
        if lstm:
            store[pre + "c0"] = c(c0)
            store[pre + "grad.c0"] = c(c0.grad)
    names = []
    for name, prm in m.named_parameters():
        names.append(name)
        store[pre + "param." + name] = c(prm)
        store[pre + "grad." + name] = c(prm.grad)
    if lengths is not None and kind == "packed_unsorted":
        store[pre + "sorted_indices"] = torch.tensor(packed.sorted_indices.tolist(), dtype=torch.float32)
    return dict(
        id=case_id,
        mode=mode,
        num_layers=num_layers,
        bidirectional=bidirectional,
        batch_first=batch_first,
        init_state=init_state,
        input_kind=kind,
        lengths=lengths,
        bias=bias,
        proj_size=PROJ if mode == "lstm_proj" else 0,
        input_size=I,
        hidden_size=H,
        batch=None if unbatched else B,
        steps=T,
        param_names=names,
    )


def big_case(store, mode, batch, bidirectional, batch_first, kind):
    """A 2-layer case with initial states at a batch that the kernels split into slices."""
    cid = f"{mode}-L2-{'bi' if bidirectional else 'uni'}-{'bf' if batch_first else 'tf'}-h-{kind}-B{batch}"
    steps = BIG_T
    lengths = None
    if kind == "packed_unsorted":
        steps = batch
        g = torch.Generator().manual_seed(case_seed(cid + "/lengths", BIG_SEED))
        lengths = [int(v) + 1 for v in torch.randperm(batch, generator=g)]
    dims = (steps, batch, BIG_I, BIG_H, BIG_PROJ, lengths)
    return rnn_case(store, cid, mode, 2, bidirectional, batch_first, True, kind, dims=dims, seed=BIG_SEED)


def cell_cases(store):
    cases = []
    kinds = {
        "rnn_cell_tanh": lambda: torch.nn.RNNCell(I, H, nonlinearity="tanh"),
        "rnn_cell_relu": lambda: torch.nn.RNNCell(I, H, nonlinearity="relu"),
        "lstm_cell": lambda: torch.nn.LSTMCell(I, H),
        "gru_cell": lambda: torch.nn.GRUCell(I, H),
        "lstm_cell_nobias": lambda: torch.nn.LSTMCell(I, H, bias=False),
        "gru_cell_nobias": lambda: torch.nn.GRUCell(I, H, bias=False),
    }
    for kind, batched, with_state in itertools.product(kinds, [True, False], [True, False]):
        cid = f"{kind}-{'b' if batched else 'u'}-{'h' if with_state else 'z'}"
        torch.manual_seed(case_seed(cid))
        m = kinds[kind]()
        lstm = kind.startswith("lstm")
        shape = (B, I) if batched else (I,)
        sshape = (B, H) if batched else (H,)
        x = torch.randn(*shape, requires_grad=True)
        h = torch.randn(*sshape, requires_grad=True) if with_state else None
        cc = torch.randn(*sshape, requires_grad=True) if (with_state and lstm) else None
        if lstm:
            h1, c1 = m(x, (h, cc) if with_state else None)
            g1, g2 = torch.randn_like(h1), torch.randn_like(c1)
            ((h1 * g1).sum() + (c1 * g2).sum()).backward()
        else:
            h1 = m(x, h)
            g1 = torch.randn_like(h1)
            (h1 * g1).sum().backward()
        pre = cid + "."
        store[pre + "input"] = c(x)
        store[pre + "h1"] = c(h1)
        store[pre + "g_h1"] = c(g1)
        store[pre + "grad.input"] = c(x.grad)
        if lstm:
            store[pre + "c1"] = c(c1)
            store[pre + "g_c1"] = c(g2)
        if with_state:
            store[pre + "h0"] = c(h)
            store[pre + "grad.h0"] = c(h.grad)
            if lstm:
                store[pre + "c0"] = c(cc)
                store[pre + "grad.c0"] = c(cc.grad)
        names = []
        for name, prm in m.named_parameters():
            names.append(name)
            store[pre + "param." + name] = c(prm)
            store[pre + "grad." + name] = c(prm.grad)
        cases.append(dict(id=cid, kind=kind, batched=batched, with_state=with_state, param_names=names))
    return cases


def loss_cases(store):
    cases = []
    torch.manual_seed(SEED + 1)

    def add(cid, fn, inputs, target, spec):
        xs = [t.clone().requires_grad_(True) for t in inputs]
        out = fn(*xs)
        g = torch.randn_like(out)
        (out * g).sum().backward()
        pre = cid + "."
        for k, t in enumerate(xs):
            store[pre + f"input{k}"] = c(t)
            store[pre + f"grad.input{k}"] = c(t.grad)
        if target is not None:
            store[pre + "target"] = c(target.float())
        store[pre + "output"] = c(out.reshape(-1) if out.dim() == 0 else out)
        store[pre + "g_output"] = c(g.reshape(-1) if g.dim() == 0 else g)
        spec = dict(spec, id=cid, output_scalar=out.dim() == 0)
        cases.append(spec)

    F = torch.nn.functional
    for red in ["mean", "sum", "none"]:
        x = torch.randn(6, 3)
        y = torch.randint(0, 2, (6, 3)).float()
        pw = torch.tensor([0.5, 2.0, 3.0])
        w = torch.rand(6, 3)
        add(f"bce-{red}", lambda a: F.binary_cross_entropy_with_logits(a, y, reduction=red), [x], y, dict(loss="bce", reduction=red))
        add(
            f"bce-pw-{red}",
            lambda a: F.binary_cross_entropy_with_logits(a, y, pos_weight=pw, reduction=red),
            [x],
            y,
            dict(loss="bce", reduction=red, pos_weight=pw.tolist()),
        )
        store[f"bce-w-{red}.weight"] = c(w)
        add(
            f"bce-w-{red}",
            lambda a: F.binary_cross_entropy_with_logits(a, y, weight=w, pos_weight=pw, reduction=red),
            [x],
            y,
            dict(loss="bce", reduction=red, pos_weight=pw.tolist(), weight=True),
        )
        logits = torch.randn(5, 4)
        tgt = torch.tensor([0, 3, -100, 1, 2])
        cw = torch.tensor([1.0, 2.0, 0.5, 1.5])
        add(f"ce-{red}", lambda a: F.cross_entropy(a, tgt, reduction=red), [logits], tgt, dict(loss="ce", reduction=red))
        add(
            f"ce-w-ls-{red}",
            lambda a: F.cross_entropy(a, tgt, weight=cw, label_smoothing=0.1, reduction=red),
            [logits],
            tgt,
            dict(loss="ce", reduction=red, weight=cw.tolist(), label_smoothing=0.1),
        )
        tgt2 = torch.tensor([1, 1, 0, 2, 3])
        add(
            f"ce-ignore1-{red}",
            lambda a: F.cross_entropy(a, tgt2, ignore_index=1, reduction=red),
            [logits],
            tgt2,
            dict(loss="ce", reduction=red, ignore_index=1),
        )
        probs = torch.softmax(torch.randn(5, 4), dim=1)
        store[f"ce-probs-{red}.probs"] = c(probs)
        add(
            f"ce-probs-{red}",
            lambda a: F.cross_entropy(a, probs, label_smoothing=0.2, reduction=red),
            [logits],
            None,
            dict(loss="ce_probs", reduction=red, label_smoothing=0.2),
        )
        seq_logits = torch.randn(2, 4, 3)  # [N, C, d]
        seq_tgt = torch.tensor([[0, 3, 1], [2, -100, 0]])
        add(
            f"ce-nd-{red}",
            lambda a: F.cross_entropy(a, seq_tgt, reduction=red),
            [seq_logits],
            seq_tgt,
            dict(loss="ce", reduction=red),
        )
        a = torch.randn(4, 3)
        b = torch.randn(4, 3)
        add(f"mse-{red}", lambda p: F.mse_loss(p, b, reduction=red), [a], b, dict(loss="mse", reduction=red))
    return cases


class TinyModel(torch.nn.Module):
    """LSTM(3, 4) -> Linear(4, 1) on the last hidden state: the optimiser fixtures' model."""

    def __init__(self):
        super().__init__()
        self.lstm = torch.nn.LSTM(3, 4, batch_first=True)
        self.fc = torch.nn.Linear(4, 1)

    def forward(self, x):
        _, (h, _) = self.lstm(x)
        return self.fc(h[-1]).squeeze(-1)


def optim_cases(store):
    configs = [
        ("sgd", lambda ps: torch.optim.SGD(ps, lr=0.1), dict(opt="sgd", lr=0.1)),
        (
            "sgd-momentum",
            lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9, dampening=0.1, weight_decay=0.01),
            dict(opt="sgd", lr=0.05, momentum=0.9, dampening=0.1, weight_decay=0.01),
        ),
        (
            "sgd-nesterov",
            lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.8, nesterov=True),
            dict(opt="sgd", lr=0.05, momentum=0.8, nesterov=True),
        ),
        ("adam", lambda ps: torch.optim.Adam(ps, lr=0.01), dict(opt="adam", lr=0.01)),
        (
            "adam-amsgrad-wd",
            lambda ps: torch.optim.Adam(ps, lr=0.01, betas=(0.8, 0.99), weight_decay=0.05, amsgrad=True),
            dict(opt="adam", lr=0.01, betas=[0.8, 0.99], weight_decay=0.05, amsgrad=True),
        ),
        ("adamw", lambda ps: torch.optim.AdamW(ps, lr=0.01), dict(opt="adamw", lr=0.01)),
        ("rmsprop", lambda ps: torch.optim.RMSprop(ps, lr=0.01), dict(opt="rmsprop", lr=0.01)),
        (
            "rmsprop-centered-momentum",
            lambda ps: torch.optim.RMSprop(ps, lr=0.01, alpha=0.9, momentum=0.5, centered=True, weight_decay=0.01),
            dict(opt="rmsprop", lr=0.01, alpha=0.9, momentum=0.5, centered=True, weight_decay=0.01),
        ),
    ]
    torch.manual_seed(SEED + 2)
    x = torch.randn(4, 6, 3)
    y = torch.randn(4)
    store["optim.x"] = c(x)
    store["optim.y"] = c(y)
    cases = []
    for name, make, spec in configs:
        torch.manual_seed(SEED + 3)
        model = TinyModel()
        for pn, prm in model.named_parameters():
            store[f"{name}.init.{pn}"] = c(prm)
        opt = make(model.parameters())
        clip = name.endswith("momentum") and name.startswith("sgd")
        for step in range(5):
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(model(x), y)
            loss.backward()
            if clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), 0.5)
            opt.step()
            for pn, prm in model.named_parameters():
                store[f"{name}.step{step}.{pn}"] = c(prm)
            store[f"{name}.step{step}.loss"] = torch.tensor([loss.item()])
        cases.append(dict(spec, id=name, clip_grad_norm=0.5 if clip else None, steps=5))
    return cases


def scheduler_cases():
    def run(make, epochs=12):
        p = torch.nn.Parameter(torch.zeros(1))
        opt = torch.optim.SGD([p], lr=0.1)
        sch = make(opt)
        lrs = [opt.param_groups[0]["lr"]]
        for _ in range(epochs):
            opt.step()
            sch.step()
            lrs.append(opt.param_groups[0]["lr"])
        return lrs

    S = torch.optim.lr_scheduler
    return [
        dict(id="step", spec=dict(kind="step", step_size=3, gamma=0.5), lrs=run(lambda o: S.StepLR(o, 3, 0.5))),
        dict(
            id="multistep",
            spec=dict(kind="multistep", milestones=[2, 5, 9], gamma=0.3),
            lrs=run(lambda o: S.MultiStepLR(o, [2, 5, 9], 0.3)),
        ),
        dict(id="exponential", spec=dict(kind="exponential", gamma=0.9), lrs=run(lambda o: S.ExponentialLR(o, 0.9))),
        dict(
            id="cosine",
            spec=dict(kind="cosine", t_max=10, eta_min=0.001),
            lrs=run(lambda o: S.CosineAnnealingLR(o, T_max=10, eta_min=0.001)),
        ),
        dict(
            id="linear",
            spec=dict(kind="linear", start_factor=0.25, end_factor=1.0, total_iters=4),
            lrs=run(lambda o: S.LinearLR(o, start_factor=0.25, end_factor=1.0, total_iters=4)),
        ),
        dict(
            id="warmup-cosine",
            spec=dict(kind="warmup_cosine", warmup=3, start_factor=0.1, t_max=9, eta_min=0.0),
            lrs=run(
                lambda o: S.SequentialLR(
                    o,
                    [S.LinearLR(o, start_factor=0.1, end_factor=1.0, total_iters=3), S.CosineAnnealingLR(o, T_max=9)],
                    milestones=[3],
                )
            ),
        ),
    ]


class LabModel(torch.nn.Module):
    """The IMDB lab's architecture in small: Embedding -> 2-layer LSTM -> Linear -> 1 logit."""

    def __init__(self, vocab=50, emb=6, hidden=5):
        super().__init__()
        self.embedding = torch.nn.Embedding(vocab, emb, padding_idx=1)
        self.lstm = torch.nn.LSTM(emb, hidden, num_layers=2, batch_first=True)
        self.fc = torch.nn.Linear(hidden, 1)

    def forward(self, ids, lengths):
        e = self.embedding(ids)
        packed = pack_padded_sequence(e, lengths, batch_first=True, enforce_sorted=False)
        _, (h, _) = self.lstm(packed)
        return self.fc(h[-1]).squeeze(-1)


def model_case():
    """The lab model's state dict, logits, and one training step's loss and gradients:
    BCEWithLogitsLoss (mean) against 0/1 targets, backpropagated into every parameter."""
    torch.manual_seed(SEED + 4)
    m = LabModel()
    ids = torch.randint(2, 50, (4, 7))
    lengths = [7, 3, 5, 1]
    for b, L in enumerate(lengths):
        ids[b, L:] = 1
    logits = m(ids, lengths)
    sd = {k: c(v) for k, v in m.state_dict().items()}
    # Targets from their own generator, so the logits and weights above keep their values.
    targets = torch.randint(0, 2, (4,), generator=torch.Generator().manual_seed(SEED + 5)).float()
    loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, targets)
    loss.backward()
    io = {"ids": ids.float().contiguous(), "logits": c(logits), "targets": c(targets), "loss": c(loss.reshape(1))}
    names = []
    for name, prm in m.named_parameters():
        names.append(name)
        io["grad." + name] = c(prm.grad)
    write(sd, "lab_model.safetensors")
    write(io, "lab_model_io.safetensors")
    return dict(
        lengths=lengths,
        state_dict_names=list(sd.keys()),
        shapes={k: list(v.shape) for k, v in sd.items()},
        loss="bce_with_logits_mean",
        param_names=names,
    )


def main():
    global KEEP_EXISTING
    KEEP_EXISTING = "--keep-existing" in sys.argv[1:]
    torch.set_num_threads(1)
    os.makedirs(ROOT, exist_ok=True)
    manifest = dict(
        torch_version=torch.__version__,
        seed=SEED,
        shapes=dict(T=T, B=B, I=I, H=H, proj_size=PROJ),
        big_batch=dict(seed=BIG_SEED, T=BIG_T, I=BIG_I, H=BIG_H, proj_size=BIG_PROJ, batches=sorted({b for b, *_ in BIG_CASES})),
        tolerances=dict(forward=1e-5, gradient=1e-4),
        rnn_files={},
        rnn_cases=[],
    )
    for mode in MODES:
        store = {}
        for num_layers, bidir, bf, init_state, kind in itertools.product(
            [1, 2, 3], [False, True], [False, True], [False, True], INPUT_KINDS
        ):
            cid = f"{mode}-L{num_layers}-{'bi' if bidir else 'uni'}-{'bf' if bf else 'tf'}-{'h' if init_state else 'z'}-{kind}"
            manifest["rnn_cases"].append(dict(rnn_case(store, cid, mode, num_layers, bidir, bf, init_state, kind), file=f"rnn_{mode}.safetensors"))
        # bias=False, beyond the matrix
        for num_layers, bidir, kind in [(1, False, "padded"), (2, True, "packed_unsorted")]:
            cid = f"{mode}-L{num_layers}-{'bi' if bidir else 'uni'}-tf-h-{kind}-nobias"
            manifest["rnn_cases"].append(dict(rnn_case(store, cid, mode, num_layers, bidir, False, True, kind, bias=False), file=f"rnn_{mode}.safetensors"))
        # Batches the kernels split into slices carried by separate threads (appended last).
        for batch, bidir, bf, kind in BIG_CASES:
            manifest["rnn_cases"].append(dict(big_case(store, mode, batch, bidir, bf, kind), file=f"rnn_{mode}.safetensors"))
        fname = f"rnn_{mode}.safetensors"
        write(store, fname)
        manifest["rnn_files"][mode] = fname

    store = {}
    manifest["cell_cases"] = cell_cases(store)
    write(store, "cells.safetensors")
    store = {}
    manifest["loss_cases"] = loss_cases(store)
    write(store, "losses.safetensors")
    store = {}
    manifest["optim_cases"] = optim_cases(store)
    write(store, "optim.safetensors")
    manifest["scheduler_cases"] = scheduler_cases()
    manifest["lab_model"] = model_case()
    with open(os.path.join(ROOT, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    total = sum(os.path.getsize(os.path.join(ROOT, n)) for n in os.listdir(ROOT))
    print(
        f"{len(manifest['rnn_cases'])} rnn cases, {len(manifest['cell_cases'])} cell cases, "
        f"{len(manifest['loss_cases'])} loss cases, {len(manifest['optim_cases'])} optimiser cases, "
        f"{len(manifest['scheduler_cases'])} schedules; {total / 1e6:.2f} MB",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
