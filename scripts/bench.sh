#!/usr/bin/env bash
# The benchmark: consumption-metrics side by side with plain baselines measured in the same run
# on the same machine, printed as one table (docs/performance.md). Three synthetic clusters,
# each generated once and kept as a TSDB in target/bench-v<DATA>-<namespaces>-<hours>h-<interval>s/
# (DATA: the generator's version, raised when what it writes changes):
#
#   one hour   BENCH_NAMESPACES (10,000) namespaces, 2 hours at 120 s (about 420,000 series):
#              per CPU basis, one billed hour as the CronJob runs it: the job's wall and CPU
#              time against the same requests replayed one after another by curl, Prometheus's
#              CPU time (/proc) and samples read (its query log) against one query that reads
#              every sample the hour needs once; medians of BENCH_REPEAT interleaved rounds,
#              each phase measured from an idle Prometheus to an idle Prometheus;
#   long runs  BENCH_LONG_NAMESPACES (1,000) namespaces, 170 hours at 1800 s: peak RSS and wall
#              of 1-, 24- and 168-hour runs, dry-run and publishing to a local broker over mTLS;
#   publish    BENCH_PUBLISH_NAMESPACES (20,000) namespaces, 2 hours at 1800 s: one hour of
#              several parts published, against a plain librdkafka producer
#              (examples/plain-producer.rs) sending the same bytes to the same broker over mTLS.
#              (Debian's kcat links librdkafka 2.0, which cannot read the test broker's
#              ApiVersion answer.)
#
# The scrape intervals keep the OpenMetrics text promtool holds in memory near 5 GB; the series
# count, which drives query cost, does not depend on them. First run: about 10 minutes of data
# generation; later runs: a few minutes. Progress goes to stderr, the table to stdout.
#   devices    BENCH_GPUS (1,000 and 10,000) GPUs as dcgm-exporter reports them: one billed
#              hour with --gpu-source devices, measured as the one-hour part is.
#   devices-span  BENCH_SPAN_GPUS (1,000) GPUs in 100 namespaces for 26 hours: a 24-hour
#              span's peak RSS against one hour's.
# BENCH_PARTS (default "1h long publish") picks the parts to run ("devices" and "devices-span"
# are run on demand: their data takes about 15 minutes to generate at 10,000 GPUs).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh --publish-demo

N=${BENCH_NAMESPACES:-10000}
LONG_N=${BENCH_LONG_NAMESPACES:-1000}
PUB_N=${BENCH_PUBLISH_NAMESPACES:-20000}
REPEAT=${BENCH_REPEAT:-3}
PARTS=" ${BENCH_PARTS:-1h long publish} "
start=2026-11-01T00:00:00Z

