#!/usr/bin/env python3
"""The speed cases of `recurrent bench`, in PyTorch (torch.nn.*, 2 threads).

Same shapes, same FLOP counts, same JSON fields (layer, case, mode, median_ms, gflops, ...)
as `recurrent bench --json`, so scripts/bench_table.py can print the ratios.

Usage: python scripts/bench_torch.py [--flush-denormal] [--json FILE] [--repeat N]
                                    [--cases imdb,small,...] [--layers lstm,gru,rnn,lab] [--modes train,infer]
"""
import argparse
import json
import os
import statistics
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
SHAPES = {
    "imdb": dict(batch=64, seq=256, input=128, hidden=256, layers=2, bidir=False),
    "small": dict(batch=32, seq=64, input=64, hidden=128, layers=1, bidir=False),
    "bidir": dict(batch=64, seq=256, input=128, hidden=256, layers=1, bidir=True),
}
GATES = {"lstm": 4, "gru": 3, "rnn": 1}


def forward_flops(layer, s, tokens):
    g, h, d = GATES[layer], s["hidden"], 2 if s["bidir"] else 1
    total = 0.0
    for l in range(s["layers"]):
        i = s["input"] if l == 0 else d * h
        total += 2.0 * g * h * (i + h) * d * tokens
    return total


def status(key):
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key):
                    return float(line.split()[1]) / 1024.0
    except OSError:
        return None


def reset_peak():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return status("VmRSS:")
    except OSError:
        return None


def timed(repeat, step, base=None):
    # Resident-set growth from before the first step (warm-up included), as `recurrent bench`.
    if base is None:
        base = reset_peak()
    for _ in range(2):
        step()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        step()
        times.append((time.perf_counter() - t) * 1e3)
    peak = status("VmHWM:")
    return times, (max(0.0, peak - base) if base is not None and peak is not None else float("nan"))


def row(layer, case, mode, times, flops, peak, framework):
    med = statistics.median(times)
    return dict(layer=layer, case=case, mode=mode, median_ms=med, min_ms=min(times), max_ms=max(times),
                gflops=flops / (med * 1e-3) / 1e9, peak_mb=peak, iters=len(times), first_steps_ms=None, framework=framework)


def make(layer, s):
    cls = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}[layer]
    return cls(s["input"], s["hidden"], num_layers=s["layers"], bidirectional=s["bidir"], batch_first=True)


def layer_case(layer, case, s, mode, lengths, repeat, fw):
    torch.manual_seed(1)
    net = make(layer, s)
    x = torch.rand(s["batch"], s["seq"], s["input"]) * 2 - 1
    train = mode == "train"
    # The input gets a gradient in training, as in `recurrent bench` (oneDNN computes it anyway).
    x.requires_grad_(train)
    if not train:
        net.eval()

    def step():
        with torch.set_grad_enabled(train):
            if lengths is not None:
                inp = torch.nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=True)
                out = net(inp)[0].data
            else:
                out = net(x)[0]
            if train:
                net.zero_grad(set_to_none=True)
                x.grad = None
                out.sum().backward()

    times, peak = timed(repeat, step)
    tokens = sum(lengths) if lengths is not None else s["batch"] * s["seq"]
    return row(layer, case, mode, times, forward_flops(layer, s, tokens) * (3 if train else 1), peak, fw)


LATENCY = dict(batch=1, seq=1000, input=32, hidden=64, layers=1, bidir=False)


def cell_latency(layer, repeat, fw):
    """One layer call on a 1000-step sequence at batch 1: the latency of a step."""
    torch.manual_seed(2)
    s = LATENCY
    net = make(layer, s).eval()
    x = torch.rand(1, s["seq"], s["input"]) * 2 - 1

    def step():
        with torch.no_grad():
            net(x)

    times, peak = timed(repeat, step)
    return row(layer, "cell-latency", "infer", times, forward_flops(layer, s, s["seq"]), peak, fw)


def cell_loop(layer, repeat, fw):
    """A cell stepped 1000 times from Python at batch 1 (Python's per-call cost included)."""
    torch.manual_seed(2)
    s = LATENCY
    t, i, h = s["seq"], s["input"], s["hidden"]
    cell = {"lstm": torch.nn.LSTMCell, "gru": torch.nn.GRUCell, "rnn": torch.nn.RNNCell}[layer](i, h)
    xs = torch.rand(t, 1, i) * 2 - 1

    def step():
        with torch.no_grad():
            st = None
            for k in range(t):
                st = cell(xs[k], st)

    times, peak = timed(repeat, step)
    return row(layer, "cell-loop", "infer", times, forward_flops(layer, s, t), peak, fw)


