#!/usr/bin/env bash
# The CycloneDX SBOM of the release binary, from Cargo.lock: every crate it links, with
# version, license, SHA-256 of the crate and purl. Written to DIR (default target/sbom) as
# consumption-metrics.cdx.json; the Jenkinsfile stores it beside the image and attaches it to
# the pushed digest. Reproducible: dated by the commit, not the clock.
#
#   scripts/sbom.sh [DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-target/sbom}
mkdir -p "$out"
command -v cargo-cyclonedx >/dev/null || {
    echo "sbom.sh: cargo-cyclonedx is missing; run: bash scripts/install-deps.sh --supply-chain" >&2
    exit 1
}
# The image is built for linux (amd64 and arm64): the dependencies of a linux target, without
# build-time-only crates (build scripts are not linked into the binary).
target=${SBOM_TARGET:-x86_64-unknown-linux-gnu}
SOURCE_DATE_EPOCH=$(git log -1 --format=%ct 2>/dev/null || echo 0) \
    cargo cyclonedx --format json --spec-version 1.5 --describe binaries --no-build-deps \
    --target "$target" -q
# cargo-cyclonedx writes beside each manifest; keep the job's, drop the generator's.
mv consumption-metrics_bin.cdx.json "$out/consumption-metrics.cdx.json"
rm -f synth/synth-cluster_bin.cdx.json
echo "$out/consumption-metrics.cdx.json"
