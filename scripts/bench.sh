#!/usr/bin/env bash
# Benchmark: a dry-run over a synthetic cluster of $BENCH_NAMESPACES tenant namespaces (default
# 10,000) loaded into a real Prometheus. Prints wall time and peak RSS of consumption-metrics
# for one hour (the CronJob's usual run) and for the whole data range, per CPU basis, plus the
# size of the output. The TSDB is generated once and kept in target/bench-<N>/ (several GB of
# OpenMetrics text pass through promtool the first time: minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh

N=${BENCH_NAMESPACES:-10000}
# 2 hours at 120 s keep the OpenMetrics text near 5 GB for 10,000 namespaces (promtool holds it
# in memory); the series count, which drives query cost, does not depend on either.
HOURS=${BENCH_HOURS:-2}
INTERVAL=${BENCH_INTERVAL:-120}
dir=target/bench-$N-${HOURS}h-${INTERVAL}s
start=2026-11-01T00:00:00Z

cargo build --locked --release --quiet --bins
bin=target/release/consumption-metrics

if [[ ! -d $dir/tsdb ]]; then
    echo "generating $N namespaces x $HOURS h at ${INTERVAL}s into $dir" >&2
    rm -rf "$dir"
    /usr/bin/time -f "synth-cluster: %e s, %M KiB peak" target/release/synth-cluster \
        --out-dir "$dir/data" --start "$start" --hours "$HOURS" --interval "$INTERVAL" \
        --namespaces "$N" --only-random
    ls -l "$dir/data/metrics.om" >&2
fi

# Loads the data into $dir/tsdb the first time (promtool: minutes for 10,000 namespaces), then
# starts Prometheus; the TSDB is kept for the next run.
timeout 7200 bash scripts/prometheus.sh "$dir/data/metrics.om" "$dir" &
prom=$!
trap 'kill $prom 2>/dev/null || true' EXIT
while [[ ! -f $dir/url ]]; do
    kill -0 $prom 2>/dev/null || { echo "bench: Prometheus did not start; see $dir" >&2; exit 1; }
    sleep 0.5
done
url=$(cat "$dir/url")

last=$(date -u -d "$start + $HOURS hours" +%Y-%m-%dT%H:%M:%SZ)
one=$(date -u -d "$start + $((HOURS - 1)) hours" +%Y-%m-%dT%H:%M:%SZ)
# An hour after the data ends: every hour of the range has settled, whatever BENCH_HOURS is.
now=$(date -u -d "$start + $((HOURS + 1)) hours" +%Y-%m-%dT%H:%M:%SZ)

printf '%-8s %-6s %8s %10s %8s %10s\n' basis hours wall_s peak_MiB messages json_MiB
for basis in request usage max; do
    for since in "$one" "$start"; do
        hours=$(( ($(date -u -d "$last" +%s) - $(date -u -d "$since" +%s)) / 3600 ))
        /usr/bin/time -o "$dir/time.txt" -f "%e %M" "$bin" --prometheus-url "$url" \
            --cluster-name bench --dry-run --since "$since" --until "$last" \
            --now "$now" --cpu-basis "$basis" --log-format text \
            --prometheus-timeout 300s >"$dir/out.json" 2>"$dir/run.log"
        read -r wall kib <"$dir/time.txt"
        msgs=$(grep -c '"message_id"' "$dir/out.json")
        size=$(stat -c %s "$dir/out.json")
        awk -v b="$basis" -v h="$hours" -v w="$wall" -v k="$kib" -v m="$msgs" -v s="$size" \
            'BEGIN { printf "%-8s %-6s %8s %10.1f %8s %10.1f\n", b, h, w, k / 1024, m, s / 1048576 }'
    done
done
ns=$(grep -c '"external_id"' "$dir/out.json")
echo "namespace-hours in the last output: $ns" >&2
