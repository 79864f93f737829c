#!/usr/bin/env python3
"""The speed cases of `recurrent bench`, in Keras/TensorFlow (tf.function, 2 intra-op and
2 inter-op threads), with the same JSON fields.

Differences forced by Keras: variable lengths (`packed`) use a mask (Keras has no packed
sequences); `cell-latency` runs a batch-1 RNN layer over the 1000 steps inside one
tf.function (stepping a Keras cell from Python is dominated by Python overhead, which would
flatter us unfairly).

Usage: python scripts/bench_keras.py [--json FILE] [--repeat N] [--cases ...] [--layers ...] [--modes ...]
"""
import argparse
import json
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import tensorflow as tf  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_torch import SHAPES, forward_flops, reset_peak, timed  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def row(layer, case, mode, times, flops, peak):
    med = statistics.median(times)
    return dict(layer=layer, case=case, mode=mode, median_ms=med, min_ms=min(times), max_ms=max(times),
                gflops=flops / (med * 1e-3) / 1e9, peak_mb=peak, iters=len(times), first_steps_ms=None, framework="keras")


def rnn_layer(layer, hidden, return_sequences=True):
    cls = {"lstm": tf.keras.layers.LSTM, "gru": tf.keras.layers.GRU, "rnn": tf.keras.layers.SimpleRNN}[layer]
    kw = dict(reset_after=True) if layer == "gru" else {}
    return cls(hidden, return_sequences=return_sequences, **kw)


class Stack(tf.keras.Model):
    """Stacked (optionally bidirectional) recurrent layers; the mask reaches every layer."""

    def __init__(self, layer, s):
        super().__init__()
        self.rnns = []
        for _ in range(s["layers"]):
            l = rnn_layer(layer, s["hidden"])
            self.rnns.append(tf.keras.layers.Bidirectional(l) if s["bidir"] else l)

    def call(self, x, seq_mask=None, training=False):
        for l in self.rnns:
            x = l(x, mask=seq_mask, training=training)
        return x


def build(layer, s):
    return Stack(layer, s)


def layer_case(layer, case, s, mode, lengths, repeat):
    tf.random.set_seed(1)
    model = build(layer, s)
    x = tf.random.uniform((s["batch"], s["seq"], s["input"]), -1, 1)
    mask = None
    if lengths is not None:
        mask = tf.sequence_mask(lengths, s["seq"])
    train = mode == "train"

    @tf.function
    def train_step():
        # The input gets a gradient too, as in `recurrent bench`.
        with tf.GradientTape() as tape:
            tape.watch(x)
            out = model(x, seq_mask=mask, training=True)
            loss = tf.reduce_sum(out if mask is None else tf.boolean_mask(out, mask))
        return tape.gradient(loss, model.trainable_variables + [x])

    @tf.function
    def infer_step():
        return model(x, seq_mask=mask, training=False)

    fn = train_step if train else infer_step
    times, peak = timed(repeat, lambda: tf.nest.map_structure(lambda t: t.numpy(), fn()))
    tokens = sum(lengths) if lengths is not None else s["batch"] * s["seq"]
    return row(layer, case, mode, times, forward_flops(layer, s, tokens) * (3 if train else 1), peak)


def cell_latency(layer, repeat):
    t, i, h = 1000, 32, 64
    inp = tf.keras.Input((t, i))
    model = tf.keras.Model(inp, rnn_layer(layer, h)(inp))
    x = tf.random.uniform((1, t, i), -1, 1)
    fn = tf.function(lambda: model(x, training=False))
    times, peak = timed(repeat, lambda: fn().numpy())
    s = dict(batch=1, seq=t, input=i, hidden=h, layers=1, bidir=False)
    return row(layer, "cell-latency", "infer", times, forward_flops(layer, s, t), peak)


def lab(mode, repeat):
    tf.random.set_seed(3)
    ids_in = tf.keras.Input((256,), dtype="int32")
    e = tf.keras.layers.Embedding(20000, 128)(ids_in)
    x = tf.keras.layers.LSTM(256, return_sequences=True)(e)
    x = tf.keras.layers.LSTM(256)(x)
    out = tf.keras.layers.Dense(1)(x)
    model = tf.keras.Model(ids_in, out)
    opt = tf.keras.optimizers.Adam()
    ids = tf.random.uniform((64, 256), 2, 20000, dtype=tf.int32)
    y = tf.cast(tf.range(64) % 2, tf.float32)[:, None]
    loss_fn = tf.keras.losses.BinaryCrossentropy(from_logits=True)
    train = mode == "train"

    @tf.function
    def train_step():
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(ids, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        opt.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    infer = tf.function(lambda: model(ids, training=False))
    step = (lambda: train_step().numpy()) if train else (lambda: infer().numpy())
    # The memory baseline comes before the first steps, which allocate what the rest reuse.
    base = reset_peak()
    first = []
    if train:
        step()  # tracing
        for _ in range(3):
            t0 = time.perf_counter()
            step()
            first.append((time.perf_counter() - t0) * 1e3)
    times, peak = timed(repeat, step, base)
    s = dict(batch=64, seq=256, input=128, hidden=256, layers=2, bidir=False)
    r = row("lab", "lab", mode, times, forward_flops("lstm", s, 64 * 256) * (3 if train else 1), peak)
    r["first_steps_ms"] = sum(first) / len(first) if first else None
    return r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--json")
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--cases", default="")
    ap.add_argument("--layers", default="")
    ap.add_argument("--modes", default="")
    a = ap.parse_args()
    tf.config.threading.set_intra_op_parallelism_threads(2)
    tf.config.threading.set_inter_op_parallelism_threads(2)
    want = lambda lst, x: not lst or x in lst.split(",")
    with open(os.path.join(HERE, "..", "fixtures", "bench_lengths.json")) as f:
        lengths = json.load(f)["lengths"]
    print(f"TensorFlow {tf.__version__}, 2 intra-op / 2 inter-op threads", file=sys.stderr)
    rows = []

    def push(r):
        rows.append(r)
        print(f"{r['layer']:<5} {r['case']:<13} {r['mode']:<6} {r['median_ms']:>10.2f} {r['min_ms']:>10.2f} {r['max_ms']:>10.2f} "
              f"{r['gflops']:>9.1f} {r['peak_mb']:>9.1f}", file=sys.stderr, flush=True)

    for layer in ["lstm", "gru", "rnn"]:
        if not want(a.layers, layer):
            continue
        for case, lens in [("imdb", None), ("small", None), ("bidir", None), ("packed", lengths), ("padded", None)]:
            shape = SHAPES["imdb" if case in ("packed", "padded") else case]
            if not want(a.cases, case) and not (case == "padded" and want(a.cases, "packed")):
                continue
            for mode in ["train", "infer"]:
                if want(a.modes, mode):
                    push(layer_case(layer, case, shape, mode, lens, a.repeat))
        if want(a.cases, "cell-latency") and want(a.modes, "infer"):
            push(cell_latency(layer, a.repeat))
    if want(a.cases, "lab") and (not a.layers or want(a.layers, "lab")):
        for mode in ["train", "infer"]:
            if want(a.modes, mode):
                push(lab(mode, a.repeat))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
