#!/usr/bin/env bash
# Regenerates the model comparison on the repo dataset in one command: the evaluation
# (`cloudformer eval --protocol paper`, 6 leave-applications-out splits), its report (plots,
# report.md/html) and the README block between
# `<!-- cloudformer report NAME begin/end -->` (NAME = the output directory's name).
#
#   bash scripts/eval-paper.sh                          # the budget of bench/results/paper
#   OUT=bench/results/paper-cf-longer MODELS=mean,rf-rich,cf EPOCHS=30 PATIENCE=10 \
#     bash scripts/eval-paper.sh                        # the longer CloudFormer run
#
# Environment: OUT (bench/results/paper), MODELS, EPOCHS (10), PATIENCE (4), LR (1e-3),
# BLOCKS (2), EARLY (5,10), DATA (dataset/v1: the paper-protocol comparison's dataset), PROTOCOL (paper; or loao), CLOUDFORMER_BIN (target/debug/cloudformer,
# built if missing). CPU time: ~2 h for the default model list on 2 cores (CloudFormer dominates).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-bench/results/paper}
MODELS=${MODELS:-mean,placement,cpu-share,lr,glm,dt,rf,rf-rich,gbdt,lstm,cf,cf-temporal}
PROTOCOL=${PROTOCOL:-paper}
BIN=${CLOUDFORMER_BIN:-target/debug/cloudformer}
if [ ! -x "$BIN" ]; then
  cargo build --locked --bin cloudformer
fi
"$BIN" eval --data "${DATA:-dataset/v1}" --protocol "$PROTOCOL" --out "$OUT" --models "$MODELS" \
  --epochs "${EPOCHS:-10}" --patience "${PATIENCE:-4}" --lr "${LR:-1e-3}" --blocks "${BLOCKS:-2}" \
  --early "${EARLY:-5,10}" --lstm-epochs 20
"$BIN" report --results "$OUT" --out "$OUT/report" --readme bench/results/README.md
