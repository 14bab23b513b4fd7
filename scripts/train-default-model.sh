#!/usr/bin/env bash
# Rebuilds the bundled default model (models/default) from a repo dataset (DATA, default
# dataset/v1: the one the bundled model was trained on; dataset/data is v2, being collected) with
# our own `cloudformer train`: every application trains it except the validation application
# chosen by the seed (early stopping). Hyper-parameters: see models/default/README.md.
#   bash scripts/train-default-model.sh            # ~2 min on 2 cores
#   DATA="dataset/data dataset/idle" bash scripts/train-default-model.sh --window-s 20   # several
#   SEED=43 bash scripts/train-default-model.sh     # another seed (default 42)
#   DATA="dataset/data dataset/idle" bash scripts/train-default-model.sh --repeat idle=2
#       # extra flags go to `cloudformer train`: here every run of dataset/idle counts twice
#   MEMBERS="43 44" bash scripts/train-default-model.sh   # an ensemble: the same recipe with
#       each of these seeds too, in models/default/members/seed-N (docs/api.md, Ensembles)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${CLOUDFORMER_BIN:-target/debug/cloudformer}
[ -x "$BIN" ] || cargo build --locked --bin cloudformer
export RAYON_NUM_THREADS="${RAYON_NUM_THREADS:-1}"
rm -rf models/default.new
# DATA: one dataset directory or several, space-separated (each becomes a --data).
data_args=()
for d in ${DATA:-dataset/v1}; do data_args+=(--data "$d"); done
"$BIN" train "${data_args[@]}" --out models/default.new --seed "${SEED:-42}" \
  --lr "${LR:-1e-3}" --epochs "${EPOCHS:-80}" --patience "${PATIENCE:-15}" "$@"
rm -rf models/default.new/last
for s in ${MEMBERS:-}; do
  [ "$s" = "${SEED:-42}" ] && { echo "MEMBERS repeats SEED $s" >&2; exit 2; }
  "$BIN" train "${data_args[@]}" --out "models/default.new/members/seed-$s" --seed "$s" \
    --lr "${LR:-1e-3}" --epochs "${EPOCHS:-80}" --patience "${PATIENCE:-15}" "$@"
  rm -rf "models/default.new/members/seed-$s/last"
done
rm -rf models/default.old
[ -d models/default ] && mv models/default models/default.old
mv models/default.new models/default
[ -f models/default.old/README.md ] && cp models/default.old/README.md models/default/
rm -rf models/default.old
echo "models/default: $(jq -r .model_id models/default/config.json 2>/dev/null || echo written)${MEMBERS:+ + members $MEMBERS}"
