#!/usr/bin/env bash
# Runs every benchmark scenario against Switchboard and its peers
# (socketioxide, socket.io on Node, nginx + nchan), writes the raw JSON
# results to bench/results/ and regenerates BENCHMARKS.md.
#
#   bench/run.sh            # the full run (about 15-20 minutes)
#   bench/run.sh --quick    # a short smoke run of every scenario (into bench/run/, git-ignored)
#   bench/run.sh --only fanout   # only the scenarios whose name contains "fanout"
#   bench/run.sh --only cluster  # only the two-node (Redis) scenarios and their one-node baseline
#
# Installs what is missing: nginx + libnginx-mod-nchan (apt-get), the Node
# peer's packages (npm ci), the socketioxide peer, redis-server (apt-get),
# the release builds (cargo); a peer only when a scenario of this run needs
# it. Not part of ./test.sh.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
QUICK=0
ONLY=""
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --only) ONLY="$2"; shift ;;
    *) echo "usage: bench/run.sh [--quick] [--only PATTERN]" >&2; exit 2 ;;
  esac
  shift
done

RUN=$ROOT/bench/run            # logs and nginx's runtime files (git-ignored)
RESULTS=$ROOT/bench/results
REPORT=$ROOT/BENCHMARKS.md
if [ "$QUICK" = 1 ]; then
  # A smoke run leaves the committed results and BENCHMARKS.md alone.
  RESULTS=$RUN/quick-results
  REPORT=$RUN/BENCHMARKS-quick.md
fi
BENCH=$ROOT/target/release/switchboard-bench
SWITCHBOARD=$ROOT/target/release/switchboard
SIOXIDE_DIR=$ROOT/bench/peers/socketioxide
SIOXIDE=$SIOXIDE_DIR/target/release/bench-peer-socketioxide
NODE_DIR=$ROOT/bench/peers/socketio-node
NCHAN_CONF=$ROOT/bench/peers/nchan/nginx.conf
mkdir -p "$RESULTS" "$RUN"
ulimit -n 20000

log() { printf '\n=== %s\n' "$*" >&2; }

# ---------------------------------------------------------------- install
install() {
  log "building Switchboard and the load generator (release)"
  cargo build --release -q -p switchboard -p switchboard-bench
}

# ensure_peer NAME: installs or builds what NAME needs, once per run.
ENSURED=" "
ensure_peer() {
  case "$ENSURED" in *" $1 "*) return 0 ;; esac
  case "$1" in
    nchan)
      if ! command -v nginx >/dev/null || [ ! -f /usr/lib/nginx/modules/ngx_nchan_module.so ]; then
        log "installing nginx and nchan"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx libnginx-mod-nchan >/dev/null
      fi ;;
    socketio-node)
      if [ ! -d "$NODE_DIR/node_modules/socket.io" ]; then
        log "installing the socket.io peer"
        (cd "$NODE_DIR" && npm ci --no-audit --no-fund --silent)
      fi ;;
    socketioxide)
      log "building the socketioxide peer (release)"
      CARGO_TARGET_DIR=$SIOXIDE_DIR/target cargo build --release -q --manifest-path "$SIOXIDE_DIR/Cargo.toml" ;;
    redis)
      if ! command -v redis-server >/dev/null; then
        log "installing redis-server"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
      fi ;;
  esac
  ENSURED="$ENSURED$1 "
}

# ---------------------------------------------------------------- servers
SERVER_PID=""
SERVER_PORT=""

wait_port() {
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "nothing listens on port $1" >&2
  return 1
}

