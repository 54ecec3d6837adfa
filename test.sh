#!/usr/bin/env bash
# Runs every test of the project:
#   1. the Rust workspace: unit tests and black-box integration tests over
#      real sockets (single node, many nodes on real Redis);
#   2. the browser tests of the JavaScript client and the demo chat
#      (Debian's chromium driven by playwright-core);
#   3. the compatibility suites with the real socket.io and SockJS clients.
# Installs what is missing (cargo-nextest, chromium, npm packages) and starts
# Redis on 127.0.0.1:6379 when it is not running. Every suite runs even when
# an earlier one failed; the exit status is non-zero when any failed.
set -uo pipefail
cd "$(dirname "$0")"

if ! cargo nextest --version >/dev/null 2>&1; then
    cargo install cargo-nextest --locked || exit 1
fi
if ! redis-cli -p 6379 ping >/dev/null 2>&1; then
    if ! command -v redis-server >/dev/null; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server
    fi
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
    sleep 0.5
fi

passed=0
failed=0
run() {
    echo "=== $1"
    shift
    if "$@"; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
}

run "Rust workspace" cargo nextest run --workspace --no-fail-fast --profile ci
run "browser (JS client, demo chat)" bash tests/browser/run.sh
run "compatibility (socket.io, SockJS clients)" bash tests/compat/run.sh

echo "test suites: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
