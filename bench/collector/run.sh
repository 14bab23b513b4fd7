#!/usr/bin/env bash
# Side-by-side collector overhead: cloudformer collect vs Prometheus node_exporter (scraped 1/s
# by curl) vs collectd (1 s interval, cgroups plugin), all running at the same time on the same
# 8 tenant cgroups with a light stress-ng load each. Reports CPU seconds per second of collection
# and peak RSS of each agent process (not counting curl).
#
#   sudo bench/collector/run.sh [SECONDS]     # default 660; needs root, stress-ng,
#                                             # prometheus-node-exporter, collectd-core, curl
#
# The default covers our agent's steady state: it writes a Parquet row group every 150 s (a
# quarter of its 10-minute segment; 1200 rows with 8 tenants) and closes the segment (footer,
# fsync, rename) once in 660 s. Runs under 150 s measure only the ticks, and under 10 min no
# segment close: both understate its CPU and peak RSS. AGENT_ARGS="--segment 1m" passes options
# to our agent (e.g. to include segment closes in a shorter run, at 10× their default rate).
#
# BASELINE_BIN=path/to/older/cloudformer adds that build of our agent to the same run, on the same
# tenants, so a change to the agent is measured against its predecessor side by side.
# ONLY_OURS=1 leaves node_exporter and collectd out: our agent's CPU without other agents
# ticking beside it on the same CPUs. KEEP_OUT=DIR keeps our agent's Parquet output there (its
# per-row collect_us and lateness_us, e.g. to see which ticks woke late). RSS_LOG=FILE writes our
# agent's RssAnon and RssFile (kB) every 5 s to FILE.
set -euo pipefail
SECS=${1:-660}
N=8
ROOT=/sys/fs/cgroup
PREFIX=cf-bench-$$
BIN=${CLOUDFORMER_BIN:-$(dirname "$0")/../../target/release/cloudformer}
[ -x "$BIN" ] || { echo "build first: cargo build --release (or set CLOUDFORMER_BIN)"; exit 1; }
command -v stress-ng >/dev/null || { echo "needs stress-ng"; exit 1; }
NE=$(command -v prometheus-node-exporter || true)
CD=$(command -v collectd || echo /usr/sbin/collectd)
if [ -n "${ONLY_OURS:-}" ]; then NE=""; CD=""; fi
WORK=$(mktemp -d)

hiers() {
  if [ -e $ROOT/cgroup.controllers ]; then echo $ROOT; return; fi
  [ -e $ROOT/unified/cgroup.controllers ] && echo $ROOT/unified
  for c in cpu cpuacct memory blkio pids; do [ -e $ROOT/$c/cgroup.procs ] && echo $ROOT/$c; done
}
PIDS=()
CG=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  sleep 1
  for h in $(hiers); do
    for i in $(seq 1 $N); do
      for p in $(cat $h/$PREFIX/t$i/cgroup.procs 2>/dev/null); do kill -9 $p 2>/dev/null || true; done
    done
  done
  sleep 0.5
  for h in $(hiers); do for i in $(seq 1 $N); do rmdir $h/$PREFIX/t$i 2>/dev/null || true; done; rmdir $h/$PREFIX 2>/dev/null || true; done
  for d in "${CG[@]}"; do rmdir "$d" 2>/dev/null || true; done
  [ -n "${ACCT:-}" ] && rmdir "$ACCT/$AGENTS" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

for i in $(seq 1 $N); do
  files=""
  for h in $(hiers); do mkdir -p $h/$PREFIX/t$i; files="$files $h/$PREFIX/t$i/cgroup.procs"; done
  sh -c "for f in $files; do echo \$\$ > \$f; done; exec stress-ng --cpu 1 --cpu-load 5 --timeout $((SECS+30))s" >/dev/null 2>&1 &
  PIDS+=($!)
done
sleep 1

# Each agent runs in a cgroup of its own, outside the tenants' glob, whose CPU counter (ns, every
# thread, exited ones too) is its CPU time: the 100-Hz utime/stime ticks of /proc/PID/stat are
# sampled, ±7 % over a minute for an agent that runs ~3 ms a second.
AGENTS=cf-bench-agents-$$
if [ -e $ROOT/cgroup.controllers ]; then ACCT=$ROOT
elif [ -e $ROOT/cpuacct/cpuacct.usage ]; then ACCT=$ROOT/cpuacct
else echo "needs cgroup v2 or the v1 cpuacct controller to account the agents' CPU"; exit 1; fi
# start_agent NAME COMMAND...: runs COMMAND in the background in the cgroup NAME; its PID in LAST.
start_agent() {
  local n=$1; shift
  mkdir -p "$ACCT/$AGENTS/$n"
  sh -c 'echo $$ > "$0"; exec "$@"' "$ACCT/$AGENTS/$n/cgroup.procs" "$@" &
  LAST=$!; PIDS+=($LAST); CG+=("$ACCT/$AGENTS/$n")
}
cpu_ns() {
  local d=$ACCT/$AGENTS/$1
  if [ -e "$d/cpuacct.usage" ]; then cat "$d/cpuacct.usage"
  else awk '/^usage_usec/{print $2*1000}' "$d/cpu.stat"; fi
}
hwm_kb() { awk '/VmHWM/{print $2}' /proc/$1/status; }