class Lab(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.embedding = torch.nn.Embedding(20000, 128, padding_idx=1)
        self.rnn = torch.nn.LSTM(128, 256, num_layers=2, batch_first=True)
        self.fc = torch.nn.Linear(256, 1)

    def forward(self, ids):
        _, (h, _) = self.rnn(self.embedding(ids))
        return self.fc(h[-1]).squeeze(1)


def lab(mode, repeat, fw):
    torch.manual_seed(3)
    model = Lab()
    ids = torch.randint(2, 20000, (64, 256))
    y = (torch.arange(64) % 2).float()
    opt = torch.optim.Adam(model.parameters())
    train = mode == "train"
    if not train:
        model.eval()

    def step():
        if train:
            opt.zero_grad(set_to_none=True)
            loss = torch.nn.functional.binary_cross_entropy_with_logits(model(ids), y)
            loss.backward()
            opt.step()
        else:
            with torch.no_grad():
                model(ids)

    # The memory baseline comes before the first steps, which allocate what the rest reuse.
    base = reset_peak()
    first = []
    if train:
        for _ in range(3):
            t = time.perf_counter()
            step()
            first.append((time.perf_counter() - t) * 1e3)
    times, peak = timed(repeat, step, base)
    s = dict(batch=64, seq=256, input=128, hidden=256, layers=2, bidir=False)
    r = row("lab", "lab", mode, times, forward_flops("lstm", s, 64 * 256) * (3 if train else 1), peak, fw)
    r["first_steps_ms"] = sum(first) / len(first) if first else None
    return r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--flush-denormal", action="store_true", help="torch.set_flush_denormal(True) before the first op")
    ap.add_argument("--json")
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--cases", default="")
    ap.add_argument("--layers", default="")
    ap.add_argument("--modes", default="")
    a = ap.parse_args()
    if a.flush_denormal:
        torch.set_flush_denormal(True)
    torch.set_num_threads(2)
    fw = "pytorch-ftz" if a.flush_denormal else "pytorch"
    want = lambda lst, x: not lst or x in lst.split(",")
    with open(os.path.join(HERE, "..", "fixtures", "bench_lengths.json")) as f:
        lengths = json.load(f)["lengths"]
    print(f"PyTorch {torch.__version__}, {torch.get_num_threads()} threads, flush denormals: {a.flush_denormal}", file=sys.stderr)
    rows = []

    def push(r):
        rows.append(r)
        print(f"{r['layer']:<5} {r['case']:<13} {r['mode']:<6} {r['median_ms']:>10.2f} {r['min_ms']:>10.2f} {r['max_ms']:>10.2f} "
              f"{r['gflops']:>9.1f} {r['peak_mb']:>9.1f}" + (f"   (first 3 steps: {r['first_steps_ms']:.0f} ms)" if r["first_steps_ms"] else ""),
              file=sys.stderr, flush=True)

    for layer in ["lstm", "gru", "rnn"]:
        if not want(a.layers, layer):
            continue
        for case, shape, lens in [("imdb", SHAPES["imdb"], None), ("small", SHAPES["small"], None), ("bidir", SHAPES["bidir"], None),
                                  ("packed", SHAPES["imdb"], lengths), ("padded", SHAPES["imdb"], None)]:
            if not want(a.cases, case) and not (case == "padded" and want(a.cases, "packed")):
                continue
            for mode in ["train", "infer"]:
                if want(a.modes, mode):
                    push(layer_case(layer, case, shape, mode, lens, a.repeat, fw))
        if want(a.cases, "cell-latency") and want(a.modes, "infer"):
            push(cell_latency(layer, a.repeat, fw))
        if want(a.cases, "cell-loop") and want(a.modes, "infer"):
            push(cell_loop(layer, a.repeat, fw))
    if want(a.cases, "lab") and (not a.layers or want(a.layers, "lab")):
        for mode in ["train", "infer"]:
            if want(a.modes, mode):
                push(lab(mode, a.repeat, fw))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