start_server() {
  local name=$1
  ensure_peer "$name"
  case "$name" in
    switchboard)
      SERVER_PORT=7070
      rm -rf "$RUN/data"
      # Memory history store; rate and connection limits out of the way.
      SWITCHBOARD_LISTEN=127.0.0.1:7070 SWITCHBOARD_STORE=memory SWITCHBOARD_DATA_DIR="$RUN/data" \
      SWITCHBOARD_RATE_MESSAGES=1000000000.0 SWITCHBOARD_RATE_JOINS=1000000000.0 SWITCHBOARD_RATE_TYPING=1000000000.0 \
      SWITCHBOARD_MAX_CONNECTIONS_PER_IP=1000000 SWITCHBOARD_MAX_SESSIONS=1000000 SWITCHBOARD_LOG=warn \
        "$SWITCHBOARD" serve >"$RUN/switchboard.log" 2>&1 &
      SERVER_PID=$! ;;
    socketioxide)
      SERVER_PORT=7081
      "$SIOXIDE" 127.0.0.1:7081 >"$RUN/socketioxide.log" 2>&1 &
      SERVER_PID=$! ;;
    socketio-node)
      SERVER_PORT=7082
      node "$NODE_DIR/server.js" 127.0.0.1:7082 >"$RUN/socketio-node.log" 2>&1 &
      SERVER_PID=$! ;;
    nchan)
      SERVER_PORT=7083
      rm -rf "$RUN/nchan"; mkdir -p "$RUN/nchan/tmp"
      nginx -p "$RUN/nchan" -c "$NCHAN_CONF" -g 'daemon off;' >"$RUN/nchan.log" 2>&1 &
      SERVER_PID=$! ;;
  esac
  wait_port "$SERVER_PORT"
  sleep 0.5
}

stop_server() {
  if [ -n "$SERVER_PID" ]; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
  fi
  sleep 1   # let the kernel reap the sockets
}

# Two Switchboard nodes on a private Redis (a redis-server of this run on
# its own port, stopped by its PID like the nodes).
REDIS_PORT=7379
NODE_PORTS=(7071 7072)
REDIS_PID=""
NODE_PIDS=()

start_cluster() {
  ensure_peer redis
  if (exec 3<>"/dev/tcp/127.0.0.1/$REDIS_PORT") 2>/dev/null; then
    echo "port $REDIS_PORT is taken; the benchmark's Redis needs it" >&2
    return 1
  fi
  rm -rf "$RUN/redis"; mkdir -p "$RUN/redis"
  # Append-only file fsynced every second: the setting docs/deploy.md
  # suggests short of `always`.
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly yes --appendfsync everysec \
    --dir "$RUN/redis" >"$RUN/redis.log" 2>&1 &
  REDIS_PID=$!
  wait_port "$REDIS_PORT"
  NODE_PIDS=()
  for port in "${NODE_PORTS[@]}"; do
    SWITCHBOARD_RATE_MESSAGES=1000000000.0 SWITCHBOARD_RATE_JOINS=1000000000.0 SWITCHBOARD_RATE_TYPING=1000000000.0 \
    SWITCHBOARD_MAX_CONNECTIONS_PER_IP=1000000 SWITCHBOARD_MAX_SESSIONS=1000000 SWITCHBOARD_LOG=warn \
      "$SWITCHBOARD" serve --listen "127.0.0.1:$port" --advertise "127.0.0.1:$port" \
        --broker redis --redis-url "redis://127.0.0.1:$REDIS_PORT" >"$RUN/node-$port.log" 2>&1 &
    NODE_PIDS+=("$!")
  done
  for port in "${NODE_PORTS[@]}"; do wait_port "$port"; done
  sleep 0.5
}

stop_pid() {
  kill -TERM "$1" 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

stop_cluster() {
  for pid in "${NODE_PIDS[@]}"; do stop_pid "$pid"; done
  NODE_PIDS=()
  if [ -n "$REDIS_PID" ]; then stop_pid "$REDIS_PID"; REDIS_PID=""; fi
  sleep 1
}
trap 'stop_server; stop_cluster' EXIT

version_of() {
  case "$1" in
    switchboard) "$SWITCHBOARD" --version | awk '{print $2}' ;;
    socketioxide) awk '/name = "socketioxide"/{getline; gsub(/[" ]/,""); sub("version=",""); print; exit}' "$SIOXIDE_DIR/Cargo.lock" ;;
    socketio-node) node -p "require('$NODE_DIR/node_modules/socket.io/package.json').version + ' (Node ' + process.versions.node + ')'" 2>/dev/null || echo "not installed" ;;
    nchan) echo "nginx $(nginx -v 2>&1 | sed 's|.*/||'), nchan $(dpkg-query -W -f='${Version}' libnginx-mod-nchan 2>/dev/null)" ;;
  esac
}

