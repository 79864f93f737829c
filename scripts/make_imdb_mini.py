#!/usr/bin/env python3
"""Cut the small IMDB fixture corpus (committed under fixtures/imdb-mini/) from the real archive.

It keeps the first N reviews (by id) of each folder, in Stanford's layout and packing, so CI
can run the whole pipeline (train, resume, eval, predict, download) on real text in seconds.

Usage: python scripts/make_imdb_mini.py ../shared/data/imdb/aclImdb_v1.tar.gz
"""
import io
import os
import re
import sys
import tarfile

KEEP = {"train/pos": 150, "train/neg": 150, "test/pos": 75, "test/neg": 75, "train/unsup": 20}
src = sys.argv[1] if len(sys.argv) > 1 else "../shared/data/imdb/aclImdb_v1.tar.gz"
out_dir = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "imdb-mini")
os.makedirs(out_dir, exist_ok=True)
picked = {k: [] for k in KEEP}
with tarfile.open(src, "r:gz") as tf:
    for m in tf:
        mm = re.match(r"aclImdb/(train/pos|train/neg|test/pos|test/neg|train/unsup)/(\d+)_(\d+)\.txt$", m.name)
        if mm:
            picked[mm.group(1)].append((int(mm.group(2)), m.name, tf.extractfile(m).read()))
members = []
for folder, n in KEEP.items():
    for _, name, data in sorted(picked[folder])[:n]:
        members.append((name, data))
members.sort()
dirs = sorted({"aclImdb"} | {os.path.dirname(n) for n, _ in members} | {"aclImdb/train", "aclImdb/test"})
out = os.path.join(out_dir, "aclImdb_v1.tar.gz")
buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as t:
    for d in dirs:
        ti = tarfile.TarInfo(d)
        ti.type, ti.mode, ti.mtime = tarfile.DIRTYPE, 0o755, 1488844847
        t.addfile(ti)
    for name, data in members:
        ti = tarfile.TarInfo(name)
        ti.size, ti.mode, ti.mtime = len(data), 0o644, 1488844847
        t.addfile(ti, io.BytesIO(data))
import gzip
with open(out, "wb") as f:
    f.write(gzip.compress(buf.getvalue(), compresslevel=9, mtime=0))
print(f"{len(members)} reviews -> {out} ({os.path.getsize(out)} bytes)")
