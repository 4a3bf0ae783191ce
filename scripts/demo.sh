#!/usr/bin/env bash
# The main job on a local demo: generates a synthetic cluster covering the last hours, loads it
# into a real Prometheus on 127.0.0.1, and runs consumption-metrics as a dry-run over those
# hours. The messages go to stdout (pipe into jq), progress to stderr.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh --demo

HOURS=${DEMO_HOURS:-6}
NAMESPACES=${DEMO_NAMESPACES:-20}
work=$(mktemp -d "${TMPDIR:-/tmp}/consumption-metrics-demo.XXXXXX")
prom_pid=
cleanup() {
    [[ -n $prom_pid ]] && kill "$prom_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

cargo build --locked --quiet --bins

# The newest settled hour ends at `until`; data covers the $HOURS hours before it.
now=$(date -u +%s)
until_s=$(( (now - 600) / 3600 * 3600 ))
start_s=$(( until_s - HOURS * 3600 ))
iso() { date -u -d "@$1" +%Y-%m-%dT%H:%M:%SZ; }

echo "generating a synthetic cluster from $(iso $start_s) to $(iso $until_s)" >&2
./target/debug/synth-cluster --out-dir "$work/data" --start "$(iso $start_s)" \
    --hours "$HOURS" --namespaces "$NAMESPACES" 2>/dev/null
promtool tsdb create-blocks-from openmetrics -q --max-block-duration=48h \
    "$work/data/metrics.om" "$work/tsdb" >/dev/null
rm -f "$work/data/metrics.om"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
echo 'global: {scrape_interval: 30s}' >"$work/prometheus.yml"
# timeout: the demo's Prometheus stops by itself even if this script is killed.
timeout 900 prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/tsdb" \
    --storage.tsdb.retention.time=100y --web.listen-address="127.0.0.1:$port" \
    >"$work/prometheus.log" 2>&1 &
prom_pid=$!
for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$port/-/ready" >/dev/null && break
    sleep 0.1
done
echo "Prometheus ready on 127.0.0.1:$port" >&2

# The first hour has no hour before it (CPU usage counters need one), so bill from the second.
./target/debug/consumption-metrics \
    --prometheus-url "http://127.0.0.1:$port" \
    --cluster-name demo-cluster \
    --service-location LOCAL \
    --storage-tier gold=premium --storage-tier cephfs=basic \
    --since "$(iso $((start_s + 3600)))" --until "$(iso $until_s)" \
    --dry-run --log-format text "$@"
