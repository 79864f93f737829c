#!/usr/bin/env bash
# The whole test suite (Rust and Python, as ./test.sh runs it) N times in a row (default 20)
# while every core is kept busy by a spinning process, to shake out tests that depend on timing
# or on each other. Stops at the first failure and prints its log. No retries.
#
# Usage: scripts/stress_tests.sh [N]      (needs the .venv that ./test.sh makes)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-20}
py=${RECURRENT_VENV:-.venv}/bin/python
log=$(mktemp)

# Build once (and install the package), outside the timed runs.
cargo test --release --workspace --no-run -q
"$py" -m pip install --quiet ./python

load=()
cleanup() { kill "${load[@]}" 2>/dev/null || true; rm -f "$log"; }
trap cleanup EXIT
for _ in $(seq "$(nproc)"); do
    (while :; do :; done) &
    load+=($!)
done

start=$(date +%s)
for i in $(seq "$runs"); do
    t0=$(date +%s)
    if ! { cargo test --release --workspace -q && "$py" -m pytest -q python/tests; } >"$log" 2>&1; then
        echo "run $i/$runs FAILED after $(( $(date +%s) - t0 )) s:"
        grep -E "FAILED|panicked|Error|error" "$log" | head -40
        echo "--- last lines ---"
        tail -60 "$log"
        exit 1
    fi
    echo "run $i/$runs passed in $(( $(date +%s) - t0 )) s"
done
echo "all $runs runs passed under load ($(nproc) spinning processes) in $(( $(date +%s) - start )) s"
