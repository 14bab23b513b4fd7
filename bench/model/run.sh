#!/usr/bin/env bash
# Side-by-side speed benchmark: candle (model/examples/bench.rs, --release, mimalloc) vs the
# PyTorch twin (twin.py), one compute thread each, interleaved over ROUNDS rounds (the order
# alternates every round), then a ratio table of the medians.
#
#   bench/model/run.sh            # ROUNDS=3 STEPS=20 ITERS=30 by default
#   ROUNDS=5 bench/model/run.sh
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
ROUNDS="${ROUNDS:-3}"
STEPS="${STEPS:-20}"
ITERS="${ITERS:-30}"
SDPA="${SDPA:-1}"   # also run the torch twin with fused scaled_dot_product_attention
bench/model/setup.sh >/dev/null
cargo build --release -p model --example bench --quiet
bin="$root/target/release/examples/bench"
py="$root/bench/.venv/bin/python"
export RAYON_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
res="$(mktemp)"
trap 'rm -f "$res"' EXIT
echo "# load before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
for r in $(seq 1 "$ROUNDS"); do
    if [ $((r % 2)) -eq 1 ]; then
        "$bin" --steps "$STEPS" --iters "$ITERS" | tee -a "$res"
        "$py" bench/model/twin.py --steps "$STEPS" --iters "$ITERS" | tee -a "$res"
    else
        "$py" bench/model/twin.py --steps "$STEPS" --iters "$ITERS" | tee -a "$res"
        "$bin" --steps "$STEPS" --iters "$ITERS" | tee -a "$res"
    fi
    if [ "$SDPA" = 1 ]; then
        "$py" bench/model/twin.py --sdpa --steps "$STEPS" --iters "$ITERS" | tee -a "$res"
    fi
done
echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
"$py" bench/model/table.py "$res"
