"""Time torch.nn against recurrent.torch on this machine: ``python -m recurrent.bench``.

Cases (the IMDB lab's shape: batch 64, 256 steps, input 128, hidden 256, 2 layers,
batch_first): LSTM, GRU and RNN, padded and packed input (64 lengths drawn from the IMDB
training reviews, truncated at 256), training (forward, ``output.sum()``, backward) and
inference (forward under ``torch.no_grad()``). Both modules have the same parameters and see
the same tensors; packing is part of the timed step for both. torch.nn runs twice, before and
after recurrent.torch, so the spread of the two shows the noise of the machine. PyTorch runs
with ``torch.set_flush_denormal(True)``, its fastest setting for these cases.

The last lines time one call at batch 1 (one step, input 32, hidden 64): the whole call of
each module, and the part of recurrent.torch's call spent in Python around the native call.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

import torch
from torch.nn.utils.rnn import pack_padded_sequence

from . import _native
from . import torch as rtorch
from ._function import _buf, get_num_threads

# basic_english token counts of 64 random IMDB training reviews, truncated at 256 (seed
# 20261126); the same as the Rust benchmark's fixtures/bench_lengths.json.
IMDB_LENGTHS = (
    [256] * 22
    + [245, 245, 227, 223, 214, 209, 198, 198, 195, 185, 184, 183, 181, 178, 175, 169, 163]
    + [161, 159, 156, 154, 153, 149, 148, 146, 144, 142, 138, 131, 130, 130, 125, 121, 119]
    + [116, 98, 86, 85, 68, 62, 56, 16]
)
SHAPE = dict(batch=64, seq=256, input=128, hidden=256, layers=2)
GATES = {"lstm": 4, "gru": 3, "rnn": 1}
CLASSES = {
    "lstm": (torch.nn.LSTM, rtorch.LSTM),
    "gru": (torch.nn.GRU, rtorch.GRU),
    "rnn": (torch.nn.RNN, rtorch.RNN),
}


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def timed(step, repeat, warmup=1):
    for _ in range(warmup):
        step()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def flops(layer, tokens, train):
    g, h, s = GATES[layer], SHAPE["hidden"], SHAPE
    total = sum(2.0 * g * h * ((s["input"] if k == 0 else h) + h) * tokens for k in range(s["layers"]))
    return total * (3 if train else 1)


def make_step(module, x, lengths, train):
    def step():
        with torch.set_grad_enabled(train):
            if lengths is not None:
                out = module(pack_padded_sequence(x, lengths, batch_first=True))[0].data
            else:
                out = module(x)[0]
            if train:
                module.zero_grad(set_to_none=True)
                out.sum().backward()

    return step


def layer_case(layer, packed, train, repeat):
    torch.manual_seed(1)
    ref_cls, our_cls = CLASSES[layer]
    s = SHAPE
    ref = ref_cls(s["input"], s["hidden"], num_layers=s["layers"], batch_first=True)
    ours = our_cls(s["input"], s["hidden"], num_layers=s["layers"], batch_first=True)
    ours.load_state_dict(ref.state_dict())
    if not train:
        ref.eval()
        ours.eval()
    x = torch.rand(s["batch"], s["seq"], s["input"]) * 2 - 1
    lengths = torch.tensor(IMDB_LENGTHS) if packed else None
    tokens = sum(IMDB_LENGTHS) if packed else s["batch"] * s["seq"]
    t_ref1 = timed(make_step(ref, x, lengths, train), repeat)
    t_ours = timed(make_step(ours, x, lengths, train), repeat)
    t_ref2 = timed(make_step(ref, x, lengths, train), repeat)
    return dict(
        layer=layer,
        input="packed" if packed else "padded",
        mode="train" if train else "infer",
        torch_ms=(t_ref1 * 1e3, t_ref2 * 1e3),
        ours_ms=t_ours * 1e3,
        ours_gflops=flops(layer, tokens, train) / t_ours / 1e9,
    )


def call_overhead(repeat):
    """One call at batch 1: (torch.nn call, recurrent.torch call, native call alone), in us,
    for inference and for a training forward+backward."""
    torch.manual_seed(2)
    ref = torch.nn.LSTM(32, 64)
    ours = rtorch.LSTM(32, 64)
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(1, 1, 32)
    calls = 2000

    def many(f):
        def run():
            for _ in range(calls):
                f()

        return timed(run, repeat) / calls * 1e6

    with torch.no_grad():
        t_ref = many(lambda: ref(x))
        t_ours = many(lambda: ours(x))
        params = [p.detach() for p in ours._flat_weights]
        h0 = torch.zeros(1, 1, 64)
        out, hn, cn = torch.empty(1, 64), torch.empty(1, 1, 64), torch.empty(1, 1, 64)
        spec = ("LSTM", 32, 64, 0, 1, 1, True, False)
        xs = x.view(1, 32)
        pbufs = [_buf(p) for p in params]
        threads = get_num_threads()
        t_native = many(
            lambda: _native.forward(
                spec, (0, 1, 1), _buf(xs), _buf(h0), _buf(h0), pbufs, [], _buf(out), _buf(hn), _buf(cn), False, threads
            )
        )

    xg = x.clone().requires_grad_(True)

    def train_call(m):
        def f():
            out, _ = m(xg)
            out.sum().backward()

        return f

    t_ref_train = many(train_call(ref))
    t_ours_train = many(train_call(ours))
    return dict(
        infer=(t_ref, t_ours, t_native),
        train=(t_ref_train, t_ours_train),
    )


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m recurrent.bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2, help="threads for both (default 2)")
    ap.add_argument("--repeat", type=int, default=5, help="timed steps per case (median; default 5)")
    ap.add_argument("--layers", default="lstm,gru,rnn")
    ap.add_argument("--inputs", default="padded,packed")
    ap.add_argument("--modes", default="train,infer")
    ap.add_argument("--no-overhead", action="store_true", help="skip the batch-1 call timing")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    torch.set_flush_denormal(True)
    rtorch.set_num_threads(None)
    print(f"machine: {cpu_name()}, {os.cpu_count()} logical CPUs ({', '.join(_native.cpu_features()) or 'baseline'})")
    print(
        f"PyTorch {torch.__version__} (oneDNN: {torch.backends.mkldnn.is_available()}), recurrent "
        f"{_native.__version__}; {a.threads} threads each; torch.set_flush_denormal(True)"
    )
    print(f"shape: batch {SHAPE['batch']}, {SHAPE['seq']} steps, input {SHAPE['input']}, hidden {SHAPE['hidden']}, "
          f"{SHAPE['layers']} layers, batch_first; packed lengths: IMDB, mean {sum(IMDB_LENGTHS) / 64:.0f}")
    print()
    head = f"{'layer':<5} {'input':<6} {'mode':<5} {'torch.nn ms (2 runs)':>21} {'recurrent ms':>12} {'ratio':>13} {'GFLOP/s':>8}"
    print(head)
    print("-" * len(head))
    rows = []
    for layer in a.layers.split(","):
        for inp in a.inputs.split(","):
            for mode in a.modes.split(","):
                r = layer_case(layer, inp == "packed", mode == "train", a.repeat)
                rows.append(r)
                t1, t2 = r["torch_ms"]
                ratios = f"{r['ours_ms'] / t1:.2f}-{r['ours_ms'] / t2:.2f}x"
                if r["ours_ms"] / max(t1, t2) < 0.1:
                    ratios = f"1/{min(t1, t2) / r['ours_ms']:.0f}-1/{max(t1, t2) / r['ours_ms']:.0f}"
                print(
                    f"{layer:<5} {inp:<6} {mode:<5} {t1:>10.1f} {t2:>10.1f} {r['ours_ms']:>12.1f} {ratios:>13} {r['ours_gflops']:>8.1f}",
                    flush=True,
                )
    print("ratio: recurrent.torch time / torch.nn time (against each torch.nn run; below 1 is faster)")
    if not a.no_overhead:
        o = call_overhead(max(3, a.repeat))
        ri, oi, ni = o["infer"]
        rt_, ot = o["train"]
        print()
        print("one call, batch 1, one step, LSTM 32 -> 64 (microseconds):")
        print(f"  inference:  torch.nn {ri:.1f}, recurrent.torch {oi:.1f} (native call {ni:.1f}, Python side {oi - ni:.1f})")
        print(f"  training (forward + backward):  torch.nn {rt_:.1f}, recurrent.torch {ot:.1f}")
    return rows


if __name__ == "__main__":
    sys.exit(0 if main() is not None else 1)
