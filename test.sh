#!/usr/bin/env bash
# Every test of the project: the Rust workspace, then the Python package against PyTorch.
#
# On first use it creates a virtual environment in .venv/ (or $RECURRENT_VENV) and installs
# torch, maturin, pytest and numpy from PyPI into it (a few minutes); later runs reuse it.
# The package is installed exactly as a user installs it: `pip install ./python`.
set -euo pipefail
cd "$(dirname "$0")"

cargo test --release --workspace
# The fuzz targets (fuzz/) are run by `cargo fuzz`; here they are compiled, so that a change
# that breaks one fails the tests.
cargo build --release -p recurrent-fuzz --bins
# The `cuda` feature compiles the CUDA backend's stub; the device suite then checks that every
# way of asking for a CUDA device is a clear error, and that the CPU still passes.
cargo test --release -p recurrent --features cuda --test devices

venv=${RECURRENT_VENV:-.venv}
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
py="$venv/bin/python"
if ! "$py" -c "import torch, maturin, pytest, numpy" 2>/dev/null; then
    echo "test.sh: installing torch, maturin, pytest and numpy into $venv (first run only)"
    "$py" -m pip install --quiet torch maturin pytest numpy
fi
"$py" -m pip install --quiet ./python
# From the repository root, so that `import recurrent` finds the installed package.
"$py" -m pytest -q python/tests
