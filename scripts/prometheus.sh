#!/usr/bin/env bash
# A real Prometheus over a synthetic cluster, on a free port of 127.0.0.1: the one start-up the
# tests, the demo and the benchmark share.
#
#   scripts/prometheus.sh OPENMETRICS WORKDIR
#
# Loads OPENMETRICS (written by synth-cluster) into WORKDIR/tsdb with promtool, unless that TSDB
# exists already (the benchmark keeps it between runs), and deletes the text (large, no longer
# needed). Then starts Prometheus on the TSDB and, once it answers /-/ready, writes its URL to
# WORKDIR/url and its process id to WORKDIR/pid. Runs until it is sent SIGTERM or SIGINT, and
# stops Prometheus with it; callers bound its life with `timeout`. Prometheus's log:
# WORKDIR/prometheus.log. PROMETHEUS_QUERY_LOG=FILE logs every query Prometheus answers, with
# its parameters and timings, to FILE (the benchmark replays them).
set -euo pipefail

if (($# != 2)); then
    echo "usage: $0 OPENMETRICS WORKDIR" >&2
    exit 2
fi
openmetrics=$1
work=$2
mkdir -p "$work"
rm -f "$work/url" "$work/pid"

if [[ ! -d $work/tsdb ]]; then
    if [[ ! -f $openmetrics ]]; then
        echo "$0: no TSDB in $work and no OpenMetrics file $openmetrics to load" >&2
        exit 1
    fi
    rm -rf "$work/tsdb.tmp" "$work/chunks"
    size=$(stat -c %s "$openmetrics")
    # PROMETHEUS_SPLIT_BYTES: the size from which the text is loaded in parts (tests set it low).
    if ((size < ${PROMETHEUS_SPLIT_BYTES:-268435456})); then
        # Several GB of text for large clusters: promtool holds it in memory (README,
        # Benchmarks).
        promtool tsdb create-blocks-from openmetrics -q --max-block-duration=48h \
            "$openmetrics" "$work/tsdb.tmp" >/dev/null
    else
        # A long data set (the 30-day soak: 2.1 GB, 382 s and 2.2 GB of memory in one promtool)
        # is cut at the 48-hour block boundaries (multiples of 48 h since the epoch, as
        # promtool aligns its blocks) and each part loaded by its own promtool, one per core:
        # each holds only its part in memory, and the parts' blocks are disjoint. Each part
        # keeps the family headers of its samples (families stay contiguous) and ends with
        # `# EOF`.
        mkdir -p "$work/chunks" "$work/tsdb.tmp"
        awk -v dir="$work/chunks" '
            /^# EOF/ { next }
            /^# TYPE / { header = $0; split("", headed); next }
            /^#/ { next }
            {
                part = int($NF / 172800)
                file = dir "/" part ".om"
                if (!(part in headed)) { print header > file; headed[part] = 1 }
                files[file] = 1
                print > file
            }
            END { for (f in files) { print "# EOF" > f; close(f) } }
        ' "$openmetrics"
        find "$work/chunks" -name '*.om' -print0 |
            xargs -0 -P "$(nproc)" -I{} sh -c \
                'promtool tsdb create-blocks-from openmetrics -q --max-block-duration=48h "$1" "$1.d" >/dev/null && rm -f "$1"' _ {}
        find "$work/chunks" -mindepth 2 -maxdepth 2 -type d -exec mv {} "$work/tsdb.tmp/" \;
        rm -rf "$work/chunks"
    fi
    mv "$work/tsdb.tmp" "$work/tsdb"
    rm -f "$openmetrics"
fi

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# The data is historical: no scrape targets, and a retention long enough to keep every block.
{
    echo 'global:'
    echo '  scrape_interval: 30s'
    if [[ -n ${PROMETHEUS_QUERY_LOG:-} ]]; then echo "  query_log_file: $PROMETHEUS_QUERY_LOG"; fi
} >"$work/prometheus.yml"
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/tsdb" \
    --storage.tsdb.retention.time=100y --web.listen-address="127.0.0.1:$port" \
    >"$work/prometheus.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

url=http://127.0.0.1:$port
for _ in $(seq 600); do
    if curl -sf "$url/-/ready" >/dev/null; then
        echo "$pid" >"$work/pid"
        echo "$url" >"$work/url.tmp"
        mv "$work/url.tmp" "$work/url"
        wait "$pid"
        exit $?
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
        break
    fi
    sleep 0.1
done
echo "$0: Prometheus did not become ready; its log: $work/prometheus.log" >&2
exit 1
