#!/usr/bin/env bash
# Latency of the scheduler endpoints (issue 31) side by side with POST /v1/predict, in one run,
# on a host of TENANTS real cgroup tenants (each `stress-ng --cpu 1 --cpu-load LOAD`), the server
# in live mode with the bundled model.
#
# One wrk connection per endpoint, one endpoint after the other: the latency one scheduler sees
# on an otherwise quiet host. Rows:
#   - POST /v1/predict: tenant t0's live window (named `metrics` form), 1 window per request;
#   - GET /v1/tenants/PREFIX/t0/culprits: 2 + (TENANTS − 1) + (resources with values) windows;
#   - POST /v1/placement: t0's profile placed on CPU 0, 1 + 2 × TENANTS windows.
# Prints a Markdown table and writes it, with the date, the machine and the commands, to OUT.
#
#   bench/serve/scheduler.sh
#   CLOUDFORMER_BIN=target/release/cloudformer TENANTS=8 DURATION=20 bench/serve/scheduler.sh
#   SERVE_ARGS='--mc-samples 0' bench/serve/scheduler.sh       # extra `serve` flags
#
# Environment: CLOUDFORMER_BIN (target/debug/cloudformer), MODEL (models/default), TENANTS (8),
# LOAD (percent of one CPU per tenant, 5), WINDOW_S (live window, 20 = serve's default),
# DURATION (seconds per row, 20), SERVE_ARGS, OUT (bench/results/scheduler.md).
# Needs root (cgroups), stress-ng, wrk, curl and python3. Run nothing else meanwhile.
set -euo pipefail

ORIG_PWD=$PWD
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=bench/serve/lib.sh
. "$ROOT/bench/serve/lib.sh"
die() { echo "bench/scheduler: $*" >&2; exit 1; }

BIN=$ROOT/target/debug/cloudformer
[ -n "${CLOUDFORMER_BIN:-}" ] && BIN=$(abspath "$CLOUDFORMER_BIN")
MODEL_DIR=$ROOT/models/default
[ -n "${MODEL:-}" ] && MODEL_DIR=$(abspath "$MODEL")
OUT_FILE=$ROOT/bench/results/scheduler.md
[ -n "${OUT:-}" ] && OUT_FILE=$(abspath "$OUT")
TENANTS=${TENANTS:-8}
LOAD=${LOAD:-5}
WINDOW_S=${WINDOW_S:-20}
DURATION=${DURATION:-20}
read -r -a EXTRA <<<"${SERVE_ARGS:-}"
for v in TENANTS LOAD WINDOW_S DURATION; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive whole number, not '${!v}'"
done
((TENANTS >= 2)) || die "TENANTS must be at least 2 (a victim and a neighbour)"
[ "$(id -u)" = 0 ] || die "needs root: the tenants are cgroups"
for tool in stress-ng wrk curl python3; do
  command -v "$tool" >/dev/null || die "needs $tool (Debian: apt-get install stress-ng wrk curl python3)"
done
[ -x "$BIN" ] || die "no executable $(rel "$BIN"): build first (cargo build --release; CLOUDFORMER_BIN=target/release/cloudformer)"
[ -f "$MODEL_DIR/config.json" ] || die "no checkpoint at $(rel "$MODEL_DIR"); set MODEL=DIR"

# Every hierarchy a tenant joins: cgroup v2 (root or `unified`) and the v1 controllers.
HIER=()
if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
  HIER=(/sys/fs/cgroup)
else
  [ -f /sys/fs/cgroup/unified/cgroup.controllers ] && HIER+=(/sys/fs/cgroup/unified)
  for c in cpu cpuacct memory blkio pids; do
    [ -f "/sys/fs/cgroup/$c/cgroup.procs" ] && HIER+=("/sys/fs/cgroup/$c")
  done
fi
((${#HIER[@]} > 0)) || die "no writable cgroup hierarchy under /sys/fs/cgroup"

PREFIX=cf-bench-sched-$$
WORK=$(mktemp -d "${TMPDIR:-/tmp}/cf-bench-sched.XXXXXX")
SERVER_PID=""
cleanup() {
  local rc=$?
  trap - EXIT
  if [ -n "$SERVER_PID" ]; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  for h in "${HIER[@]}"; do
    for d in "$h/$PREFIX"/t*; do
      [ -f "$d/cgroup.procs" ] && xargs -r kill -KILL <"$d/cgroup.procs" 2>/dev/null || true
    done
  done
  sleep 0.3
  for h in "${HIER[@]}"; do
    rmdir "$h/$PREFIX"/t* "$h/$PREFIX" 2>/dev/null || true
  done
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
cd "$ROOT"

# --- tenants ----------------------------------------------------------------------------------
for ((i = 0; i < TENANTS; i++)); do
  procs=()
  for h in "${HIER[@]}"; do
    mkdir -p "$h/$PREFIX/t$i"
    procs+=("$h/$PREFIX/t$i/cgroup.procs")
  done
  (sh -c "for f in ${procs[*]}; do echo \$\$ > \$f; done; exec stress-ng --cpu 1 --cpu-load $LOAD --timeout 1h" \
    >/dev/null 2>&1 &)  # a subshell: not a job of this shell, no "Killed" line at cleanup
done
echo "bench/scheduler: $TENANTS tenants under $PREFIX at $LOAD % of one CPU each" >&2

# --- server -----------------------------------------------------------------------------------
SERVE_CMD=(serve --model "$(rel "$MODEL_DIR")" --listen 127.0.0.1:0 --reload-poll-s 0 --live
  --tenants "$PREFIX/*" --window-s "$WINDOW_S" ${EXTRA[@]+"${EXTRA[@]}"})
"$BIN" --quiet "${SERVE_CMD[@]}" >"$WORK/serve.out" 2>"$WORK/serve.err" &
SERVER_PID=$!
ADDR=""
for _ in $(seq 1 600); do
  ADDR=$(sed -n 's#^cloudformer serve: listening on http://\([^ ]*\) .*#\1#p' "$WORK/serve.out" | head -n 1)
  [ -n "$ADDR" ] && break
  kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/serve.err" >&2; SERVER_PID=""; die "the server exited before listening"; }
  sleep 0.2
done
[ -n "$ADDR" ] || die "no 'listening on' line within 120 s"
BASE="http://$ADDR"
echo "bench/scheduler: server at $BASE; waiting for $WINDOW_S s windows of every tenant" >&2
full=0
for _ in $(seq 1 $((WINDOW_S + 60))); do
  curl -sS -f -o "$WORK/tenants.json" "$BASE/v1/tenants" || die "GET /v1/tenants failed"
  full=$(python3 -c 'import json,sys; t=json.load(open(sys.argv[1]))["tenants"]; print(sum(x["seconds"] >= int(sys.argv[2]) and x["latest"] is not None for x in t))' \
    "$WORK/tenants.json" "$WINDOW_S")
  ((full >= TENANTS)) && break
  sleep 1
done
((full >= TENANTS)) || die "only $full of $TENANTS tenants have $WINDOW_S s windows after $((WINDOW_S + 60)) s"

# --- bodies, each answered 200 once ------------------------------------------------------------
V="$PREFIX/t0"
curl -sS -f -o "$WORK/t0.json" "$BASE/v1/tenants/$V" || die "GET /v1/tenants/$V failed"
curl -sS -f -o "$WORK/profile.json" "$BASE/v1/tenants/$V/profile" || die "GET …/profile failed"
python3 - "$WORK" <<'PY' || die "could not build the request bodies"
import json, sys
w = sys.argv[1]
t0 = json.load(open(f"{w}/t0.json"))
json.dump({"partial": True, "windows": [{"id": "t0", "metrics": t0["window"]["metrics"]}]},
          open(f"{w}/predict.json", "w"), separators=(",", ":"))
json.dump({"profile": json.load(open(f"{w}/profile.json")), "cpus": [0]},
          open(f"{w}/placement.json", "w"), separators=(",", ":"))
PY
check() { # METHOD PATH [BODY] → the answer in $WORK/answer-NAME.json
  local name=$1 method=$2 path=$3 body=${4:-} code
  if [ -n "$body" ]; then
    code=$(curl -sS -o "$WORK/answer-$name.json" -w '%{http_code}' -X "$method" \
      -H 'Content-Type: application/json' --data-binary @"$body" "$BASE$path")
  else
    code=$(curl -sS -o "$WORK/answer-$name.json" -w '%{http_code}' "$BASE$path")
  fi
  [ "$code" = 200 ] || { cat "$WORK/answer-$name.json" >&2; die "$method $path answered $code"; }
}
check predict POST /v1/predict "$WORK/predict.json"
check culprits GET "/v1/tenants/$V/culprits"
check placement POST /v1/placement "$WORK/placement.json"
read -r W_CULPRITS W_PLACEMENT < <(python3 -c '
import json, sys
c = json.load(open(sys.argv[1])); p = json.load(open(sys.argv[2]))
print(2 + len(c["neighbours"]) + len(c["resources"]), 1 + 2 * len(p["tenants"]))' \
  "$WORK/answer-culprits.json" "$WORK/answer-placement.json")

for b in predict placement; do
  cat >"$WORK/$b.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = assert(io.open("$WORK/$b.json", "rb"))
wrk.body = f:read("*a")
f:close()
LUA
done

# --- load -------------------------------------------------------------------------------------
ROWS=()
CMDS=()
RAW=""
VERDICT=""
run() { # NAME WINDOWS PATH [LUA]
  local name=$1 windows=$2 path=$3 lua=${4:-}
  local cmd=(wrk -t1 -c1 "-d${DURATION}s" --timeout 30s --latency)
  [ -n "$lua" ] && cmd+=(-s "$WORK/$lua")
  cmd+=("$BASE$path")
  echo "bench/scheduler: ${cmd[*]}" >&2
  "${cmd[@]}" >"$WORK/wrk.txt" 2>&1 || { cat "$WORK/wrk.txt" >&2; die "wrk failed"; }
  CMDS+=("wrk -t1 -c1 -d${DURATION}s --timeout 30s --latency ${lua:+-s $lua }\$BASE$path")
  RAW+=$'\n'"### $name"$'\n\n```\n'"$(cat "$WORK/wrk.txt")"$'\n```\n'
  local rps p50 p99 non2xx
  rps=$(awk '/^Requests\/sec:/ { print $2 }' "$WORK/wrk.txt")
  p50=$(to_ms "$(awk '$1 == "50%" { print $2 }' "$WORK/wrk.txt")")
  p99=$(to_ms "$(awk '$1 == "99%" { print $2 }' "$WORK/wrk.txt")")
  non2xx=$(awk -F: '/Non-2xx or 3xx responses/ { gsub(/ /, "", $2); print $2 }' "$WORK/wrk.txt")
  local goal="-"
  if [ "$name" != "POST /v1/predict" ]; then
    if awk -v p="$p99" 'BEGIN { exit !(p <= 20) }'; then goal="met"; else goal="**missed**"; VERDICT=missed; fi
  fi
  ROWS+=("| \`$name\` | $windows | $rps | $p50 | $p99 | ${non2xx:-0} | $goal |")
}
run "POST /v1/predict" 1 /v1/predict predict.lua
run "GET /v1/tenants/{id}/culprits" "$W_CULPRITS" "/v1/tenants/$V/culprits"
run "POST /v1/placement" "$W_PLACEMENT" /v1/placement placement.lua

# --- report -----------------------------------------------------------------------------------
CPU_MODEL=$(awk -F: '/^model name/ { sub(/^[ \t]+/, "", $2); print $2; exit }' /proc/cpuinfo 2>/dev/null || echo unknown)
MODEL_ID=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["model_id"])' "$WORK/answer-predict.json")
TABLE=$(printf '%s\n' "| request | windows per request | requests/s | p50 ms | p99 ms | non-2xx | goal p99 ≤ 20 ms |" \
  "|---|---:|---:|---:|---:|---:|---|" "${ROWS[@]}")
SUMMARY="The scheduler endpoints meet the goal (p99 ≤ 20 ms on this machine)."
[ -n "$VERDICT" ] && SUMMARY="**Goal missed**: an endpoint's p99 is above 20 ms on this machine (see the table)."
echo
echo "$TABLE"
echo
echo "$SUMMARY"
CMD_LIST=""
for c in "${CMDS[@]}"; do CMD_LIST+="  - \`$c\`"$'\n'; done
mkdir -p "$(dirname "$OUT_FILE")"
cat >"$OUT_FILE" <<EOF
# Scheduler endpoints: latency beside \`/v1/predict\` (issue 31)

- date: $(date -u '+%Y-%m-%d %H:%M UTC')
- machine: $(nproc) CPUs, $CPU_MODEL; wrk, the server and the tenants share these CPUs
- host: $TENANTS cgroup tenants under \`$PREFIX\`, each \`stress-ng --cpu 1 --cpu-load $LOAD\`; live window $WINDOW_S s
- binary: \`$(rel "$BIN")\`; model \`$MODEL_ID\` from \`$(rel "$MODEL_DIR")\`
- server: \`cloudformer --quiet ${SERVE_CMD[*]}\`
- rerun: \`$(rel "$0")\` (as root; environment: TENANTS=$TENANTS LOAD=$LOAD WINDOW_S=$WINDOW_S DURATION=$DURATION${SERVE_ARGS:+ SERVE_ARGS='$SERVE_ARGS'})
- load: one connection per row, $DURATION s each, one row after the other:
$CMD_LIST
$TABLE

$SUMMARY

- windows per request: what one request sends through the inference worker (culprits: with all,
  alone, one per neighbour, one per resource with neighbour values; placement: the candidate,
  then each tenant before and after).
- p50/p99: wrk \`--latency\` percentiles.

<details><summary>raw wrk output</summary>
$RAW
</details>
EOF
echo "bench/scheduler: wrote $(rel "$OUT_FILE")" >&2
