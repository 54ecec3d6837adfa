#!/usr/bin/env bash
# Runs every test of the project: the Rust workspace (unit and black-box
# integration tests over real sockets) and the browser tests (Debian's
# chromium driven by playwright-core). Installs what is missing.
set -euo pipefail
cd "$(dirname "$0")"

if ! cargo nextest --version >/dev/null 2>&1; then
    cargo install cargo-nextest --locked
fi

cargo nextest run --workspace --no-fail-fast --profile ci

if [ -f tests/browser/run.sh ]; then
    bash tests/browser/run.sh
fi
