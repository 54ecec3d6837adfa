#!/usr/bin/env bash
# Runs the browser tests of the JavaScript client in Debian's Chromium.
# Installs what is missing (Chromium from apt, playwright-core and
# typescript from package-lock.json), type-checks a usage of the client's
# declarations (types/usage.ts), builds the server, then runs every
# *.test.js with Node's test runner. Extra arguments go to `node --test`
# (e.g. --test-name-pattern=websocket).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)

if [ ! -x /usr/bin/chromium ]; then
  echo "run.sh: installing Debian's chromium" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq chromium >/dev/null
fi
if [ ! -d "$here/node_modules/playwright-core" ] || [ ! -d "$here/node_modules/typescript" ]; then
  (cd "$here" && npm ci --no-audit --no-fund)
fi
echo "run.sh: tsc --noEmit -p types (clients/js/switchboard.d.ts against types/usage.ts)" >&2
"$here/node_modules/.bin/tsc" --noEmit -p "$here/types"
(cd "$repo" && cargo build -p switchboard)

cd "$here"
# One file at a time: each starts its own browser and servers, and the
# timing-sensitive tests should not fight over two cores.
exec node --test --test-concurrency=1 "$@" ./*.test.js
