#!/usr/bin/env python3
"""Write fixtures/torch-sentiment-model/: a sentiment model trained in PyTorch (on the first
2,000 training reviews of each label of the IMDB archive, 5 epochs; test accuracy 0.77) and
saved in recurrent's model-directory layout, plus PyTorch's predictions for a few texts
(expected.jsonl). The Rust tests run `recurrent predict` on it and compare, and check that it
tells the clearly positive text from the clearly negative one.

Usage: python scripts/gen_model_fixtures.py [path to aclImdb_v1.tar.gz]
       (default: ../shared/data/imdb/aclImdb_v1.tar.gz beside the repository)
"""
import json
import os
import subprocess
import sys

here = os.path.dirname(os.path.abspath(__file__))
out = os.path.join(here, "..", "fixtures", "torch-sentiment-model")
data = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "..", "..", "shared", "data", "imdb", "aclImdb_v1.tar.gz")
subprocess.run(
    [sys.executable, os.path.join(here, "torch_model.py"), "export", out,
     "--data", data, "--per-label", "2000", "--epochs", "5"],
    check=True,
)
texts = [
    "A wonderful, moving film. The acting was superb and I loved every minute.",
    "Terrible. Boring plot, awful dialogue, a complete waste of time!",
    "It was okay, I guess; some parts worked (the music) and some didn't.",
    "zzzz qqqq unknown-words-only",
]
res = subprocess.run([sys.executable, os.path.join(here, "torch_model.py"), "predict", out, *texts], check=True, capture_output=True, text=True)
with open(os.path.join(out, "expected.jsonl"), "w") as f:
    f.write(res.stdout)
print(res.stdout)
