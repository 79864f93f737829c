#!/usr/bin/env bash
# Run the speed cases in recurrent, PyTorch (default, then twice with flushed denormals: the
# table takes the better of the two) and Keras, one after the other, on an otherwise idle
# machine, and print the ratio table ours/theirs. PYTHON picks the interpreter (default: the
# repository's .venv when it has torch, else python3).
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
py=${PYTHON:-python3}
if [ -z "${PYTHON:-}" ] && [ -x .venv/bin/python ] && .venv/bin/python -c "import torch" 2>/dev/null; then
  py=.venv/bin/python
fi
./target/release/recurrent bench --threads 2 --gemm --json "$out/ours.json" "$@" >"$out/ours.txt"
"$py" scripts/bench_torch.py --json "$out/torch.json" "$@"
"$py" scripts/bench_torch.py --flush-denormal --json "$out/torch_ftz.json" "$@"
"$py" scripts/bench_torch.py --flush-denormal --json "$out/torch_ftz2.json" "$@"
files=("$out/ours.json" "$out/torch.json" "$out/torch_ftz.json" "$out/torch_ftz2.json")
if "$py" -c "import tensorflow" 2>/dev/null; then
  "$py" scripts/bench_keras.py --json "$out/keras.json" "$@"
  files+=("$out/keras.json")
else
  echo "tensorflow is not installed: skipping Keras" >&2
fi
"$py" scripts/bench_table.py "${files[@]}"
