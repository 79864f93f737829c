#!/usr/bin/env python3
"""Write fixtures/tokenizer_basic_english.json: texts and the tokens torchtext's own
`basic_english` tokenizer (torchtext.data.utils._basic_english_normalize) gives for them.

torchtext is no longer installable next to current PyTorch, so its pure-Python module
`torchtext/data/utils.py` is loaded straight from the published wheel (pip download
torchtext --no-deps) without importing the package (whose C extension needs an old torch).

Usage: python scripts/gen_tokenizer_fixtures.py path/to/torchtext-*.whl
"""
import importlib.util
import json
import os
import sys
import tarfile
import tempfile
import types
import zipfile

whl = sys.argv[1]
tmp = tempfile.mkdtemp()
with zipfile.ZipFile(whl) as z:
    z.extract("torchtext/data/utils.py", tmp)
# utils.py imports a few torchtext internals at module level; only the tokenizer is needed.
for name in ["torchtext", "torchtext._internal", "torchtext._internal.module_utils", "torchtext.data"]:
    sys.modules.setdefault(name, types.ModuleType(name))
sys.modules["torchtext._internal.module_utils"].is_module_available = lambda *a: False
spec = importlib.util.spec_from_file_location("tt_utils", os.path.join(tmp, "torchtext/data/utils.py"))
mod = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mod)
tok = mod.get_tokenizer("basic_english")

texts = [
    "",
    "   ",
    "Hello, World!",
    "Don't stop!<br />It's GREAT.",
    "a<br \"/>b",
    "He said \"wow\"; then: (nothing)... ok?!",
    "Tabs\tand\nnewlines\r\nand\u00a0nbsp and\u2003em-space and\u001funit-sep",
    "ÉCOLE Straße İstanbul ΣΟΦΟΣ ﬁ",
    "10/10 would watch again -- really :-)",
    "e-mail me at someone@example.com... 3.5 stars",
    "<br /><br />This movie<br/>was <BR />bad",
    "'quoted' \"double\" ''nested''",
]
here = os.path.dirname(os.path.abspath(__file__))
with tarfile.open(os.path.join(here, "..", "fixtures", "imdb-mini", "aclImdb_v1.tar.gz")) as tf:
    reviews = [tf.extractfile(m).read().decode("utf-8") for m in tf if m.isfile()][:60]
texts += reviews
cases = [{"text": t, "tokens": tok(t)} for t in texts]
out = os.path.join(here, "..", "fixtures", "tokenizer_basic_english.json")
with open(out, "w") as f:
    json.dump({"source": os.path.basename(whl), "cases": cases}, f, ensure_ascii=False, indent=0)
print(f"{len(cases)} cases -> {out}")
