#!/usr/bin/env python3
"""Print the side-by-side ratio table from JSON rows written by `recurrent bench --json`,
scripts/bench_torch.py (default and --flush-denormal) and scripts/bench_keras.py.

Usage: python scripts/bench_table.py ours.json torch.json torch_ftz.json [torch_ftz2.json] [keras.json] [--markdown]

A framework given in several files (PyTorch run twice) is represented by its better run of
each case: the lower median.
"""
import json
import sys

args = [a for a in sys.argv[1:] if not a.startswith("--")]
md = "--markdown" in sys.argv
runs = {}
for path in args:
    with open(path) as f:
        for r in json.load(f):
            key = (r["layer"], r["case"], r["mode"])
            seen = runs.setdefault(r["framework"], {})
            if key not in seen or r["median_ms"] < seen[key]["median_ms"]:
                seen[key] = r
ours = runs.get("recurrent", {})
others = [fw for fw in ["pytorch", "pytorch-ftz", "keras"] if fw in runs]
head = ["layer", "case", "mode", "ours ms"] + [f"{fw} ms" for fw in others] + [f"ours/{fw}" for fw in others] + ["ours GFLOP/s", "of GEMM", "ours MB"] + [f"{fw} MB" for fw in others if fw != "pytorch-ftz"]
rows = []
for key, r in ours.items():
    line = [key[0], key[1], key[2], f"{r['median_ms']:.2f}"]
    ratios = []
    for fw in others:
        o = runs[fw].get(key)
        line.append(f"{o['median_ms']:.2f}" if o else "-")
        ratios.append(f"{r['median_ms'] / o['median_ms']:.2f}x" if o else "-")
    share = r.get("share_of_square_gemm")
    line += ratios + [f"{r['gflops']:.1f}", f"{100 * share:.0f}%" if share else "-", f"{r['peak_mb']:.0f}"]
    for fw in others:
        if fw == "pytorch-ftz":
            continue
        o = runs[fw].get(key)
        line.append(f"{o['peak_mb']:.0f}" if o else "-")
    rows.append(line)
    if r.get("first_steps_ms"):
        first = [key[0], key[1], "first 3", f"{r['first_steps_ms']:.0f}"]
        fr = []
        for fw in others:
            o = runs[fw].get(key)
            first.append(f"{o['first_steps_ms']:.0f}" if o and o.get("first_steps_ms") else "-")
            fr.append(f"{r['first_steps_ms'] / o['first_steps_ms']:.2f}x" if o and o.get("first_steps_ms") else "-")
        rows.append(first + fr + [""] * (len(head) - len(first) - len(fr)))
if md:
    print("| " + " | ".join(head) + " |")
    print("|" + "|".join("---" if i < 3 else "---:" for i in range(len(head))) + "|")
    for r in rows:
        print("| " + " | ".join(r) + " |")
else:
    w = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)] if rows else [len(h) for h in head]
    print("  ".join(h.ljust(w[i]) for i, h in enumerate(head)))
    for r in rows:
        print("  ".join(c.ljust(w[i]) for i, c in enumerate(r)))
