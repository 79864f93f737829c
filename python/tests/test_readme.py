"""The README's drop-in example runs as written (on a few small random batches)."""

import os
import re

import torch

README = os.path.join(os.path.dirname(__file__), "..", "..", "README.md")


def test_readme_training_loop_example_runs():
    with open(README) as f:
        text = f.read()
    section = text[text.index("## PyTorch drop-in") :]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    assert "from recurrent.torch import LSTM" in code
    g = torch.Generator().manual_seed(0)
    batches = []
    for _ in range(3):
        lengths = torch.randint(1, 12, (4,), generator=g)
        tokens = torch.randint(0, 20000, (4, 12), generator=g)
        batches.append((tokens, lengths, torch.tensor([0.0, 1.0, 0.0, 1.0])))
    scope = {"batches": batches}
    exec(compile(code, "README.md", "exec"), scope)
    lstm = scope["lstm"]
    assert type(lstm).__module__ == "recurrent.torch"
    assert all(p.grad is not None for p in lstm.parameters())
    assert torch.isfinite(scope["loss"])
