#!/usr/bin/env bash
# The project's test command (README, and .ci/run calls exactly this).
# Installs what the tests need, then runs every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export RAYON_NUM_THREADS="${RAYON_NUM_THREADS:-1}"
cargo test --workspace --locked "$@"