# bench NAME SERVER ARGS...: one scenario against a freshly started server.
bench() {
  local name=$1 server=$2; shift 2
  if [ -n "$ONLY" ] && [[ "$name" != *"$ONLY"* ]]; then return 0; fi
  log "$name"
  start_server "$server"
  "$BENCH" run --server "$server" --server-version "$(version_of "$server")" \
    --url "http://127.0.0.1:$SERVER_PORT" --server-pid "$SERVER_PID" \
    --out "$RESULTS/$name.json" "$@" || echo "(bench $name failed)" >&2
  stop_server
}

# bench_cluster NAME ARGS...: one scenario against two fresh nodes on a
# fresh Redis; ARGS say which node the clients use (--url, --publish-url).
# The server CPU and memory figures count both nodes and Redis.
bench_cluster() {
  local name=$1; shift
  if [ -n "$ONLY" ] && [[ "$name" != *"$ONLY"* ]]; then return 0; fi
  log "$name"
  start_cluster
  "$BENCH" run --server switchboard --server-version "$(version_of switchboard), redis $(redis-server --version | awk '{print $3}' | tr -d v=), 2 nodes" \
    --server-pid "${NODE_PIDS[0]}" --server-pid "${NODE_PIDS[1]}" --server-pid "$REDIS_PID" \
    --out "$RESULTS/$name.json" "$@" || echo "(bench $name failed)" >&2
  stop_cluster
}

# ---------------------------------------------------------------- parameters
if [ "$QUICK" = 1 ]; then
  IDLE=1000; SETTLE=1
  ECHO_CLIENTS=20; ECHO_RATE=1000; FIXED_SECS=2
  ECHO_RAMP=1000,4000,16000; STEP_SECS=2
  SUBS=200; PUBS=4; FAN_RATE=50; FAN_RAMP=50,200,800
  HTTP_RATE=50; HTTP_RAMP=50,200
  CHURN=10; CHURN_SECS=2
  GROWTH_IDLE="200 1000"; GROWTH_ROOMS="10 100"; GROWTH_DELIVERIES=5000
else
  IDLE=10000; SETTLE=3
  ECHO_CLIENTS=100; ECHO_RATE=5000; FIXED_SECS=10
  ECHO_RAMP=2000,5000,10000,20000,40000,60000,80000,100000,120000,150000,200000,250000,300000,400000,500000,600000,800000,1000000,1200000; STEP_SECS=4
  SUBS=1000; PUBS=10; FAN_RATE=100
  FAN_RAMP=50,100,200,400,700,1000,1200,1500,2000,2500,3000
  HTTP_RATE=100; HTTP_RAMP=25,50,75,100,150,200,300,400,500,700,1000,1500,2000,2500,3000
  CHURN=50; CHURN_SECS=10
  GROWTH_IDLE="1000 10000 18000"; GROWTH_ROOMS="10 100 1000 10000"; GROWTH_DELIVERIES=50000
fi
COMMON=(--processes 2 --timeout 300)
RAMP=(--step "$STEP_SECS" --drain-ms 1000)

# ---------------------------------------------------------------- run
install
if [ -z "$ONLY" ]; then
  rm -f "$RESULTS"/*.json "$RESULTS"/*.svg
  for peer in nchan socketio-node socketioxide redis; do ensure_peer "$peer"; done
fi
if [ -n "$ONLY" ] && [ -f "$RESULTS/meta.json" ]; then
  # A partial re-run: keep the full run's metadata, note the re-run.
  python3 - "$RESULTS/meta.json" "$ONLY" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$(uptime | sed 's/^ *//')" <<'PY'
