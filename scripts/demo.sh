#!/usr/bin/env bash
# The main job on a local demo: generates a synthetic cluster covering the last hours, loads it
# into a real Prometheus on 127.0.0.1, and runs consumption-metrics over those hours.
#
#   scripts/demo.sh [FLAGS...]            a dry-run: the messages go to stdout (pipe into jq),
#                                         progress to stderr; FLAGS go to consumption-metrics
#   scripts/demo.sh --publish [FLAGS...]  the job's main path, end to end: starts a local
#                                         Kafka-protocol broker (tansu) behind a mutual-TLS
#                                         listener (stunnel) with a throwaway PKI, publishes the
#                                         same hours as a scheduled run with a file checkpoint,
#                                         reads them back with `consumption-metrics audit
#                                         --recompute` and prints a one-line summary on stdout
#
# Environment: DEMO_HOURS (6), DEMO_NAMESPACES (20), DEMO_KEEP=1 keeps the work directory.
set -euo pipefail
cd "$(dirname "$0")/.."

publish=0
if [[ ${1:-} == --publish ]]; then
    publish=1
    shift
fi
# The dry-run needs the build packages and Prometheus; only publishing needs the broker.
if ((publish)); then
    bash scripts/install-deps.sh --publish-demo
else
    bash scripts/install-deps.sh --demo
fi

HOURS=${DEMO_HOURS:-6}
NAMESPACES=${DEMO_NAMESPACES:-20}
work=$(mktemp -d "${TMPDIR:-/tmp}/consumption-metrics-demo.XXXXXX")
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    if [[ ${DEMO_KEEP:-0} == 1 ]]; then
        echo "work directory kept: $work" >&2
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT

# Wait for a server started in the background (pid $1) to write its ready file $2.
wait_ready() { # pid, file, what
    for _ in $(seq 1200); do
        [[ -f $2 ]] && return 0
        kill -0 "$1" 2>/dev/null || break
        sleep 0.1
    done
    echo "demo: $3 did not start; its logs are in $(dirname "$2")" >&2
    DEMO_KEEP=1
    exit 1
}

cargo build --locked --quiet --bins
bin=./target/debug/consumption-metrics

# The newest settled hour ends at `until`; data covers the $HOURS hours before it.
now=$(date -u +%s)
until_s=$(( (now - 600) / 3600 * 3600 ))
start_s=$(( until_s - HOURS * 3600 ))
iso() { date -u -d "@$1" +%Y-%m-%dT%H:%M:%SZ; }

echo "generating a synthetic cluster from $(iso $start_s) to $(iso $until_s)" >&2
./target/debug/synth-cluster --out-dir "$work/data" --start "$(iso $start_s)" \
    --hours "$HOURS" --namespaces "$NAMESPACES" 2>/dev/null
# timeout: the demo's servers stop by themselves even if this script is killed.
timeout 900 bash scripts/prometheus.sh "$work/data/metrics.om" "$work/prometheus" &
pids+=($!)
wait_ready $! "$work/prometheus/url" Prometheus
prometheus_url=$(cat "$work/prometheus/url")
echo "Prometheus ready at $prometheus_url" >&2

# The first hour has no hour before it (CPU usage counters need one), so bill from the second.
first_s=$((start_s + 3600))
job=(--prometheus-url "$prometheus_url" --cluster-name demo-cluster
    --service-location LOCAL --storage-tier gold=premium --storage-tier cephfs=basic)

if ((!publish)); then
    exec "$bin" "${job[@]}" --since "$(iso $first_s)" --until "$(iso $until_s)" \
        --dry-run --log-format text "$@"
fi

# --- Publishing: a throwaway PKI, the broker, the mTLS listener, the topic. ---
topic=mcmp-consumption-demo
timeout 900 bash scripts/broker.sh "$work/kafka" "$topic" &
pids+=($!)
wait_ready $! "$work/kafka/brokers" "the broker"
brokers=$(cat "$work/kafka/brokers")
pki=$work/kafka/pki
echo "Kafka broker behind mutual TLS on $brokers, topic $topic" >&2

kafka=(--kafka-brokers "$brokers" --kafka-topic "$topic" --kafka-ca "$pki/ca.pem"
    --kafka-cert "$pki/client.pem" --kafka-key "$pki/client.key"
    # `localhost` may resolve to ::1 first; the listener is on 127.0.0.1.
    --kafka-property broker.address.family=v4)

# A scheduled run, as the CronJob does it: the checkpoint says where the last run stopped.
checkpoint=$work/checkpoint
iso "$first_s" >"$checkpoint"
"$bin" "${job[@]}" "${kafka[@]}" --checkpoint-file "$checkpoint" --log-format text "$@" \
    2>"$work/publish.log" || {
    code=$?
    cat "$work/publish.log" >&2
    echo "demo: publishing failed (exit $code)" >&2
    exit "$code"
}
grep -E "hour published|checkpoint advanced|run complete" "$work/publish.log" >&2 || true

# Read everything back over mutual TLS and compare it with Prometheus, hour by hour.
set +e
"$bin" audit "${job[@]}" "${kafka[@]}" --since "$(iso $first_s)" --until "$(iso $until_s)" \
    --recompute --output json --log-format text >"$work/audit.json" 2>"$work/audit.log"
code=$?
set -e
if ((code != 0 && code != 6)); then
    cat "$work/audit.log" >&2
    echo "demo: the audit could not read the topic (exit $code)" >&2
    exit "$code"
fi
python3 - "$work/audit.json" "$checkpoint" "$code" <<'EOF'
import json, sys
report = json.load(open(sys.argv[1]))
checkpoint = open(sys.argv[2]).read().strip()
hours = report["hours"]
messages = sum(h["messages"] for h in hours)
counts = ", ".join(f"{n} {status}" for status, n in report["counts"].items())
verdict = "every hour published exactly once and equal to Prometheus" if sys.argv[3] == "0" \
    else "NOT every hour published exactly once and right (see the audit above)"
print(f"published and read back {messages} messages for {len(hours)} hours "
      f"[{report['since']}, {report['until']}) on topic {report['topic']}: {counts}; "
      f"checkpoint {checkpoint}; {verdict}")
for h in hours:
    for f in h["findings"]:
        print(f"  {h['hour']} {h['status']}: {f}", file=sys.stderr)
EOF
exit "$code"
