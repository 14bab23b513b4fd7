#!/usr/bin/env bash
# Bounded load test of `cloudformer serve` on loopback with wrk.
#
# Starts the server on 127.0.0.1:0, reads the bound address from its stdout banner, builds a
# valid POST /v1/predict body (one window of 30 s in the dense `matrix` form, F columns read from
# GET /v2/models/cloudformer), checks that it gets HTTP 200, then runs wrk for DURATION seconds at
# 1, 8 and 64 connections (1 window per request) and at 8 connections with 16 windows per
# request. Prints a Markdown table and writes it, with the date, the machine and the exact
# commands, to bench/results/serve.md. The server is stopped on exit.
#
#   bench/serve/run.sh
#   CLOUDFORMER_BIN=target/release/cloudformer MODEL=models/default DURATION=20 bench/serve/run.sh
#   SERVE_ARGS='--max-batch 128 --max-wait-ms 1' bench/serve/run.sh    # extra `serve` flags
#
# Environment: CLOUDFORMER_BIN (target/debug/cloudformer), MODEL (models/default), DURATION
# (seconds per level, 20), SOAK (seconds of steady load with RSS sampling at the end, 60; 0 = none), SERVE_ARGS (extra serve flags, split on spaces), WRK_TIMEOUT (30s: a
# request slower than this counts as a wrk timeout), STARTUP_TIMEOUT (seconds, 120), OUT
# (bench/results/serve.md). Relative paths are taken from the current directory.
# Needs wrk, curl and python3. wrk and the server share this machine's CPUs: on a small machine
# the numbers are a lower bound; run nothing else meanwhile.
set -euo pipefail

ORIG_PWD=$PWD
# the settings the caller gave (for the report), before defaults are filled in
ENV_USED=""
for v in CLOUDFORMER_BIN MODEL DURATION SERVE_ARGS WRK_TIMEOUT STARTUP_TIMEOUT OUT; do
  [ -n "${!v:-}" ] && ENV_USED+="$v=$(printf '%q' "${!v}") "
done
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
INVOCATION="$0${*:+ $*}"
# shellcheck source=bench/serve/lib.sh
. "$ROOT/bench/serve/lib.sh"

BIN=$ROOT/target/debug/cloudformer
[ -n "${CLOUDFORMER_BIN:-}" ] && BIN=$(abspath "$CLOUDFORMER_BIN")
MODEL_DIR=$ROOT/models/default
[ -n "${MODEL:-}" ] && MODEL_DIR=$(abspath "$MODEL")
OUT_FILE=$ROOT/bench/results/serve.md
[ -n "${OUT:-}" ] && OUT_FILE=$(abspath "$OUT")
DURATION=${DURATION:-20}
WRK_TIMEOUT=${WRK_TIMEOUT:-30s}
STARTUP_TIMEOUT=${STARTUP_TIMEOUT:-120}
WINDOW_S=30
MANY=16
# connections:windows-per-request[:pause ms] — with a pause, each connection waits that long
# after every answer (wrk's delay()): 4 connections pausing 15 ms offer about 200 requests/s.
RUNS=("1:1" "4:1:15" "8:1" "64:1" "8:$MANY")
read -r -a EXTRA <<<"${SERVE_ARGS:-}"

die() { echo "bench/serve: $*" >&2; exit 1; }
[[ $DURATION =~ ^[1-9][0-9]*$ ]] || die "DURATION must be a positive number of seconds, not '$DURATION'"
[[ $STARTUP_TIMEOUT =~ ^[1-9][0-9]*$ ]] || die "STARTUP_TIMEOUT must be a positive number of seconds"
for tool in wrk curl python3; do
  command -v "$tool" >/dev/null || die "needs $tool (Debian: apt-get install wrk curl python3)"
done
[ -x "$BIN" ] || die "no executable $(rel "$BIN"): build first (cargo build, or cargo build --release and CLOUDFORMER_BIN=target/release/cloudformer)"
[ -f "$MODEL_DIR/config.json" ] || die "no checkpoint at $(rel "$MODEL_DIR") (expected config.json + model.safetensors); set MODEL=DIR"