import json, sys
path, only, date, up = sys.argv[1:5]
meta = json.load(open(path))
meta.setdefault("reruns", []).append({"only": only, "date": date, "uptime_before": up})
json.dump(meta, open(path, "w"), indent=2)
PY
else
cat >"$RESULTS/meta.json" <<JSON
{
  "quick": $([ "$QUICK" = 1 ] && echo true || echo false),
  "date": "$(date -u +%Y-%m-%dT%H:%M:%SZ)",
  "uptime_before": "$(uptime | sed 's/^ *//')",
  "loadavg_before": "$(cut -d' ' -f1-3 /proc/loadavg)",
  "cpu": "$(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')",
  "cores": $(nproc),
  "memory": "$(free -h | awk '/Mem:/{print $2}')",
  "kernel": "$(uname -r)",
  "rustc": "$(rustc --version)",
  "versions": {
    "switchboard": "$(version_of switchboard)",
    "socketioxide": "$(version_of socketioxide)",
    "socketio-node": "$(version_of socketio-node)",
    "nchan": "$(version_of nchan)"
  }
}
JSON
fi
log "load before the run: $(uptime)"

# Idle connections: server memory per connection.
IDLE_ARGS=(--scenario idle --clients "$IDLE" --settle "$SETTLE" "${COMMON[@]}")
bench idle-switchboard-native-ws       switchboard   "${IDLE_ARGS[@]}" --protocol native-ws
bench idle-switchboard-native-sse      switchboard   "${IDLE_ARGS[@]}" --protocol native-sse
bench idle-switchboard-native-longpoll switchboard   "${IDLE_ARGS[@]}" --protocol native-longpoll
bench idle-switchboard-socketio-ws     switchboard   "${IDLE_ARGS[@]}" --protocol socketio-ws
bench idle-socketioxide-socketio-ws    socketioxide  "${IDLE_ARGS[@]}" --protocol socketio-ws
bench idle-socketio-node-socketio-ws   socketio-node "${IDLE_ARGS[@]}" --protocol socketio-ws
bench idle-nchan-nchan-sse             nchan         "${IDLE_ARGS[@]}" --protocol nchan-sse
bench idle-nchan-nchan-longpoll        nchan         "${IDLE_ARGS[@]}" --protocol nchan-longpoll

# Echo at a fixed rate, then the saturation ramp.
ECHO_ARGS=(--scenario echo --clients "$ECHO_CLIENTS" --rate "$ECHO_RATE" --duration "$FIXED_SECS" "${COMMON[@]}")
ERAMP_ARGS=(--scenario echo-ramp --clients "$ECHO_CLIENTS" --rates "$ECHO_RAMP" "${RAMP[@]}" "${COMMON[@]}")
for target in "switchboard native-ws" "switchboard socketio-ws" "socketioxide socketio-ws" "socketio-node socketio-ws"; do
  set -- $target
  bench "echo-$1-$2" "$1" "${ECHO_ARGS[@]}" --protocol "$2"
  bench "echo-ramp-$1-$2" "$1" "${ERAMP_ARGS[@]}" --protocol "$2"
done

# Room fan-out over WebSocket: fixed rate, then the ramp.
FAN_ARGS=(--scenario fanout --clients "$SUBS" --publishers "$PUBS" --rate "$FAN_RATE" --duration "$FIXED_SECS" "${COMMON[@]}")
FRAMP_ARGS=(--scenario fanout-ramp --clients "$SUBS" --publishers "$PUBS" --rates "$FAN_RAMP" "${RAMP[@]}" "${COMMON[@]}")
for target in "switchboard native-ws" "switchboard socketio-ws" "socketioxide socketio-ws" "socketio-node socketio-ws"; do
  set -- $target
  bench "fanout-$1-$2" "$1" "${FAN_ARGS[@]}" --protocol "$2"
  bench "fanout-ramp-$1-$2" "$1" "${FRAMP_ARGS[@]}" --protocol "$2"
