#!/usr/bin/env bash
# Peak memory of one training step per case, each case in a fresh process (resident-set
# growth from before the first step), for recurrent, PyTorch and Keras; prints a table.
#
#   scripts/bench_memory.sh            # writes JSON into $BENCH_OUT (default target/bench-memory)
#
# In one process the allocators keep what earlier cases freed, so `bench_compare.sh` shows
# meaningful peak memory only for its first case; this script gives every case a clean start.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${BENCH_OUT:-target/bench-memory}
mkdir -p "$out"
cargo build --release -p recurrent-cli >/dev/null
have_tf=0
python3 -c "import tensorflow" 2>/dev/null && have_tf=1
for lc in lstm:imdb gru:imdb rnn:imdb lstm:bidir gru:bidir rnn:bidir lstm:packed lab:lab; do
  l=${lc%%:*}; c=${lc##*:}
  ./target/release/recurrent bench --threads 2 --cases "$c" --layers "$l" --modes train --repeat 2 \
    --json "$out/ours_${l}_$c.json" >/dev/null 2>&1
  python3 scripts/bench_torch.py --cases "$c" --layers "$l" --modes train --repeat 2 \
    --json "$out/torch_${l}_$c.json" >/dev/null 2>&1
  if [ "$have_tf" = 1 ]; then
    python3 scripts/bench_keras.py --cases "$c" --layers "$l" --modes train --repeat 2 \
      --json "$out/keras_${l}_$c.json" >/dev/null 2>&1
  fi
  echo "measured $l $c" >&2
done
python3 - "$out" <<'PY'
import glob, json, os, sys
out = sys.argv[1]
rows = {}
for f in sorted(glob.glob(os.path.join(out, "*.json"))):
    fw, l, c = os.path.basename(f)[:-5].split("_", 2)
    for r in json.load(open(f)):
        if r["layer"] == l and r["case"] == c and r["mode"] == "train":
            rows.setdefault((l, c), {})[fw] = r["peak_mb"]
nan = float("nan")
print("| case | ours MB | PyTorch MB | Keras MB | ours / PyTorch |")
print("|---|---:|---:|---:|---:|")
for (l, c), d in rows.items():
    o, t, k = d.get("ours", nan), d.get("torch", nan), d.get("keras", nan)
    ratio = o / t if t and t == t else nan
    print(f"| {l} {c} | {o:.0f} | {t:.0f} | {k:.0f} | {ratio:.2f}x |")
PY
