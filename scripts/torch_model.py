#!/usr/bin/env python3
"""The `recurrent` sentiment model in PyTorch, and model directories both ways.

A model directory (written by `recurrent train`) holds config.json, vocab.json and
model.safetensors with PyTorch's parameter names. This script:

  predict DIR TEXT...      loads DIR into the same model in PyTorch and prints JSON lines
                           {"label", "probability", "text"} like `recurrent predict --json`;
  export DIR               trains a small model in PyTorch on an IMDB archive (the mini corpus by
                           default) and saves it as a model directory that `recurrent predict`
                           can use.

Usage: python scripts/torch_model.py predict runs/imdb "A wonderful film."
       python scripts/torch_model.py export /tmp/torch_model [--data fixtures/imdb-mini/aclImdb_v1.tar.gz]
                                            [--per-label N] [--epochs N]
"""
import argparse
import json
import os
import re
import sys
import tarfile

import torch
from safetensors.torch import load_file, save_file
from torch.nn.utils.rnn import pack_padded_sequence

# torchtext's basic_english, verbatim in behaviour (torchtext/data/utils.py).
_PATTERNS = [r"\'", r"\"", r"\.", r"<br \/>", r",", r"\(", r"\)", r"\!", r"\?", r"\;", r"\:", r"\s+"]
_REPLACEMENTS = [" '  ", "", " . ", " ", " , ", " ( ", " ) ", " ! ", " ? ", " ", " ", " "]
_COMPILED = [(re.compile(p), r) for p, r in zip(_PATTERNS, _REPLACEMENTS)]


def basic_english(line):
    line = line.lower()
    for pattern, rep in _COMPILED:
        line = pattern.sub(rep, line)
    return line.split()


def tokenize(cfg, text):
    return basic_english(text) if cfg["tokenizer"] == "basic_english" else list(text)


class SentimentModel(torch.nn.Module):
    """Embedding -> RNN on packed sequences -> pooling -> Linear -> one logit."""

    def __init__(self, cfg, vocab_size):
        super().__init__()
        self.cfg = cfg
        self.embedding = torch.nn.Embedding(vocab_size, cfg["embedding_dim"], padding_idx=1)
        cls = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}[cfg["cell"]]
        proj = cfg.get("proj_size", 0)
        self.rnn = cls(
            cfg["embedding_dim"],
            cfg["hidden_size"],
            num_layers=cfg["num_layers"],
            bidirectional=cfg["bidirectional"],
            dropout=cfg["dropout"] if cfg["num_layers"] > 1 else 0.0,
            batch_first=True,
            **({"proj_size": proj} if proj else {}),
        )
        d = 2 if cfg["bidirectional"] else 1
        pools = 3 if cfg["pool"] == "concat" else 1
        features = d * (proj or cfg["hidden_size"]) * pools
        self.norm = torch.nn.LayerNorm(features) if cfg.get("norm") else None
        self.fc = torch.nn.Linear(features, 1)
        self.emb_drop = torch.nn.Dropout(cfg["embed_dropout"])
        self.fc_drop = torch.nn.Dropout(cfg["fc_dropout"])

    def forward(self, ids, lengths):
        e = self.emb_drop(self.embedding(ids))
        packed = pack_padded_sequence(e, lengths, batch_first=True, enforce_sorted=False)
        out, h = self.rnn(packed)
        if isinstance(h, tuple):
            h = h[0]
        d = 2 if self.cfg["bidirectional"] else 1
        last = torch.cat([h[-d + k] for k in range(d)], dim=1)
        padded, lens = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=True, padding_value=float("-inf"))
        top = padded.max(dim=1).values
        mean = padded.masked_fill(padded == float("-inf"), 0.0).sum(dim=1) / lens.unsqueeze(1).to(padded.dtype)
        feats = {"last": last, "max": top, "mean": mean}.get(self.cfg["pool"])
        if feats is None:  # concat: ULMFiT's last, max and mean side by side
            feats = torch.cat([last, top, mean], dim=1)
        if self.norm is not None:
            feats = self.norm(feats)
        return self.fc(self.fc_drop(feats)).squeeze(1)


def encode(cfg, stoi, text):
    toks = tokenize(cfg, text)
    n = cfg["max_len"]
    toks = toks[:n] if cfg["truncate"] == "head" else toks[max(0, len(toks) - n):]
    ids = [stoi.get(t, 0) for t in toks]
    return ids or [0]


def batch(cfg, stoi, texts):
    encoded = [encode(cfg, stoi, t) for t in texts]
    lengths = [len(e) for e in encoded]
    ids = torch.full((len(texts), max(lengths)), 1, dtype=torch.long)
    for i, e in enumerate(encoded):
        ids[i, : len(e)] = torch.tensor(e)
    return ids, lengths


def load_dir(d):
    with open(os.path.join(d, "config.json")) as f:
        meta = json.load(f)
    with open(os.path.join(d, "vocab.json")) as f:
        itos = json.load(f)["itos"]
    cfg = meta["config"]
    model = SentimentModel(cfg, len(itos))
    model.load_state_dict(load_file(os.path.join(d, "model.safetensors")), strict=True)
    model.eval()
    return cfg, {t: i for i, t in enumerate(itos)}, model


