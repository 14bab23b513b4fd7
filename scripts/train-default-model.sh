#!/usr/bin/env bash
# Rebuilds the bundled default model (models/default, what `cloudformer up` serves) with our own
# `cloudformer train`, by the recipe in models/default/README.md, then lets the live checks
# judge it before it replaces the bundled one.
#
#   bash scripts/train-default-model.sh              # the bundled recipe, ~5 min + ~4 min checks
#   ACCEPT=0 bash scripts/train-default-model.sh     # no live checks (no root, or a busy machine)
#   SEED=43 bash scripts/train-default-model.sh      # another seed (default 42)
#   bash scripts/train-default-model.sh --patience 20   # extra flags go to `cloudformer train`;
#       one of the recipe's given there replaces the recipe's
#   VAL_COUNT=3 REFIT=1 bash scripts/train-default-model.sh   # early stopping on 3 applications
#   DATA=dataset/v1 REPEAT= WINDOW_S=0 bash scripts/train-default-model.sh   # whole runs of v1
#   MEMBERS="43 44" bash scripts/train-default-model.sh   # an ensemble: the same recipe with
#       each of these seeds too, in models/default/members/seed-N (docs/api.md, Ensembles)
#
# The recipe, each part overridable from the environment: DATA (dataset directories, each a
# --data), REPEAT (NAME=K, each a --repeat: the small supplements count twice), EPOCHS,
# PATIENCE, LR, BLOCKS (0 = the paper's 4), WINDOW_S (0 = whole runs), VAL_COUNT (validation
# applications the seed chooses for early stopping, default 1), REFIT (1: train again on every
# application for the epoch count they chose; default 0), SEED. CLOUDFORMER_BIN: a binary to
# train with (default: target/release/cloudformer, built or brought up to date first).
#
# Acceptance (ACCEPT=1, the default): tests/live_scenarios.rs and tests/scheduler_live.rs run on
# the new model (CLOUDFORMER_LIVE_MODEL, CI=true: they need root, cgroups and stress-ng, and a
# quiet machine). If a check fails, models/default stays as it was and the new model is kept in
# models/default.rejected for a look; the script exits 1.
set -euo pipefail
cd "$(dirname "$0")/.."
case "${ACCEPT:-1}" in 0 | 1) ;; *) echo "ACCEPT=$ACCEPT: 1 (live checks, default) or 0" >&2; exit 2 ;; esac
case "${REFIT:-0}" in 0 | 1) ;; *) echo "REFIT=$REFIT: 0 (default) or 1" >&2; exit 2 ;; esac
if [ -n "${CLOUDFORMER_BIN:-}" ]; then BIN=$CLOUDFORMER_BIN; else
  cargo build --locked --release --bin cloudformer # a no-op when it is up to date
  BIN=target/release/cloudformer
fi
export RAYON_NUM_THREADS="${RAYON_NUM_THREADS:-2}"
DATA=${DATA:-dataset/data dataset/idle dataset/unpinned dataset/affinity dataset/affinity-static}
REPEAT=${REPEAT-idle=2 unpinned=2 affinity=2 affinity-static=2}
SEED=${SEED:-42}

if [ "${ACCEPT:-1}" = 1 ]; then # what the live checks need, before minutes of training
  [ "$(id -u)" = 0 ] || { echo "the live checks need root (cgroups); ACCEPT=0 skips them" >&2; exit 2; }
  command -v stress-ng >/dev/null || {
    echo "the live checks need stress-ng (bash scripts/setup.sh installs it); ACCEPT=0 skips them" >&2
    exit 2
  }
fi

# The recipe; a flag also given on the command line is left to it (so `--patience 20` overrides
# PATIENCE, and any --data or --repeat replaces DATA or REPEAT).
given() { # flag: whether the command line has it
  local a
  for a in "${extra[@]}"; do
    if [ "$a" = "$1" ] || [[ "$a" == "$1="* ]]; then return 0; fi
  done
  return 1
}
extra=("$@")
if given --seed || given --out; then
  echo "--seed and --out are the script's own: use SEED=N (and MEMBERS) instead" >&2
  exit 2
