#!/usr/bin/env bash
# The whole test suite: installs what the tests need, then runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
# test-hooks: the crash tests abort the binary between an acknowledgement and the checkpoint.
cargo test --locked --all-targets --features test-hooks "$@"