# `serve`'s queue holds --queue requests (default 256, src/cli/serve.rs); with HTTP/1.1 each wrk
# connection has at most one request in flight, so more connections than that would get 503s.
QUEUE=256
for ((i = 0; i < ${#EXTRA[@]}; i++)); do
  case ${EXTRA[i]} in
    --queue) QUEUE=${EXTRA[i + 1]:-$QUEUE} ;;
    --queue=*) QUEUE=${EXTRA[i]#--queue=} ;;
  esac
done
MAX_CONN=0
for r in "${RUNS[@]}"; do c=${r%%:*}; ((c > MAX_CONN)) && MAX_CONN=$c; done
QUEUE_NOTE=""
if [[ $QUEUE =~ ^[0-9]+$ ]] && ((MAX_CONN > QUEUE)); then
  QUEUE_NOTE="--queue $QUEUE is below the $MAX_CONN connections: expect 503s (the non-2xx column)."
  echo "bench/serve: warning: $QUEUE_NOTE" >&2
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/cf-bench-serve.XXXXXX")
SERVER_PID=""
cleanup() {
  local rc=$?
  trap - EXIT
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

cd "$ROOT"

# --- start the server -------------------------------------------------------------------------
SERVE_CMD=("$(rel "$BIN")" serve --model "$(rel "$MODEL_DIR")" --listen 127.0.0.1:0 --quiet ${EXTRA[@]+"${EXTRA[@]}"})
echo "bench/serve: starting ${SERVE_CMD[*]}" >&2
"$BIN" serve --model "$MODEL_DIR" --listen 127.0.0.1:0 --quiet ${EXTRA[@]+"${EXTRA[@]}"} \
  >"$WORK/serve.out" 2>"$WORK/serve.err" &
SERVER_PID=$!

ADDR=""
deadline=$((SECONDS + STARTUP_TIMEOUT))
while [ -z "$ADDR" ]; do
  ADDR=$(sed -n 's#^cloudformer serve: listening on http://\([^ ]*\) .*#\1#p' "$WORK/serve.out" | head -n 1)
  [ -n "$ADDR" ] && break
  if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
    echo "--- server stderr ---" >&2; cat "$WORK/serve.err" >&2
    die "the server exited before listening"
  fi
  ((SECONDS < deadline)) || { cat "$WORK/serve.err" >&2; die "no 'listening on' line within ${STARTUP_TIMEOUT}s"; }
  sleep 0.2
done
BASE="http://$ADDR"
echo "bench/serve: server at $BASE (pid $SERVER_PID)" >&2

# --- model metadata → request bodies ----------------------------------------------------------
curl -sS -f -o "$WORK/meta.json" "$BASE/v2/models/cloudformer" \
  || die "GET $BASE/v2/models/cloudformer failed"

# Builds body1.json (1 window) and body16.json (16 windows): WINDOW_S rows × F columns in the
# model's feature order. Values sit inside each feature's training range when the checkpoint's
# normaliser is readable (mid-range ± a little, inverting the log1p of counter features; null
# where training saw only nulls), else 0 — so the windows are not out of distribution.
python3 - "$WORK" "$MODEL_DIR/config.json" "$WINDOW_S" "$MANY" >"$WORK/model.txt" <<'PY' \
  || die "could not build the request bodies from the model metadata"
import json, math, sys
work, cfg_path, t, many = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
meta = json.load(open(f"{work}/meta.json"))
names = meta["parameters"]["feature_names"]
f = len(names)
shape = meta["inputs"][0]["shape"]
if shape[-1] != f:
    sys.exit(f"metadata disagrees with itself: shape {shape} but {f} feature names")
lo = hi = log1p = None
try:
    ck = json.load(open(cfg_path))
    if ck.get("feature_names") == names:
        nz = ck["normalizer"]
        lo, hi, log1p = nz["min"], nz["max"], nz["log1p"]
        if not (len(lo) == len(hi) == len(log1p) == f):
            lo = None
except Exception as e:  # the server's metadata is enough; values fall back to 0
    print(f"note: cannot read the normaliser from {cfg_path}: {e}", file=sys.stderr)

def value(j, row):
    if lo is None:
        return 0.0
    a, b = lo[j], hi[j]
    # All-null in training: the normaliser stores the widest range (±f32::MAX) for it.
    if a is None or b is None or (a <= -3.4e38 and b >= 3.4e38):
        return None
    u = (a + b) / 2 + ((row % 5) - 2) * 0.02 * (b - a)
    v = math.copysign(math.expm1(min(abs(u), 80.0)), u) if log1p[j] else u
    v = max(-3e38, min(3e38, v))  # must stay a finite 32-bit float
    return float(f"{v:.6g}")

matrix = [[value(j, r) for j in range(f)] for r in range(t)]
def body(n):
    return {"windows": [{"id": f"w{i}", "matrix": matrix} for i in range(n)]}
for n in (1, many):
    with open(f"{work}/body{n}.json", "w") as fh:
        json.dump(body(n), fh, separators=(",", ":"))
print(f, meta["parameters"]["model_id"] or "-", meta["parameters"]["catalogue_hash"] or "-")
PY
read -r F MODEL_ID CAT_HASH <"$WORK/model.txt" || true
[[ ${F:-} =~ ^[1-9][0-9]*$ ]] || die "could not read the feature count from the model metadata"
echo "bench/serve: model $MODEL_ID (catalogue $CAT_HASH), F = $F features, windows of $WINDOW_S s" >&2

# --- the bodies must be answered 200 ----------------------------------------------------------
for w in 1 "$MANY"; do
  body=$WORK/body$w.json
  code=$(curl -sS -o "$WORK/resp$w.json" -w '%{http_code}' -H 'Content-Type: application/json' \
    --data-binary @"$body" "$BASE/v1/predict") || die "POST /v1/predict failed (curl)"
  if [ "$code" != 200 ]; then
    echo "--- response ---" >&2; cat "$WORK/resp$w.json" >&2; echo >&2
    die "POST /v1/predict with $w window(s) ($(wc -c <"$body") bytes) answered HTTP $code, not 200"
  fi
  python3 - "$WORK/resp$w.json" "$w" <<'PY' >&2 || die "unexpected /v1/predict answer"
import json, sys
r = json.load(open(sys.argv[1])); n = int(sys.argv[2])
p = r["predictions"]
assert len(p) == n, f"{len(p)} predictions for {n} windows"
ood = sum(bool(x["out_of_distribution"]) for x in p)
print(f"bench/serve: {n} window(s) -> HTTP 200, p={p[0]['p']:.4f} std={p[0]['std']:.4f} "
      f"t={p[0]['t']} out_of_distribution={ood}/{n}")
PY
  cat >"$WORK/post$w.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = assert(io.open("$body", "rb"))
wrk.body = f:read("*a")
f:close()
LUA
done
for r in "${RUNS[@]}"; do
  IFS=: read -r _ w d <<<"$r"
  if [ -n "${d:-}" ]; then
    { cat "$WORK/post$w.lua"; printf 'function delay()\n  return %d\n end\n' "$d"; } >"$WORK/post${w}_d$d.lua"
  fi
done
# resident memory of the server in MB
rss_mb() { rss_mb_of "$SERVER_PID"; }
BODY1_BYTES=$(wc -c <"$WORK/body1.json")
BODYN_BYTES=$(wc -c <"$WORK/body$MANY.json")

# --- helpers ----------------------------------------------------------------------------------
# value of an unlabelled series in the server's /metrics text (0 if absent)
metric() { awk -v k="$1" '$1 == k { print $2; found = 1 } END { if (!found) print 0 }' "$2"; }
scrape() { curl -sS -f -o "$1" "$BASE/metrics" || : >"$1"; }

# warm-up (not reported)
echo "bench/serve: warm-up 3 s" >&2
wrk -t2 -c8 -d3s --timeout "$WRK_TIMEOUT" -s "$WORK/post1.lua" "$BASE/v1/predict" >"$WORK/wrk.txt" 2>&1 \
  || { cat "$WORK/wrk.txt" >&2; die "wrk warm-up failed"; }

HEADER="| connections | windows/request | pause ms | requests/s | windows/s | p50 ms | p99 ms | non-2xx | socket errors | windows/forward pass | server RSS MB after |"
RULE="|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
ROWS=()
WRK_CMDS=()
RAW=""
ERRORS_SEEN=0
QUEUE_FULL_TOTAL=0
RSS_START=$(rss_mb)
LOAD_T0=$SECONDS
for r in "${RUNS[@]}"; do
  IFS=: read -r c w d <<<"$r"
  script=post$w.lua
  [ -n "${d:-}" ] && script=post${w}_d$d.lua
  t=2; ((c < t)) && t=$c   # wrk needs connections >= threads
  cmd=(wrk "-t$t" "-c$c" "-d${DURATION}s" --timeout "$WRK_TIMEOUT" --latency -s "$script" "$BASE/v1/predict")
  WRK_CMDS+=("${cmd[*]}")
  echo "bench/serve: ${cmd[*]}" >&2
  scrape "$WORK/m0.txt"
  wrk "-t$t" "-c$c" "-d${DURATION}s" --timeout "$WRK_TIMEOUT" --latency -s "$WORK/$script" \
    "$BASE/v1/predict" >"$WORK/wrk.txt" 2>&1 || { cat "$WORK/wrk.txt" >&2; die "wrk failed"; }
  scrape "$WORK/m1.txt"
  kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/serve.err" >&2; die "the server died during the run"; }
  RAW+=$'\n'"### ${c} connections, ${w} windows/request${d:+, ${d} ms pause}"$'\n\n```\n'"$(cat "$WORK/wrk.txt")"$'\n```\n'

  rps=$(awk '/^Requests\/sec:/ { print $2 }' "$WORK/wrk.txt")
  total=$(awk '/ requests in / { print $1 }' "$WORK/wrk.txt")
  secs=$(awk '/ requests in / { d = $4; sub(/,$/, "", d); print d }' "$WORK/wrk.txt")
  p50=$(awk '$1 == "50%" { print $2 }' "$WORK/wrk.txt")
  p99=$(awk '$1 == "99%" { print $2 }' "$WORK/wrk.txt")
  non2xx=$(awk -F: '/Non-2xx or 3xx responses/ { gsub(/ /, "", $2); print $2 }' "$WORK/wrk.txt")
  non2xx=${non2xx:-0}
  sockerr=$(awk '/Socket errors:/ { s = 0; for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+,?$/) s += $i; print s }' "$WORK/wrk.txt")
  sockerr=${sockerr:-0}
  [ -n "$rps" ] && [ -n "$total" ] && [ -n "$secs" ] || { cat "$WORK/wrk.txt" >&2; die "cannot parse wrk's output"; }
  secs_ms=$(to_ms "$secs")
  # windows/s counts answered-200 requests only
  wps=$(awk -v n="$total" -v bad="$non2xx" -v w="$w" -v ms="$secs_ms" 'BEGIN { printf "%.1f", (n - bad) * w / (ms / 1000) }')
  bsum=$(awk -v a="$(metric cloudformer_batch_windows_sum "$WORK/m0.txt")" -v b="$(metric cloudformer_batch_windows_sum "$WORK/m1.txt")" 'BEGIN { print b - a }')
  bcnt=$(awk -v a="$(metric cloudformer_batch_windows_count "$WORK/m0.txt")" -v b="$(metric cloudformer_batch_windows_count "$WORK/m1.txt")" 'BEGIN { print b - a }')
  per_pass=$(awk -v s="$bsum" -v n="$bcnt" 'BEGIN { if (n > 0) printf "%.1f", s / n; else print "n/a" }')
  qfull=$(awk -v a="$(metric cloudformer_queue_full_total "$WORK/m0.txt")" -v b="$(metric cloudformer_queue_full_total "$WORK/m1.txt")" 'BEGIN { print b - a }')
  QUEUE_FULL_TOTAL=$((QUEUE_FULL_TOTAL + qfull))
  ((non2xx > 0 || sockerr > 0)) && ERRORS_SEEN=1
  ROWS+=("| $c | $w | ${d:--} | $rps | $wps | $(to_ms "${p50:-n/a}") | $(to_ms "${p99:-n/a}") | $non2xx | $sockerr | $per_pass | $(rss_mb) |")
done
LOAD_SECS=$((SECONDS - LOAD_T0))
RSS_END=$(rss_mb)

# --- soak: SOAK seconds at 8 connections, server RSS sampled every 5 s -------------------------
SOAK=${SOAK:-60}
SOAK_NOTE=""
if ((SOAK > 0)); then
  echo "bench/serve: soak ${SOAK}s at 8 connections, RSS every 5 s" >&2
  wrk -t2 -c8 "-d${SOAK}s" --timeout "$WRK_TIMEOUT" -s "$WORK/post1.lua" "$BASE/v1/predict" \
    >"$WORK/soak.txt" 2>&1 &
  SOAK_PID=$!
  SAMPLES=()
  for ((i = 0; i * 5 <= SOAK; i++)); do
    SAMPLES+=("$(rss_mb)")
    sleep 5
  done
  wait "$SOAK_PID" || { cat "$WORK/soak.txt" >&2; die "wrk (soak) failed"; }
  soak_rps=$(awk '/^Requests\/sec:/ { print $2 }' "$WORK/soak.txt")
  soak_non2xx=$(awk -F: '/Non-2xx or 3xx responses/ { gsub(/ /, "", $2); print $2 }' "$WORK/soak.txt")
  SOAK_NOTE="- soak: ${SOAK} s at 8 connections, 1 window/request, ${soak_rps} requests/s, non-2xx ${soak_non2xx:-0}; server RSS every 5 s (MB): ${SAMPLES[*]}"
fi

# --- report -----------------------------------------------------------------------------------
CPU_MODEL=$(awk -F: '/^model name/ { sub(/^[ \t]+/, "", $2); print $2; exit }' /proc/cpuinfo 2>/dev/null || true)
CPU_MODEL=${CPU_MODEL:-unknown}
MEM=$(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo 2>/dev/null || true)
BIN_VERSION=$("$BIN" --version 2>/dev/null | head -n 1 || true)
WRK_VERSION=$( (wrk -v 2>&1 || true) | head -n 1 | sed 's/ *Copyright.*//')

TABLE=$(printf '%s\n' "$HEADER" "$RULE" "${ROWS[@]}")
NOTES="- requests/s: wrk's \`Requests/sec\` (all answers); windows/s: HTTP 200 answers × windows per request / duration.
- p50/p99: wrk \`--latency\` percentiles of completed requests (requests past the ${WRK_TIMEOUT} timeout count as socket errors instead).
- windows/forward pass: mean of the server's \`cloudformer_batch_windows\` histogram over the run (micro-batching).
- pause ms: each connection waits this long after every answer (wrk \`delay()\`), a paced load instead of a saturating one.
- memory: server RSS ${RSS_START} MB after the warm-up, ${RSS_END} MB after ${LOAD_SECS} s of load (VmRSS; the last column is the RSS after each row).
- non-2xx: wrk's \`Non-2xx or 3xx responses\`; 503s from a full queue this session: ${QUEUE_FULL_TOTAL} (\`cloudformer_queue_full_total\`; --queue ${QUEUE}, at most ${MAX_CONN} requests in flight)."
[ -n "$SOAK_NOTE" ] && NOTES+=$'\n'"$SOAK_NOTE"
[ -n "$QUEUE_NOTE" ] && NOTES+=$'\n'"- $QUEUE_NOTE"
((ERRORS_SEEN)) && NOTES+=$'\n'"- **Some requests failed** (non-2xx or socket errors): the throughput of those rows is not comparable."
case $(rel "$BIN") in
  target/debug/*) NOTES+=$'\n'"- Dev-profile binary: every dependency and every crate of ours but the thin CLI is built at opt-level 3 (Cargo.toml), so it runs the same code as a release build, with line tables." ;;
esac

echo
echo "$TABLE"
echo
echo "$NOTES"

WRK_LIST=""
for cmd in "${WRK_CMDS[@]}"; do WRK_LIST+="  - \`$cmd\`"$'\n'; done

mkdir -p "$(dirname "$OUT_FILE")"
cat >"$OUT_FILE" <<EOF
# \`cloudformer serve\` load test (wrk, loopback)

- date: $(date -u '+%Y-%m-%d %H:%M UTC')
- machine: $(nproc) CPUs, ${CPU_MODEL}, ${MEM:-? GiB} RAM, Linux $(uname -r); wrk and the server share these CPUs
- binary: \`$(rel "$BIN")\` (${BIN_VERSION:-version unknown}); model \`${MODEL_ID}\` (catalogue \`${CAT_HASH}\`, ${F} features) from \`$(rel "$MODEL_DIR")\`
- request: \`POST /v1/predict\`, dense \`matrix\` form, windows of ${WINDOW_S} s × ${F} features (in-range values); ${BODY1_BYTES} bytes for 1 window, ${BODYN_BYTES} bytes for ${MANY}
- command: \`${ENV_USED}${INVOCATION}\` (run from \`$ORIG_PWD\`)
- server: \`${SERVE_CMD[*]}\`
- load: ${WRK_VERSION:-wrk}, ${DURATION} s per row after a 3 s warm-up; per row:
${WRK_LIST}
$TABLE

$NOTES

<details><summary>raw wrk output</summary>
$RAW
</details>
EOF
echo >&2
echo "bench/serve: wrote $(rel "$OUT_FILE")" >&2