# ours
# (not --quiet: on SIGTERM it prints its summary with the tick lateness p99 to stderr)
start_agent OURS "$BIN" collect --out "$WORK/cf" --tenants "$PREFIX/*" ${AGENT_ARGS:-} \
  >/dev/null 2>"$WORK/cf.err"
OURS=$LAST
if [ -n "${BASELINE_BIN:-}" ]; then
  start_agent BASE "$BASELINE_BIN" collect --out "$WORK/base" --tenants "$PREFIX/*" \
    ${AGENT_ARGS:-} >/dev/null 2>"$WORK/base.err"
  BASE=$LAST
fi
# node_exporter, scraped once a second
if [ -n "$NE" ]; then
  start_agent NEP "$NE" --web.listen-address=127.0.0.1:19100 >/dev/null 2>&1
  NEP=$LAST
  ( while sleep 1; do curl -s -o /dev/null http://127.0.0.1:19100/metrics || true; done ) &
  PIDS+=($!)
fi
# collectd, 1 s, cgroups plugin (+ cpu, memory), CSV output
if [ -x "$CD" ]; then
  cat > "$WORK/collectd.conf" <<CONF
Interval 1
BaseDir "$WORK/collectd"
PIDFile "$WORK/collectd.pid"
PluginDir "/usr/lib/collectd"
TypesDB "/usr/share/collectd/types.db"
LoadPlugin cgroups
LoadPlugin cpu
LoadPlugin memory
LoadPlugin csv
<Plugin csv>
  DataDir "$WORK/collectd/csv"
</Plugin>
CONF
  mkdir -p "$WORK/collectd"
  start_agent CDP "$CD" -f -C "$WORK/collectd.conf" >/dev/null 2>&1
  CDP=$LAST
fi
if [ -n "${RSS_LOG:-}" ]; then
  ( t=0; while kill -0 "$OURS" 2>/dev/null; do
      echo "$t $(awk '/^RssAnon|^RssFile/{printf "%s ", $2}' /proc/$OURS/status 2>/dev/null)"
      sleep 5; t=$((t+5)); done ) > "$RSS_LOG" &
  PIDS+=($!)
fi
sleep 3   # start-up excluded
declare -A T0
for name in OURS BASE NEP CDP; do p=${!name:-}; [ -n "$p" ] && T0[$name]=$(cpu_ns $name); done
sleep "$SECS"
printf '\n%-32s %14s %16s %12s %10s\n' agent "CPU ms/s" "µs/tenant-sample" "peak RSS MB" "CPU vs ours"
declare -A R
for name in OURS BASE NEP CDP; do
  p=${!name:-}; [ -z "$p" ] && continue
  d=$(( $(cpu_ns $name) - ${T0[$name]} ))
  R[$name]=$(awk -v d=$d -v s=$SECS 'BEGIN{printf "%.3f", d/1e6/s}')
done
for name in OURS BASE NEP CDP; do
  p=${!name:-}; [ -z "$p" ] && continue
  case $name in
    OURS) label="cloudformer collect" ;;
    BASE) label="cloudformer collect (baseline)" ;;
    NEP) label="node_exporter (curl 1/s)" ;;
    *) label="collectd (1 s, cgroups)" ;;
  esac
  us=$(awk -v r=${R[$name]} -v n=$N 'BEGIN{printf "%.1f", r*1000/n}')
  rss=$(awk -v k=$(hwm_kb $p) 'BEGIN{printf "%.1f", k/1024}')
  ratio=$(awk -v a=${R[$name]} -v b=${R[OURS]} 'BEGIN{ if (b>0) printf "%.2fx", a/b; else print "n/a"}')
  printf '%-32s %14s %16s %12s %10s\n' "$label" "${R[$name]}" "$us" "$rss" "$ratio"
done
echo "($N tenants, ${SECS}s, $(nproc) CPUs, $(uname -r); CPU from each agent's own cgroup counter)"
# Our agent's resident memory now, by kind (code pages of the binary are file-backed).
awk '/^RssAnon|^RssFile/{printf "%s %.1f MB  ", $1, $2/1024} END{print ""}' /proc/$OURS/status |
  sed 's/^/cloudformer collect at the end: /'
# Our agent's own timing: stop it (SIGTERM = clean shutdown) and read its summary line.
kill -TERM "$OURS" 2>/dev/null || true
for _ in $(seq 1 50); do kill -0 "$OURS" 2>/dev/null || break; sleep 0.1; done
summary=$(tr '\r' '\n' <"$WORK/cf.err" | grep 'collected .* ticks' | tail -n 1 || true)
if [ -n "${KEEP_OUT:-}" ]; then rm -rf "$KEEP_OUT"; cp -r "$WORK/cf" "$KEEP_OUT"; fi
if [ -n "$summary" ]; then
  echo "cloudformer collect: ${summary#*; }"
else
  echo "cloudformer collect: no summary line (stderr tail: $(tail -c 300 "$WORK/cf.err"))"
fi