done

# Fan-out to SSE and long-poll subscribers, against nchan. 4 generator
# processes: an HTTP subscriber costs the generator more per message than a
# WebSocket one, and with 2 processes of 500 streams each a process fell
# behind on some of its streams, which showed as the server's latency
# (bench/NOTES.md, SSE section).
HTTP_COMMON=(--processes 4 --timeout 300)
HFAN_ARGS=(--scenario fanout --clients "$SUBS" --publishers "$PUBS" --rate "$HTTP_RATE" --duration "$FIXED_SECS" "${HTTP_COMMON[@]}")
HRAMP_ARGS=(--scenario fanout-ramp --clients "$SUBS" --publishers "$PUBS" --rates "$HTTP_RAMP" "${RAMP[@]}" "${HTTP_COMMON[@]}")
for target in "switchboard native-sse" "switchboard native-longpoll" "nchan nchan-sse" "nchan nchan-longpoll"; do
  set -- $target
  bench "httpfanout-$1-$2" "$1" "${HFAN_ARGS[@]}" --protocol "$2"
  bench "httpfanout-ramp-$1-$2" "$1" "${HRAMP_ARGS[@]}" --protocol "$2"
done

# Connection churn: connect, handshake, close, by concurrent loops.
CHURN_ARGS=(--scenario churn --clients "$CHURN" --duration "$CHURN_SECS" "${COMMON[@]}")
for target in "switchboard native-ws" "switchboard socketio-ws" "socketioxide socketio-ws" "socketio-node socketio-ws"; do
  set -- $target
  bench "churn-$1-$2" "$1" "${CHURN_ARGS[@]}" --protocol "$2"
done

# How cost grows: memory per idle connection as connections grow, CPU per
# delivery as the room grows (same deliveries/s at every size).
for target in "switchboard native-ws" "socketioxide socketio-ws"; do
  set -- $target
  for n in $GROWTH_IDLE; do
    bench "growth-idle-$n-$1-$2" "$1" --scenario idle --clients "$n" --settle "$SETTLE" "${COMMON[@]}" --protocol "$2"
  done
  for size in $GROWTH_ROOMS; do
    bench "growth-room-$size-$1-$2" "$1" --scenario fanout --clients "$size" --publishers "$PUBS" \
      --rate "$((GROWTH_DELIVERIES / size))" --duration "$FIXED_SECS" "${COMMON[@]}" --protocol "$2"
  done
done

# Many nodes: two nodes on Redis against one node in process, same room
# fan-out. Latency: publishers on node A, every subscriber on node B, so
# every delivery crosses nodes. Throughput: clients spread over both nodes
# (worker 1 on A, worker 2 on B), against the one-node ramp.
NODE_A=http://127.0.0.1:${NODE_PORTS[0]}
NODE_B=http://127.0.0.1:${NODE_PORTS[1]}
CFAN_ARGS=(--protocol native-ws "${FAN_ARGS[@]}")
CRAMP_ARGS=(--protocol native-ws "${FRAMP_ARGS[@]}")
bench         cluster-fanout-switchboard-native-ws-1node       switchboard "${CFAN_ARGS[@]}"
bench_cluster cluster-fanout-switchboard-native-ws-2nodes      "${CFAN_ARGS[@]}" --url "$NODE_B" --publish-url "$NODE_A"
bench         cluster-fanout-ramp-switchboard-native-ws-1node  switchboard "${CRAMP_ARGS[@]}"
bench_cluster cluster-fanout-ramp-switchboard-native-ws-2nodes "${CRAMP_ARGS[@]}" --url "$NODE_A,$NODE_B"

log "load after the run: $(uptime)"
python3 "$ROOT/bench/report.py" "$RESULTS" "$REPORT"
log "wrote $REPORT"
