#!/usr/bin/env bash
# The main job on a fresh machine: build, then run `cloudformer up` (agent + server with the
# bundled default model). Extra arguments go to `cloudformer up`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build --release --locked --bin cloudformer
exec ./target/release/cloudformer up "$@"
