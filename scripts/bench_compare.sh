#!/usr/bin/env bash
# Run the speed cases in recurrent, PyTorch (default and with flushed denormals) and Keras,
# one after the other, on an otherwise idle machine, and print the ratio table ours/theirs.
#
#   scripts/bench_compare.sh [extra args for all three, e.g. --cases imdb,lab --repeat 5]
#
# Needs: cargo, python3 with torch (scripts/requirements.txt) and tensorflow-cpu (optional).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${BENCH_OUT:-target/bench}
mkdir -p "$out"
cargo build --release -p recurrent-cli >/dev/null
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores" >&2
./target/release/recurrent bench --threads 2 --json "$out/ours.json" "$@" >/dev/null
python3 scripts/bench_torch.py --json "$out/torch.json" "$@"
python3 scripts/bench_torch.py --flush-denormal --json "$out/torch_ftz.json" "$@"
files=("$out/ours.json" "$out/torch.json" "$out/torch_ftz.json")
if python3 -c "import tensorflow" 2>/dev/null; then
  python3 scripts/bench_keras.py --json "$out/keras.json" "$@"
  files+=("$out/keras.json")
else
  echo "tensorflow is not installed: skipping Keras" >&2
fi
python3 scripts/bench_table.py "${files[@]}"
