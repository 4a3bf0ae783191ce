#!/usr/bin/env bash
# Installs what the build, the tests and the demo need on a Debian machine, skipping what is
# present. Idempotent; safe to run on every CI run.
#   - apt: Prometheus (+promtool), stunnel4 (the mTLS terminator in front of the test broker),
#     and what rdkafka's cmake build links (cmake, g++, libssl-dev,
#     zlib1g-dev, pkg-config; rdkafka is built without curl);
#   - tansu, an Apache-Kafka-compatible broker, built once with cargo into $TANSU_ROOT.
set -euo pipefail

# /opt/tansu as root (CI machines), a per-user cache otherwise; tests/common/kafka.rs looks in
# both (or at $TANSU_BIN).
if [[ $(id -u) -eq 0 ]]; then
    TANSU_ROOT=${TANSU_ROOT:-/opt/tansu}
else
    TANSU_ROOT=${TANSU_ROOT:-$HOME/.cache/consumption-metrics/tansu}
fi
TANSU_VERSION=0.6.0

sudo_cmd=()
[[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo)

need_apt=()
for pkg in prometheus stunnel4 curl cmake g++ libssl-dev zlib1g-dev pkg-config; do
    # Not `dpkg -s`: it succeeds for a removed package whose configuration files remain.
    [[ $(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null) == "install ok installed" ]] ||
        need_apt+=("$pkg")
done
command -v kubectl >/dev/null || echo "note: kubectl not found; the manifest tests need it" >&2

if ((${#need_apt[@]})); then
    echo "installing: ${need_apt[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    "${sudo_cmd[@]}" apt-get update -qq
    # --no-install-recommends: the prometheus package would otherwise pull node-exporter.
    "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

if [[ ! -x $TANSU_ROOT/bin/tansu ]]; then
    echo "building tansu $TANSU_VERSION into $TANSU_ROOT (about 6-15 minutes, once)" >&2
    # Built outside the project's target dir; the debug build is enough for tests and is
    # twice as fast to build. `dynostore` provides the memory:// storage engine.
    mkdir -p "$TANSU_ROOT"
    cargo install tansu --version "$TANSU_VERSION" --locked \
        --features dynostore --debug --root "$TANSU_ROOT" --quiet
fi