def cmd_predict(args):
    cfg, stoi, model = load_dir(args.dir)
    with torch.no_grad():
        ids, lengths = batch(cfg, stoi, args.texts)
        probs = torch.sigmoid(model(ids, lengths))
    for t, p in zip(args.texts, probs.tolist()):
        print(json.dumps({"label": "positive" if p >= 0.5 else "negative", "probability": p, "text": t}))


def read_reviews(path, split, per_label=None):
    """(text, 1.0 pos / 0.0 neg) of an aclImdb tarball's `split`, at most `per_label` of each
    label (the lowest review ids, so a slice of the full archive is the same on every run)."""
    found = {"pos": [], "neg": []}
    with tarfile.open(path) as tf:
        for m in tf:
            mm = re.match(rf"aclImdb/{split}/(pos|neg)/(\d+)_\d+\.txt$", m.name)
            if mm:
                found[mm.group(1)].append((int(mm.group(2)), tf.extractfile(m).read().decode("utf-8")))
    out = []
    for label, y in (("neg", 0.0), ("pos", 1.0)):
        rows = sorted(found[label])[:per_label] if per_label else sorted(found[label])
        out += [(text, y) for _, text in rows]
    return out


def cmd_export(args):
    """Train a small model in PyTorch and save it in recurrent's layout.

    The fixture fixtures/torch-sentiment-model was made with
        python scripts/torch_model.py export fixtures/torch-sentiment-model \\
            --data ../shared/data/imdb/aclImdb_v1.tar.gz --per-label 2000 --epochs 5
    (the first 2,000 training reviews of each label of the full IMDB archive; only the trained
    model is kept, no review text), then `predict` for expected.jsonl.
    """
    torch.manual_seed(0)
    reviews = read_reviews(args.data, "train", args.per_label)
    cfg = dict(
        tokenizer="basic_english", max_vocab=2000, min_freq=1, max_len=200, truncate="head", val_fraction=0.1,
        cell="gru", embedding_dim=16, hidden_size=16, num_layers=1, bidirectional=True, dropout=0.0,
        embed_dropout=0.0, fc_dropout=0.0, pool="mean", epochs=args.epochs, batch_size=32, optimizer="adamw", lr=2e-3,
        weight_decay=0.01, clip_grad_norm=1.0, schedule="constant", warmup_steps=0, patience=0, seed=1,
    )
    from collections import Counter

    counts = Counter(t for text, _ in reviews for t in basic_english(text))
    itos = ["<unk>", "<pad>"] + [t for t, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0].encode()))[: cfg["max_vocab"]]]
    stoi = {t: i for i, t in enumerate(itos)}
    model = SentimentModel(cfg, len(itos))
    opt = torch.optim.AdamW(model.parameters(), lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    g = torch.Generator().manual_seed(cfg["seed"])
    bs = cfg["batch_size"]
    for epoch in range(cfg["epochs"]):
        model.train()
        order = torch.randperm(len(reviews), generator=g).tolist()  # shuffled: the archive lists neg, then pos
        total = 0.0
        for i in range(0, len(order), bs):
            texts, ys = zip(*(reviews[k] for k in order[i : i + bs]))
            ids, lengths = batch(cfg, stoi, texts)
            loss = torch.nn.functional.binary_cross_entropy_with_logits(model(ids, lengths), torch.tensor(ys))
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg["clip_grad_norm"])
            opt.step()
            total += loss.item() * len(texts)
        print(f"epoch {epoch + 1}: train loss {total / len(reviews):.4f}", file=sys.stderr)
    model.eval()
    test = read_reviews(args.data, "test", args.per_label and max(args.per_label // 4, 1))
    with torch.no_grad():
        correct = 0
        for i in range(0, len(test), 256):
            texts, ys = zip(*test[i : i + 256])
            ids, lengths = batch(cfg, stoi, texts)
            correct += ((model(ids, lengths) > 0).float() == torch.tensor(ys)).sum().item()
    print(f"test accuracy {correct / len(test):.3f} on {len(test)} reviews", file=sys.stderr)
    os.makedirs(args.dir, exist_ok=True)
    with open(os.path.join(args.dir, "config.json"), "w") as f:
        json.dump({"format": "recurrent-sentiment/1", "vocab_size": len(itos), "config": cfg}, f)
    with open(os.path.join(args.dir, "vocab.json"), "w") as f:
        json.dump({"itos": itos, "unk_index": 0, "pad_index": 1}, f)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, os.path.join(args.dir, "model.safetensors"))
    print(f"saved a PyTorch-trained model to {args.dir}", file=sys.stderr)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("predict")
    p.add_argument("dir")
    p.add_argument("texts", nargs="+")
    p.set_defaults(fn=cmd_predict)
    e = sub.add_parser("export")
    e.add_argument("dir")
    here = os.path.dirname(os.path.abspath(__file__))
    e.add_argument("--data", default=os.path.join(here, "..", "fixtures", "imdb-mini", "aclImdb_v1.tar.gz"))
    e.add_argument("--per-label", type=int, default=None, help="train on at most this many reviews of each label")
    e.add_argument("--epochs", type=int, default=10)
    e.set_defaults(fn=cmd_export)
    args = ap.parse_args()
    args.fn(args)


if __name__ == "__main__":
    main()
