"""The benchmark runs, and measures what it says (the same lengths as the Rust benchmark)."""

import json
import os

import recurrent.bench as bench

FIXTURE = os.path.join(os.path.dirname(__file__), "..", "..", "fixtures", "bench_lengths.json")


def test_lengths_are_the_rust_benchmarks():
    with open(FIXTURE) as f:
        assert bench.IMDB_LENGTHS == json.load(f)["lengths"]
    assert len(bench.IMDB_LENGTHS) == bench.SHAPE["batch"]
    assert bench.IMDB_LENGTHS == sorted(bench.IMDB_LENGTHS, reverse=True)


def test_bench_runs_end_to_end_on_a_small_shape(monkeypatch, capsys):
    monkeypatch.setattr(bench, "SHAPE", dict(batch=64, seq=256, input=8, hidden=8, layers=1))
    rows = bench.main(["--repeat", "1", "--layers", "gru", "--threads", "1"])
    out = capsys.readouterr().out
    assert "machine:" in out and "PyTorch" in out and "one call, batch 1" in out
    assert [(r["input"], r["mode"]) for r in rows] == [
        ("padded", "train"),
        ("padded", "infer"),
        ("packed", "train"),
        ("packed", "infer"),
    ]
    for r in rows:
        assert r["ours_ms"] > 0 and all(t > 0 for t in r["torch_ms"])
