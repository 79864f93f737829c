#!/usr/bin/env python3
"""Check that a state dict saved by `recurrent` loads into PyTorch with strict=True and gives
the same logits. Run `cargo test -p recurrent --test golden_other` first; it writes
target/tmp/lab_model_ours{,_io}.safetensors.

Usage: python scripts/check_interop.py [target/tmp]
"""
import os
import sys

import torch
from safetensors.torch import load_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_fixtures import LabModel  # noqa: E402

d = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "target", "tmp")
model = LabModel()
model.load_state_dict(load_file(os.path.join(d, "lab_model_ours.safetensors")), strict=True)
io = load_file(os.path.join(d, "lab_model_ours_io.safetensors"))
ids = io["ids"].long()
lengths = [int((row != 1).sum()) for row in ids]
with torch.no_grad():
    logits = model(ids, lengths)
diff = (logits - io["logits"]).abs().max().item()
print(f"strict load OK; max |logit difference| = {diff:.2e}")
sys.exit(0 if diff < 1e-5 else 1)