fi
recipe=()
if ! given --data; then for d in $DATA; do recipe+=(--data "$d"); done; fi
if ! given --repeat; then for r in $REPEAT; do recipe+=(--repeat "$r"); done; fi
for kv in "--lr ${LR:-1e-3}" "--epochs ${EPOCHS:-20}" "--patience ${PATIENCE:-6}" \
  "--blocks ${BLOCKS:-2}" "--window-s ${WINDOW_S:-20}" "--val-count ${VAL_COUNT:-1}"; do
  given "${kv%% *}" || recipe+=("${kv%% *}" "${kv#* }")
done
if [ "${REFIT:-0}" = 1 ] && ! given --refit; then recipe+=(--refit); fi
if given --val-apps; then # names instead of a count (clap refuses both)
  kept=()
  for ((i = 0; i < ${#recipe[@]}; i++)); do
    if [ "${recipe[$i]}" = --val-count ]; then i=$((i + 1)); else kept+=("${recipe[$i]}"); fi
  done
  recipe=("${kept[@]}")
fi

train_one() { # out seed extra-flags...
  local out=$1 seed=$2
  shift 2
  "$BIN" train "${recipe[@]}" --out "$out" --seed "$seed" "$@"
  rm -rf "$out/last"
}

rm -rf models/default.new
train_one models/default.new "$SEED" "$@"
for s in ${MEMBERS:-}; do
  [ "$s" = "$SEED" ] && { echo "MEMBERS repeats SEED $s" >&2; exit 2; }
  train_one "models/default.new/members/seed-$s" "$s" "$@"
done
[ -f models/default.new/config.json ] || { echo "no model written in models/default.new" >&2; exit 1; }
id=$(jq -r .model_id models/default.new/config.json 2>/dev/null || echo "(no model_id)")

# The share of CPU time (all CPUs) not idle over 3 s, in %: other work is a neighbour too.
busy_pct() {
  local a b
  a=$(head -1 /proc/stat)
  sleep 3
  b=$(head -1 /proc/stat)
  echo "$a" "$b" | awk '{ for (i = 2; i <= 9; i++) { t0 += $i; t1 += $(i + 11) }
    i0 = $5 + $6; i1 = $16 + $17; printf "%.0f", 100 * (1 - (i1 - i0) / (t1 - t0)) }'
}

if [ "${ACCEPT:-1}" = 1 ]; then
  live=(--locked --no-fail-fast --test live_scenarios --test scheduler_live)
  cargo test "${live[@]}" --no-run # built first, so the build is not a neighbour of the checks
  busy=$(busy_pct)
  echo "live checks on the new model $id (~4 min; ACCEPT=0 skips them; CPU busy before: $busy %)"
  [ "$busy" -le 25 ] || echo "warning: the machine is $busy % busy: the checks may judge that load" >&2
  if ! CI=true CLOUDFORMER_LIVE_MODEL="$PWD/models/default.new" cargo test "${live[@]}" \
    -- --nocapture --test-threads 1; then
    rm -rf models/default.rejected
    mv models/default.new models/default.rejected
    echo "the new model $id failed the live checks (CPU $busy % busy before them):" \
      "models/default is unchanged, the new one is in models/default.rejected" >&2
    exit 1
  fi
fi

rm -rf models/default.old
[ -d models/default ] && mv models/default models/default.old
mv models/default.new models/default
[ -f models/default.old/README.md ] && cp models/default.old/README.md models/default/
rm -rf models/default.old
checks=passed
[ "${ACCEPT:-1}" = 1 ] || checks=skipped
echo "models/default: $id${MEMBERS:+ + members $MEMBERS} (live checks $checks)"
