#!/usr/bin/env bash
# A local Kafka-protocol broker (tansu, in memory) behind a mutual-TLS listener (stunnel) with a
# throwaway PKI, on free ports of 127.0.0.1: what the demo's and the benchmark's publishing
# runs send to. (The Rust tests start the same pair from tests/common/kafka.rs.)
#
#   scripts/broker.sh WORKDIR TOPIC...
#
# Creates WORKDIR/pki/{ca.pem,client.pem,client.key} (CA, and a client certificate the
# listener requires), starts the broker and the listener, creates each TOPIC with 3
# partitions, then writes the mTLS bootstrap address (localhost:PORT) to WORKDIR/brokers and
# the broker's plaintext URL (for tansu's own commands) to WORKDIR/plain. Runs until it is sent
# SIGTERM or SIGINT and stops both with it; callers bound its life with `timeout`. Logs:
# WORKDIR/{tansu.log,stunnel.log}. Needs `scripts/install-deps.sh --publish-demo`.
set -euo pipefail

if (($# < 1)); then
    echo "usage: $0 WORKDIR TOPIC..." >&2
    exit 2
fi
work=$1
shift
mkdir -p "$work/pki"
rm -f "$work/brokers" "$work/plain"
pki=$(cd "$work/pki" && pwd)

(
    cd "$pki"
    ec() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
    ec ca.key
    openssl req -x509 -new -key ca.key -subj /CN=local-ca -days 2 -out ca.pem \
        -addext basicConstraints=critical,CA:true 2>/dev/null
    issue() { # name, CN, extensions
        ec "$1.key"
        openssl req -new -key "$1.key" -subj "/CN=$2" -out "$1.csr" 2>/dev/null
        printf '%s\n' "$3" >"$1.ext"
        openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
            -extfile "$1.ext" -out "$1.pem" 2>/dev/null
    }
    issue server localhost \
        $'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth'
    issue client consumption-metrics 'extendedKeyUsage=clientAuth'
)

tansu_bin=${TANSU_BIN:-}
for root in "${TANSU_ROOT:-}" /opt/tansu "$HOME/.cache/consumption-metrics/tansu"; do
    [[ -z $tansu_bin && -n $root && -x $root/bin/tansu ]] && tansu_bin=$root/bin/tansu
done
if [[ -z $tansu_bin ]]; then
    echo "$0: the tansu broker is not installed; run scripts/install-deps.sh --publish-demo" >&2
    exit 1
fi

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
wait_for() { # port, what
    for _ in $(seq 200); do
        (echo >"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "$0: $2 did not start; its log is in $work" >&2
    exit 1
}

pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done' EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

plain=$(free_port)
tls=$(free_port)
# The broker advertises the mTLS address, so every client connection after the first one
# stays on mutual TLS.
"$tansu_bin" broker --cluster-id local --listener-url "tcp://127.0.0.1:$plain" \
    --advertised-listener-url "tcp://localhost:$tls" --storage-engine memory://tansu/ \
    >"$work/tansu.log" 2>&1 &
pids+=($!)
wait_for "$plain" "the tansu broker"
cat >"$work/stunnel.conf" <<EOF
foreground = yes
pid =
output = $work/stunnel.log
[kafka]
accept = 127.0.0.1:$tls
connect = 127.0.0.1:$plain
cert = $pki/server.pem
key = $pki/server.key
CAfile = $pki/ca.pem
requireCert = yes
verifyChain = yes
sslVersionMin = TLSv1.2
EOF
stunnel4 "$work/stunnel.conf" >/dev/null 2>"$work/stunnel.err" &
pids+=($!)
wait_for "$tls" "the stunnel mTLS listener"
for topic in "$@"; do
    "$tansu_bin" topic create "$topic" --partitions 3 --broker "tcp://127.0.0.1:$plain" >/dev/null
done
echo "tcp://127.0.0.1:$plain" >"$work/plain"
echo "localhost:$tls" >"$work/brokers.tmp"
mv "$work/brokers.tmp" "$work/brokers"
wait
