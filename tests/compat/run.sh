#!/usr/bin/env bash
# Runs the compatibility suites: the real socket.io and SockJS clients (Node,
# and headless Chromium where a suite drives one) against the server binary.
# Installs the npm packages when missing and builds the binary first.
set -euo pipefail
cd "$(dirname "$0")"

# The SockJS browser suite drives Debian's Chromium (never a downloaded one).
if [ -z "${CHROMIUM:-}" ] && ! [ -x /usr/bin/chromium ]; then
    apt-get update -qq && apt-get install -y -qq chromium
fi
if [ ! -d node_modules ]; then
    npm ci --no-audit --no-fund
fi
# The server binary, and the fixture of the socket.io protocol suite
# (socketio-protocol.test.mjs): the library set up as that suite expects.
(cd ../.. && cargo build -p switchboard && cargo build -p switchboard-socketio --example protocol_suite_server)

shopt -s nullglob
files=(./*.test.mjs ./*.test.js)
node --test --test-concurrency=1 "${files[@]}"
