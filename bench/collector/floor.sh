#!/usr/bin/env bash
# The floor under the agent's CPU: a C program (floor.c) that only reads the files our agent
# reads for 8 tenants (2 processes each) and the host, once a second, with `pread` and — in a
# second process at the same time — with one io_uring submission per tick. Prints each one's CPU
# per tick and per tenant-sample (cpuacct). Needs root, gcc, stress-ng, a hybrid cgroup layout.
#
#   sudo bash bench/collector/floor.sh [TICKS]     # default 40 (40 s)
set -euo pipefail
T=${1:-40}; N=8
ROOT=/sys/fs/cgroup; P=cf-floor-$$; ACCT=$ROOT/cpuacct/cf-floor-$$; WORK=$(mktemp -d)
[ -e $ROOT/unified/cgroup.controllers ] && [ -e $ROOT/memory/cgroup.procs ] ||
  { echo "needs the hybrid layout (v2 at $ROOT/unified, v1 controllers)"; exit 1; }
gcc -O2 -o "$WORK/floor" "$(dirname "$0")/floor.c"
hiers="$ROOT/unified $ROOT/cpu $ROOT/cpuacct $ROOT/memory $ROOT/blkio $ROOT/pids"
cleanup() {
  for h in $hiers; do for i in $(seq 1 $N); do
    for p in $(cat $h/$P/t$i/cgroup.procs 2>/dev/null); do kill -9 $p 2>/dev/null || true; done
  done; done; sleep 0.5
  for h in $hiers; do for i in $(seq 1 $N); do rmdir $h/$P/t$i 2>/dev/null || true; done; rmdir $h/$P 2>/dev/null || true; done
  for m in 0 1; do rmdir $ACCT/m$m 2>/dev/null || true; done; rmdir $ACCT 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
for i in $(seq 1 $N); do
  files=""; for h in $hiers; do mkdir -p $h/$P/t$i; files="$files $h/$P/t$i/cgroup.procs"; done
  ( sh -c "for f in $files; do echo \$\$ > \$f; done; exec stress-ng --cpu 1 --cpu-load 5 --timeout $((T+30))s" >/dev/null 2>&1 & )
done
sleep 1
F=""
for i in $(seq 1 $N); do
  for f in cpu.pressure memory.pressure io.pressure cgroup.procs cgroup.threads; do F="$F $ROOT/unified/$P/t$i/$f"; done
  for f in cpu/cpu.stat cpuacct/cpuacct.usage cpuacct/cpuacct.stat memory/memory.usage_in_bytes \
           memory/memory.stat memory/memory.limit_in_bytes memory/memory.failcnt memory/memory.oom_control \
           blkio/blkio.throttle.io_service_bytes blkio/blkio.throttle.io_serviced pids/pids.current; do
    F="$F $ROOT/${f%%/*}/$P/t$i/${f#*/}"
  done
  for pid in $(cat $ROOT/unified/$P/t$i/cgroup.procs); do F="$F /proc/$pid/stat /proc/$pid/io"; done
done
F="$F /proc/stat /proc/meminfo /proc/vmstat /proc/diskstats /proc/net/dev /proc/pressure/cpu /proc/pressure/memory /proc/pressure/io"
echo "$(echo $F | wc -w) files per tick"
kids=()
for m in 0 1; do
  mkdir -p $ACCT/m$m
  # shellcheck disable=SC2086
  sh -c 'echo $$ > "$0"; exec "$@"' $ACCT/m$m/cgroup.procs "$WORK/floor" $m $T $F & kids+=($!)
done
wait "${kids[@]}"
for m in 0 1; do
  ns=$(cat $ACCT/m$m/cpuacct.usage)
  echo "$( [ $m = 0 ] && echo pread || echo io_uring ): $(( ns / T / 1000 )) µs per tick, $(( ns / T / 1000 / N )) µs per tenant-sample"
done
