#!/bin/bash
# units.sh SECONDS DUTY_PCT COMMAND...
#
# A batch job as a tenant's load: runs COMMAND back to back for SECONDS, and after each run rests
# (100 - DUTY_PCT) / DUTY_PCT times as long as that run took, so the job is busy DUTY_PCT % of
# the time alone (a lighter batch load), whatever slows it down. Prints once a second how many
# runs completed in that second ("units: N") and at the end the mean rate ("units_per_s: X").
# A run of COMMAND that fails stops the job with its status (its output is on stderr).
set -u
if [ $# -lt 3 ]; then
    echo "usage: units.sh SECONDS DUTY_PCT COMMAND..." >&2
    exit 2
fi
seconds=$1 duty=$2
shift 2
if ! [[ $seconds =~ ^[0-9]+$ && $duty =~ ^[0-9]+$ ]] || [ "$duty" -lt 1 ] || [ "$duty" -gt 100 ]; then
    echo "units.sh: SECONDS must be a whole number and DUTY_PCT in 1..100 (got '$seconds' '$duty')" >&2
    exit 2
fi
now() { echo "${EPOCHREALTIME/./}"; }   # microseconds, no fork
exec {idle}<> <(:)                        # never readable: `read -t` on it sleeps without a fork
start=$(now)
end=$((start + seconds * 1000000))
tick=$((start + 1000000))
n=0 total=0 t=$start
while [ "$t" -lt "$end" ]; do
    u0=$(now)
    out=$("$@" 2>&1 >/dev/null) || { s=$?; echo "units.sh: '$*' failed ($s): $out" >&2; exit "$s"; }
    t=$(now)
    if [ "$duty" -lt 100 ]; then
        rest=$(( (t - u0) * (100 - duty) / duty ))
        read -r -t "$((rest / 1000000)).$(printf %06d $((rest % 1000000)))" -u "$idle" || true
    fi
    n=$((n + 1)) total=$((total + 1))
    t=$(now)
    while [ "$t" -ge "$tick" ] && [ "$tick" -le "$end" ]; do
        echo "units: $n"
        n=0
        tick=$((tick + 1000000))
    done
done
awk -v n="$total" -v us="$((t - start))" 'BEGIN { printf "units_per_s: %.3f\n", n * 1e6 / us }'
