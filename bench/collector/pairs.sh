#!/usr/bin/env bash
# Side-by-side pairs of agent builds: each `cloudformer collect` in a cpuacct cgroup of its own,
# all on the same N tenant cgroups (stress-ng --cpu-load 5 each), ticking at the same seconds.
# Prints each agent's CPU per tenant-sample, its ratio to the first and its peak RSS. Runs of
# 160 s or more include the Parquet writer's row groups (every 150 s: a quarter of the 10-minute
# segment; builds before 2026-11-29 12:00 UTC wrote one per 600 rows, every 75 s with 8 tenants).
# Alternate the order between runs: the agents contend for the same 2 vCPUs at each tick.
#
#   sudo bash bench/collector/pairs.sh SECS N "label|/path/to/cloudformer [env...]" ...
#   e.g. sudo bash bench/collector/pairs.sh 40 8 "new|target/release/cloudformer" \
#          "old|/tmp/old/cloudformer"
#   AGENT_ARGS="--segment 1m" …: extra `collect` options for every agent (here: a segment closed
#   every minute, so that a short run includes the cost of writing segment footers).
set -euo pipefail
SECS=$1; N=$2; shift 2
ROOT=/sys/fs/cgroup; PREFIX=cf-pair-$$; ACCT=$ROOT/cpuacct/cf-pair-agents-$$; WORK=$(mktemp -d)
[ -e $ROOT/cpuacct/cpuacct.usage ] || { echo "needs the cgroup v1 cpuacct controller"; exit 1; }
hiers() {
  [ -e $ROOT/unified/cgroup.controllers ] && echo $ROOT/unified
  for c in cpu cpuacct memory blkio pids; do [ -e $ROOT/$c/cgroup.procs ] && echo $ROOT/$c; done
}
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; sleep 1
  for h in $(hiers); do for i in $(seq 1 $N); do
    for p in $(cat $h/$PREFIX/t$i/cgroup.procs 2>/dev/null); do kill -9 $p 2>/dev/null || true; done
  done; done; sleep 0.5
  for h in $(hiers); do
    for i in $(seq 1 $N); do rmdir $h/$PREFIX/t$i 2>/dev/null || true; done
    rmdir $h/$PREFIX 2>/dev/null || true
  done
  for d in $ACCT/*/; do rmdir "$d" 2>/dev/null || true; done; rmdir $ACCT 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
for i in $(seq 1 $N); do
  files=""; for h in $(hiers); do mkdir -p $h/$PREFIX/t$i; files="$files $h/$PREFIX/t$i/cgroup.procs"; done
  sh -c "for f in $files; do echo \$\$ > \$f; done; exec stress-ng --cpu 1 --cpu-load 5 --timeout $((SECS+30))s" \
    >/dev/null 2>&1 & PIDS+=($!)
done
sleep 1
LB=(); k=0
for spec in "$@"; do
  lb=${spec%%|*}; cmd=${spec#*|}; mkdir -p $ACCT/a$k
  # shellcheck disable=SC2086
  sh -c 'echo $$ > "$0"; exec "$@"' $ACCT/a$k/cgroup.procs $cmd collect --out $WORK/o$k \
    --tenants "$PREFIX/*" -q ${AGENT_ARGS:-} >/dev/null 2>$WORK/e$k & PIDS+=($!)
  LB+=("$lb"); k=$((k+1))
done
sleep 3
T0=(); for j in "${!LB[@]}"; do T0[$j]=$(cat $ACCT/a$j/cpuacct.usage); done
sleep "$SECS"
base=""
for j in "${!LB[@]}"; do
  d=$(( $(cat $ACCT/a$j/cpuacct.usage) - ${T0[$j]} ))
  us=$(awk -v d=$d -v s=$SECS -v n=$N 'BEGIN{printf "%.1f", d/1000/s/n}'); [ -z "$base" ] && base=$us
  hwm=$(for p in $(cat $ACCT/a$j/cgroup.procs); do awk '/VmHWM/{print $2}' /proc/$p/status; done | sort -n | tail -1)
  echo "${LB[$j]}: $us µs per tenant-sample, $(awk -v a=$us -v b=$base 'BEGIN{printf "%.3f", a/b}')× the first, peak RSS $(awk -v k=${hwm:-0} 'BEGIN{printf "%.1f", k/1024}') MB"
done
