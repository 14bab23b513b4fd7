# Shell helpers shared by the serve benchmarks (run.sh, scheduler.sh, soak.sh); sourced after
# ORIG_PWD (the caller's directory) and ROOT (the repository root) are set.

# a path given by the user, made absolute against the directory the script was started from
abspath() { case $1 in /*) printf '%s\n' "$1" ;; *) printf '%s\n' "$ORIG_PWD/$1" ;; esac; }
# shown relative to the repository root when inside it
rel() { case $1 in "$ROOT"/*) printf '%s\n' "${1#"$ROOT"/}" ;; *) printf '%s\n' "$1" ;; esac; }
# wrk time ("812.00us", "1.23ms", "2.01s", "1.00m") → milliseconds
to_ms() {
  awk -v v="$1" 'BEGIN {
    if (v ~ /us$/)      { sub(/us$/, "", v); x = v / 1000 }
    else if (v ~ /ms$/) { sub(/ms$/, "", v); x = v }
    else if (v ~ /m$/)  { sub(/m$/, "", v);  x = v * 60000 }
    else if (v ~ /h$/)  { sub(/h$/, "", v);  x = v * 3600000 }
    else if (v ~ /s$/)  { sub(/s$/, "", v);  x = v * 1000 }
    else { print "n/a"; exit }
    printf "%.2f\n", x }'
}
# resident memory of process PID in MB
rss_mb_of() { awk '/^VmRSS:/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status" 2>/dev/null || echo n/a; }
