#!/usr/bin/env bash
# Side-by-side collector overhead: cloudformer collect vs Prometheus node_exporter (scraped 1/s
# by curl) vs collectd (1 s interval, cgroups plugin), all running at the same time on the same
# 8 tenant cgroups with a light stress-ng load each. Reports CPU seconds per second of collection
# and peak RSS of each agent process (not counting curl).
#
#   sudo bench/collector/run.sh [SECONDS]     # default 60; needs root, stress-ng,
#                                             # prometheus-node-exporter, collectd-core, curl
set -euo pipefail
SECS=${1:-60}
N=8
ROOT=/sys/fs/cgroup
PREFIX=cf-bench-$$
BIN=${CLOUDFORMER_BIN:-$(dirname "$0")/../../target/release/cloudformer}
[ -x "$BIN" ] || { echo "build first: cargo build --release (or set CLOUDFORMER_BIN)"; exit 1; }
command -v stress-ng >/dev/null || { echo "needs stress-ng"; exit 1; }
NE=$(command -v prometheus-node-exporter || true)
CD=$(command -v collectd || echo /usr/sbin/collectd)
WORK=$(mktemp -d)

hiers() {
  if [ -e $ROOT/cgroup.controllers ]; then echo $ROOT; return; fi
  [ -e $ROOT/unified/cgroup.controllers ] && echo $ROOT/unified
  for c in cpu cpuacct memory blkio pids; do [ -e $ROOT/$c/cgroup.procs ] && echo $ROOT/$c; done
}
PIDS=()
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

cpu_ticks() { awk '{print $14+$15}' /proc/$1/stat; }
hwm_kb() { awk '/VmHWM/{print $2}' /proc/$1/status; }

# ours
# (not --quiet: on SIGTERM it prints its summary with the tick lateness p99 to stderr)
"$BIN" collect --out "$WORK/cf" --tenants "$PREFIX/*" >/dev/null 2>"$WORK/cf.err" &
OURS=$!; PIDS+=($OURS)
# node_exporter, scraped once a second
if [ -n "$NE" ]; then
  "$NE" --web.listen-address=127.0.0.1:19100 >/dev/null 2>&1 &
  NEP=$!; PIDS+=($NEP)
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
  "$CD" -f -C "$WORK/collectd.conf" >/dev/null 2>&1 &
  CDP=$!; PIDS+=($CDP)
fi
sleep 3   # start-up excluded
HZ=$(getconf CLK_TCK)
declare -A T0
for name in OURS NEP CDP; do p=${!name:-}; [ -n "$p" ] && T0[$name]=$(cpu_ticks $p); done
sleep "$SECS"
printf '\n%-32s %14s %16s %12s %10s\n' agent "CPU ms/s" "µs/tenant-sample" "peak RSS MB" "CPU vs ours"
declare -A R
for name in OURS NEP CDP; do
  p=${!name:-}; [ -z "$p" ] && continue
  d=$(( $(cpu_ticks $p) - ${T0[$name]} ))
  R[$name]=$(awk -v d=$d -v hz=$HZ -v s=$SECS 'BEGIN{printf "%.3f", d/hz/s*1000}')
done
for name in OURS NEP CDP; do
  p=${!name:-}; [ -z "$p" ] && continue
  label=$([ $name = OURS ] && echo "cloudformer collect" || ([ $name = NEP ] && echo "node_exporter (curl 1/s)" || echo "collectd (1 s, cgroups)"))
  us=$(awk -v r=${R[$name]} -v n=$N 'BEGIN{printf "%.1f", r*1000/n}')
  rss=$(awk -v k=$(hwm_kb $p) 'BEGIN{printf "%.1f", k/1024}')
  ratio=$(awk -v a=${R[$name]} -v b=${R[OURS]} 'BEGIN{ if (b>0) printf "%.1fx", a/b; else print "n/a"}')
  printf '%-32s %14s %16s %12s %10s\n' "$label" "${R[$name]}" "$us" "$rss" "$ratio"
done
echo "($N tenants, ${SECS}s, $(nproc) CPUs, $(uname -r); CPU ticks at ${HZ} Hz: resolution $((1000/HZ)) ms over the run)"
# Our agent's own timing: stop it (SIGTERM = clean shutdown) and read its summary line.
kill -TERM "$OURS" 2>/dev/null || true
for _ in $(seq 1 50); do kill -0 "$OURS" 2>/dev/null || break; sleep 0.1; done
summary=$(tr '\r' '\n' <"$WORK/cf.err" | grep 'collected .* ticks' | tail -n 1 || true)
if [ -n "$summary" ]; then
  echo "cloudformer collect: ${summary#*; }"
else
  echo "cloudformer collect: no summary line (stderr tail: $(tail -c 300 "$WORK/cf.err"))"
fi
