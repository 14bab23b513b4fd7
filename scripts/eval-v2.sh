#!/usr/bin/env bash
# The dataset-v2 comparison of issue 30: leave-one-application-out on dataset/data, for
# whole-run P and for per-window P (W-second windows labelled with the mean per-second P over
# them), one evaluation per seed, then the mean ± std over seeds (scripts/seeds-summary.py).
# Resumable: every evaluation keeps its finished folds in OUT/folds, so the same command run
# again computes only what is missing; with BUDGET it stops at a fold boundary once the budget
# is spent (at least one fold per evaluation it starts).
#
#   BUDGET=25m bash scripts/eval-v2.sh                          # ~25 min now; rerun to go on
#   MODELS=mean,placement,cpu-share,rf,rf-rich,gbdt bash scripts/eval-v2.sh   # no CloudFormer
#
# Results: PREFIX[-sSEED] (whole runs) and PREFIX-w30[-sSEED] (per window); seed 42 has no
# suffix. Environment: UNITS (run window: which of the two, in this order), MODELS
# (mean,placement,cpu-share,rf,rf-rich,gbdt,cf,cf-temporal), SEEDS (42 43 44), WINDOW (30),
# BUDGET (none: to the end; s, m or h), EPOCHS (10), PATIENCE (4), LR (1e-3), BLOCKS (2),
# EXTRA (more `cloudformer eval` flags, e.g. "--pre-norm --refit" or "--inner-folds 4
# --select-lr 1e-3,3e-4" or "--members 3"), PREFIX (bench/results/v2-loao: give another one with another
# EXTRA, since the folds record their options), DATA (dataset/data), CLOUDFORMER_BIN
# (target/release/cloudformer, built if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
MODELS=${MODELS:-mean,placement,cpu-share,rf,rf-rich,gbdt,cf,cf-temporal}
SEEDS=${SEEDS:-42 43 44}
WINDOW=${WINDOW:-30}
UNITS=${UNITS:-run window}
for u in $UNITS; do
  case "$u" in run | window) ;; *) echo "UNITS=$UNITS: each one run or window" >&2; exit 2 ;; esac
done
DATA=${DATA:-dataset/data}
BIN=${CLOUDFORMER_BIN:-target/release/cloudformer}
export RAYON_NUM_THREADS="${RAYON_NUM_THREADS:-2}"
if [ ! -x "$BIN" ]; then
  cargo build --locked --release --bin cloudformer
fi

# The budget in seconds (0 = none).
budget_s() {
  local b=${BUDGET:-}
  case "$b" in
    "") echo 0 ;;
    *h) echo $(( ${b%h} * 3600 )) ;;
    *m) echo $(( ${b%m} * 60 )) ;;
    *s) echo "${b%s}" ;;
    *[!0-9]*) echo "BUDGET=$b: use whole seconds, minutes or hours (e.g. 900s, 25m, 2h)" >&2; exit 2 ;;
    *) echo "$b" ;;
  esac
}
BUDGET_S=$(budget_s)
DEADLINE=$(( $(date +%s) + BUDGET_S ))

out_dir() { # unit seed
  local base=${PREFIX:-bench/results/v2-loao}
  [ "$1" = window ] && base="$base-w$WINDOW"
  [ "$2" = 42 ] && echo "$base" || echo "$base-s$2"
}

for seed in $SEEDS; do
  for unit in $UNITS; do
    out=$(out_dir "$unit" "$seed")
    extra=(--early 10,30)
    [ "$unit" = window ] && extra=(--per-window "$WINDOW" --early 10)
    if [ "$BUDGET_S" -gt 0 ]; then
      left=$(( DEADLINE - $(date +%s) ))
      if [ "$left" -le 0 ]; then
        echo "eval-v2: BUDGET=$BUDGET spent before $out; run the same command again to go on" >&2
        break 2
      fi
      extra+=(--stop-after "${left}s")
    fi
    echo "eval-v2: $out (seed $seed, unit $unit)" >&2
    started=$(date +%s)
    "$BIN" -q eval --data "$DATA" --protocol loao --out "$out" --models "$MODELS" \
      --epochs "${EPOCHS:-10}" --patience "${PATIENCE:-4}" --lr "${LR:-1e-3}" \
      --blocks "${BLOCKS:-2}" --lstm-epochs 20 --seed "$seed" "${extra[@]}" ${EXTRA:-}
    # An evaluation that stopped on the budget writes no results.json: stop here too (the
    # summary below covers the evaluations that are complete).
    if [ ! -f "$out/results.json" ] || [ "$(stat -c %Y "$out/results.json")" -lt "$started" ]; then
      echo "eval-v2: BUDGET=$BUDGET spent in $out; run the same command again to go on" >&2
      break 2
    fi
  done
done

for unit in $UNITS; do
  dirs=()
  for seed in $SEEDS; do
    d=$(out_dir "$unit" "$seed")
    [ -f "$d/results.json" ] && dirs+=("$d")
  done
  if [ "${#dirs[@]}" -gt 0 ]; then
    echo
    echo "## LOAO on $DATA, unit: $([ "$unit" = window ] && echo "${WINDOW}-s windows" || echo "whole runs")"
    python3 scripts/seeds-summary.py "${dirs[@]}"
  fi
done