cargo build --locked --release --quiet --bins --example plain-producer
bin=target/release/consumption-metrics
tmp=$(mktemp -d "${TMPDIR:-/tmp}/consumption-metrics-bench.XXXXXX")
servers=()
cleanup() {
    for p in "${servers[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT
pki=$tmp/kafka/pki # written by scripts/broker.sh

at() { date -u -d "$start + $1 hours" +%Y-%m-%dT%H:%M:%SZ; }
clk_tck=$(getconf CLK_TCK)
# CPU seconds (user + system) a process has used so far.
cpu_of() { awk -v t="$clk_tck" '{ printf "%.2f", ($14 + $15) / t }' "/proc/$1/stat"; }
# Wait until process $1 is idle (under 0.02 s of CPU in 0.5 s, at most 10 s): Prometheus's
# garbage collector and memory scavenger work on after a query has been answered, and their
# CPU belongs to that query, not to the next measurement.
settle() {
    local a b
    a=$(cpu_of "$1")
    for _ in $(seq 20); do
        sleep 0.5
        b=$(cpu_of "$1")
        if awk -v a="$a" -v b="$b" 'BEGIN { exit !(b - a < 0.02) }'; then return; fi
        a=$b
    done
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
verdict() { # value, op, target
    awk -v v="$1" -v op="$2" -v t="$3" 'BEGIN {
        if (v == "-") { print "-"; exit }
        ok = (op == "<=") ? v <= t : v >= t
        print (ok ? "met" : "MISSED") }'
}
row() { # part, measure, job, baseline, ratio, target (e.g. "<= 0.8" or "")
    local verdict_text=""
    if [[ -n ${6:-} ]]; then verdict_text="$6 $(verdict "$5" ${6% *} ${6#* })"; fi
    printf '%-9s %-52s %12s %12s %7s  %s\n' "$1" "$2" "$3" "$4" "$5" "$verdict_text"
}

# Wait for a server started in the background (pid $1) to write its ready file $2.
wait_ready() { # pid, file, what
    while [[ ! -f $2 ]]; do
        kill -0 "$1" 2>/dev/null || { echo "bench: $3 did not start; see $(dirname "$2")" >&2; exit 1; }
        sleep 0.2
    done
}

# Generate a cluster's TSDB once; start Prometheus on it (query log in $1/queries.log).
# 2: every cluster has kube-system, which the job reads its scrape timeline from.
# 3: `up` of kube-state-metrics' targets, the store's time for a stopped source.
# 4: the one-hour cluster also has kube-scheduler's kube_pod_resource_request and the QoS
#    classes (--request-source scheduler); the others are unchanged.
prometheus() { # namespaces, hours, interval[, synth flags...]; sets dir, url, prom_pid
    local data=3 tag=""
    [[ $# -gt 3 ]] && data=4
    # 5: a GPU fleet at scale (--gpus), in a directory of its own per size.
    if [[ ${4:-} == --gpus ]]; then data=5 tag=-gpus$5; fi
    dir=target/bench-v$data-$1-$2h-$3s$tag
    if [[ ! -d $dir/tsdb ]]; then
        echo "generating $1 namespaces x $2 h at $3 s into $dir (once)" >&2
        rm -rf "$dir"
        target/release/synth-cluster --out-dir "$dir/data" --start "$start" --hours "$2" \
            --interval "$3" --namespaces "$1" --only-random "${@:4}" 2>/dev/null
    fi
    rm -f "$dir/url" "$dir/queries.log"
    PROMETHEUS_QUERY_LOG=$(pwd)/$dir/queries.log timeout 7200 bash scripts/prometheus.sh \
        "$dir/data/metrics.om" "$dir" &
    servers+=($!)
    wait_ready $! "$dir/url" Prometheus
    url=$(cat "$dir/url")
    prom_pid=$(cat "$dir/pid")
}
stop_servers() {
    for p in "${servers[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    servers=()
}

# Run the job under /usr/bin/time; sets wall, cpu, rss_mib. Output to $tmp/out, log $tmp/log.
job() {
    /usr/bin/time -o "$tmp/time" -f "%e %U %S %M" "$bin" --prometheus-url "$url" \
        --cluster-name bench --log-format json --prometheus-timeout 300s "$@" \
        >"$tmp/out" 2>"$tmp/log" || { tail -3 "$tmp/log" >&2; echo "bench: the job failed" >&2; exit 1; }
    read -r wall user sys kib <"$tmp/time"
    cpu=$(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%.2f", u + s }')
    rss_mib=$(awk -v k="$kib" 'BEGIN { printf "%.1f", k / 1024 }')
}

# The requests of the query log as curl bodies ($tmp/replay/NNN.{path,body}), and the samples
# they read.
requests_of() { # query log -> prints "requests samples"
    rm -rf "$tmp/replay" && mkdir -p "$tmp/replay"
    python3 - "$1" "$tmp/replay" <<'EOF'
import json, sys, urllib.parse
samples = n = 0
for line in open(sys.argv[1]):
    e = json.loads(line)
    p = e["params"]
    form = {"query": p["query"]}
    if e["httpRequest"]["path"].endswith("query_range"):
        form.update(start=p["start"], end=p["end"], step=str(p["step"]))
        path = "query_range"
    else:
        form["time"] = p.get("end") or p.get("start")
        path = "query"
    # The body in a file of its own: a split CPU query names hundreds of namespaces, too long
    # for one command-line argument.
    with open(f"{sys.argv[2]}/{n:03d}.path", "w") as f:
        f.write(path)
    with open(f"{sys.argv[2]}/{n:03d}.body", "w") as f:
        f.write(urllib.parse.urlencode(form))
    samples += e.get("stats", {}).get("samples", {}).get("totalQueryableSamples", 0)
    n += 1
print(n, samples)
EOF
}
replay() { # sequentially, like a plain client; sets replay_wall
    local t0 t1
    t0=$(date +%s.%N)
    for f in "$tmp"/replay/*.path; do
        curl -sf -o /dev/null -H 'Content-Type: application/x-www-form-urlencoded' \
            --data-binary "@${f%.path}.body" "$url/api/v1/$(cat "$f")"
    done
    t1=$(date +%s.%N)
    replay_wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
}

echo "consumption-metrics benchmark, $(date -u +%Y-%m-%dT%H:%MZ): $(nproc) cores," \
    "$(free -g | awk '/^Mem:/ { print $2 }') GiB, $(command prometheus --version 2>&1 | head -1 | cut -d' ' -f1-3)"
printf '%-9s %-52s %12s %12s %7s  %s\n' part measure job baseline ratio target

common='kube_namespace_status_phase|kube_pod_status_phase|kube_persistentvolumeclaim_resource_requests_storage_bytes|kube_persistentvolumeclaim_info|kube_persistentvolumeclaim_access_mode'
# The median of an awk expression of the fields of $tmp/rounds (one line per round).
col() { awk "{ print $1 }" "$tmp/rounds" | median | awk '{ printf "%.2f", $1 }'; }
# One billed hour, measured: the job's wall and CPU time against its requests replayed one
# after another by curl, Prometheus's CPU time (/proc) and samples read (its query log)
# against one query ($2, evaluated at $3) that reads every sample the hour needs once;
# medians of $REPEAT interleaved rounds, each phase from an idle Prometheus to an idle one.
# Rows are printed under part $1 with the label $4; the job's flags follow.
hour_rounds() { # part, single-pass query, its time, label, job flags...
    local part=$1 single=$2 single_at=$3 label=$4
    shift 4
    local qlog=$dir/queries.log
    # Once unmeasured: the first reads of a freshly started Prometheus fault its blocks into
    # memory, which would be charged to the job and not to the replay that follows it.
    job "$@"
    # Rounds of the three, interleaved, so that a slow moment of this shared machine falls on
    # one round rather than on one side; each figure is the median of its rounds.
    : >"$tmp/rounds"
    for _ in $(seq "$REPEAT"); do
        : >"$qlog"
        settle "$prom_pid"
        c0=$(cpu_of "$prom_pid")
        job "$@"
        settle "$prom_pid"
        c1=$(cpu_of "$prom_pid")
        read -r requests samples < <(requests_of "$qlog")
        settle "$prom_pid"
        c1b=$(cpu_of "$prom_pid")
        replay
        settle "$prom_pid"
        c2=$(cpu_of "$prom_pid")
        : >"$qlog"
        curl -sf -o /dev/null --data-urlencode "query=$single" --data-urlencode "start=$single_at" \
            --data-urlencode "end=$single_at" --data-urlencode step=3600 "$url/api/v1/query_range"
        settle "$prom_pid"
        c3=$(cpu_of "$prom_pid")
        read -r _ single_samples < <(requests_of "$qlog")
        echo "$wall $cpu $rss_mib $replay_wall $c0 $c1 $c1b $c2 $c3" >>"$tmp/rounds"
    done
    awk -v b="$label" '{ printf "  %s round %d: wall %.2f / %.2f s, Prometheus CPU job %.2f, replay %.2f, single pass %.2f s\n", b, NR, $1, $4, $6 - $5, $8 - $7, $9 - $8 }' "$tmp/rounds" >&2
    wall=$(col '$1') cpu=$(col '$2') rss_mib=$(col '$3') replay_wall=$(col '$4')
    prom_job=$(col '$6 - $5') prom_replay=$(col '$8 - $7') prom_single=$(col '$9 - $8')
    row "$part" "$label: wall s, job / plain replay of its requests" "$wall" "$replay_wall" \
        "$(ratio "$wall" "$replay_wall")" "<= 0.8"
    row "$part" "$label: CPU s, job / Prometheus during the job" "$cpu" "$prom_job" \
        "$(ratio "$cpu" "$prom_job")" "<= 0.05"
    row "$part" "$label: Prometheus CPU s, job / replay" "$prom_job" "$prom_replay" \
        "$(ratio "$prom_job" "$prom_replay")"
    row "$part" "$label: Prometheus CPU s, job / single pass" "$prom_job" "$prom_single" \
        "$(ratio "$prom_job" "$prom_single")" "<= 1.5"
    row "$part" "$label: samples read, job / single pass" "$samples" "$single_samples" \
        "$(ratio "$samples" "$single_samples")" "<= 1.5"
    row "$part" "$label: Prometheus requests" "$requests" "" ""
    row "$part" "$label: peak RSS MiB" "$rss_mib" "" ""
}

# --- One billed hour at $N namespaces --------------------------------------------------------
if [[ $PARTS == *" 1h "* ]]; then
prometheus "$N" 2 120 --scheduler-metric
hour=(--dry-run --since "$(at 1)" --until "$(at 2)" --now "$(at 3)")
counter='container_cpu_usage_seconds_total{container!="", container!="POD"}'
# The three bases with kube-state-metrics' requests, and the request basis with
# kube-scheduler's (`scheduler`).
for basis in request usage max scheduler; do
    echo "one hour, $basis basis: $REPEAT rounds of job, replay and single pass" >&2
    flags=(--cpu-basis "$basis")
    # The requests the hour reads: the containers' (and each run's instant look at the pods
    # whose requests they do not show), or the scheduler's and the QoS classes (which tell
    # the pods it hides).
    gauges="$common|kube_pod_container_resource_requests"
    if [[ $basis == scheduler ]]; then
        flags=(--cpu-basis request --request-source scheduler)
        gauges="$common|kube_pod_resource_request|kube_pod_status_qos_class"
    fi
    # One pass over every sample the hour needs (the usage counters: this hour and the one
    # before, which the telescoping reads).
    single="sum(count_over_time({__name__=~\"$gauges\"}[3599999ms] offset 1ms))"
    if [[ $basis == usage || $basis == max ]]; then
        single="$single + sum(count_over_time($counter[7199999ms] offset 1ms))"
    fi
    hour_rounds 1h "$single" "$(at 2)" "$basis" "${hour[@]}" "${flags[@]}"
done
stop_servers
fi

# --- The devices source at AI-cluster scale --------------------------------------------------
# BENCH_GPUS (default "1000 10000") GPUs as dcgm-exporter reports them, scraped every 15 s, on
# nodes of eight (whole, MIG and time-sliced), held in 1,000 namespaces scraped every 60 s, 3
# hours of data; the middle hour billed with --gpu-source devices, as a scheduled run bills it
# once the store holds a few minutes after it, measured as the one-hour part is. The single
# pass reads the hour's gauges once and dcgm-exporter's samples over the device read's window
# (the hour and --max-scrape-gap, 15 minutes, on either side, which the holes rule needs). The
# bill is then compared with the generator's truth, namespace by namespace.
if [[ $PARTS == *" devices "* ]]; then
for gpus in ${BENCH_GPUS:-1000 10000}; do
    prometheus 1000 3 60 --gpus "$gpus"
    echo "devices, $gpus GPUs: $REPEAT rounds of job, replay and single pass" >&2
    later=$(date -u -d "$start + 2 hours 15 minutes" +%Y-%m-%dT%H:%M:%SZ)
    single="sum(count_over_time({__name__=~\"$common|kube_pod_container_resource_requests\"}[3599999ms] offset 900001ms))"
    single="$single + sum(count_over_time(DCGM_FI_DEV_FB_USED[5399999ms] offset 1ms))"
    hour_rounds devices "$single" "$later" "$gpus GPUs" --dry-run --since "$(at 1)" \
        --until "$(at 2)" --now "$(at 3)" --cpu-basis request --gpu-source devices
    read -r billed truth worst < <(python3 - "$tmp/out" "$dir/data/truth.json" \
        "$(date -u -d "$(at 1)" +%s)" <<'EOF'
import json, sys
billed = {}
for m in json.load(open(sys.argv[1])):
    for e in m["payload"]:
        billed[e["external_id"].split("_", 1)[1]] = e["consumption"].get("gpu", 0.0)
truth = {r["namespace"]: r["gpu_devices"] for r in json.load(open(sys.argv[2]))
         if r["hour"] == int(sys.argv[3]) and r["gpu_devices"] > 0}
worst = max(abs(billed.get(n, 0.0) - truth.get(n, 0.0)) for n in set(billed) | set(truth))
print(f"{sum(billed.values()):.6f} {sum(truth.values()):.6f} {worst:.2g}")
EOF
    )
    row devices "$gpus GPUs: GPU-hours billed / truth (worst namespace off by $worst)" \
        "$billed" "$truth" "$(ratio "$billed" "$truth")" ""
    stop_servers
done
fi

# --- A day of the devices source -------------------------------------------------------------
# BENCH_SPAN_GPUS (default 1000) GPUs as the devices part has them, in 100 namespaces, for 26
# hours: the 24 middle hours billed in one dry-run (one span; the devices read hour by hour),
# its peak RSS against one hour's of the same data (target: at most 1.25 times). 100
# namespaces, not 1,000: a day of 1,000 namespaces at 60 s is 17 GB of OpenMetrics text.
if [[ $PARTS == *" devices-span "* ]]; then
    gpus=${BENCH_SPAN_GPUS:-1000}
    prometheus 100 26 60 --gpus "$gpus"
    echo "devices over a day, $gpus GPUs: one run of 24 hours, one of 1 hour" >&2
    flags=(--dry-run --now "$(at 26)" --cpu-basis request --gpu-source devices)
    job "${flags[@]}" --since "$(at 1)" --until "$(at 2)" # once unmeasured (blocks into memory)
    job "${flags[@]}" --since "$(at 1)" --until "$(at 25)"
    day_rss=$rss_mib day_wall=$wall
    job "${flags[@]}" --since "$(at 1)" --until "$(at 2)"
    row devices-span "$gpus GPUs: peak RSS MiB, 24-hour span / 1 hour" "$day_rss" "$rss_mib" \
        "$(ratio "$day_rss" "$rss_mib")" "<= 1.25"
    row devices-span "$gpus GPUs: wall s, 24-hour span / 1 hour" "$day_wall" "$wall" \
        "$(ratio "$day_wall" "$wall")" ""
    stop_servers
fi

# --- Long runs at $LONG_N namespaces: dry-run and publishing ---------------------------------
if [[ $PARTS == *" long "* ]]; then
prometheus "$LONG_N" 170 1800
timeout 7200 bash scripts/broker.sh "$tmp/kafka" bench-long &
servers+=($!)
wait_ready $! "$tmp/kafka/brokers" "the broker"
kafka=(--kafka-brokers "$(cat "$tmp/kafka/brokers")" --kafka-ca "$pki/ca.pem"
    --kafka-cert "$pki/client.pem" --kafka-key "$pki/client.key"
    --kafka-property broker.address.family=v4 --checkpoint-file "$tmp/checkpoint")
for mode in dry-run publish; do
    declare -A rss=() walls=()
    for hours in 1 24 168; do
        echo "long run: $hours hours, $mode" >&2
        range=(--since "$(at $((170 - hours)))" --until "$(at 170)" --now "$(at 171)")
        if [[ $mode == dry-run ]]; then
            job "${range[@]}" --dry-run
        else
            job "${range[@]}" "${kafka[@]}" --kafka-topic bench-long
        fi
        rss[$hours]=$rss_mib
        walls[$hours]=$wall
    done
    for hours in 24 168; do
        row long "$mode, $LONG_N namespaces: peak RSS MiB, ${hours}h / 1h" "${rss[$hours]}" \
            "${rss[1]}" "$(ratio "${rss[$hours]}" "${rss[1]}")" "<= 1.25"
    done
    row long "$mode, $LONG_N namespaces: wall s, 168h / 1h" "${walls[168]}" "${walls[1]}" \
        "$(ratio "${walls[168]}" "${walls[1]}")"
done
stop_servers
fi

# --- Publishing one large hour at $PUB_N namespaces against a plain producer -----------------
if [[ $PARTS == *" publish "* ]]; then
prometheus "$PUB_N" 2 1800
rm -f "$tmp/kafka/brokers"
timeout 7200 bash scripts/broker.sh "$tmp/kafka" bench-publish bench-plain &
servers+=($!)
wait_ready $! "$tmp/kafka/brokers" "the broker"
brokers=$(cat "$tmp/kafka/brokers")
kafka=(--kafka-brokers "$brokers" --kafka-ca "$pki/ca.pem" --kafka-cert "$pki/client.pem"
    --kafka-key "$pki/client.key" --kafka-property broker.address.family=v4
    --checkpoint-file "$tmp/checkpoint")
range=(--since "$(at 1)" --until "$(at 2)" --now "$(at 3)")
# The same messages as one compact JSON document per line, for the plain producer.
job "${range[@]}" --dry-run
python3 - "$tmp/out" "$tmp/messages" <<'EOF'
import json, sys
with open(sys.argv[2], "w") as f:
    for m in json.load(open(sys.argv[1])):
        f.write(json.dumps(m, separators=(",", ":")) + "\n")
EOF
: >"$tmp/deliver" && : >"$tmp/plain"
for _ in $(seq "$REPEAT"); do
    echo "publishing one hour of $PUB_N namespaces, and the plain producer" >&2
    job "${range[@]}" "${kafka[@]}" --kafka-topic bench-publish
    grep '"run complete"' "$tmp/log" | python3 -c '
import json, sys
f = json.loads(sys.stdin.read())
print(f["deliver_seconds"], f["messages"], f["bytes"])' >>"$tmp/deliver"
    target/release/examples/plain-producer "$brokers" bench-plain "$pki/ca.pem" \
        "$pki/client.pem" "$pki/client.key" "$tmp/messages" >>"$tmp/plain"
done
deliver=$(cut -d' ' -f1 "$tmp/deliver" | median | awk '{ printf "%.3f", $1 }')
read -r _ parts bytes <"$tmp/deliver"
plain=$(median <"$tmp/plain")
row publish "$PUB_N namespaces, $parts parts, $((bytes / 1024)) KiB: s, job / plain" \
    "$deliver" "$plain" "$(ratio "$deliver" "$plain")" "<= 1.2"
echo "job: delivery time of its run report (every acknowledgement awaited); plain producer:" \
    "$(($(stat -c %s "$tmp/messages") / 1024)) KiB in $parts messages, from the first send to" \
    "the last acknowledgement; medians of $REPEAT." >&2
fi
