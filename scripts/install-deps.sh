#!/usr/bin/env bash
# Installs what the tests and the demo need on a Debian machine, skipping what is present.
# Idempotent; safe to run on every CI run.
set -euo pipefail

need_apt=()
command -v prometheus >/dev/null || need_apt+=(prometheus)
command -v promtool >/dev/null || need_apt+=(prometheus)
command -v curl >/dev/null || need_apt+=(curl)
command -v kubectl >/dev/null || echo "note: kubectl not found; manifest tests will fail" >&2

if ((${#need_apt[@]})); then
    echo "installing: ${need_apt[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    sudo_cmd=()
    [[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo)
    "${sudo_cmd[@]}" apt-get update -qq
    # --no-install-recommends: the prometheus package would otherwise pull node-exporter.
    "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi
