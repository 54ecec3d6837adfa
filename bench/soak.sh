#!/usr/bin/env bash
# Soak test: a release server holds 15,000 WebSocket sessions (spread over
# several switchboard-soak generator processes, each binding its own source
# addresses in 127.0.0.0/8) with steady room traffic for 10 minutes; the
# server's resident memory and open file descriptors are sampled into a CSV
# all along; then every client leaves, and the script checks that memory
# and descriptors come back near where they started.
#
#   bench/soak.sh                      # 15,000 clients, 10 minutes
#   bench/soak.sh --minutes 3          # shorter hold
#   bench/soak.sh --clients 3000 --procs 1 --minutes 1   # a quick look
#
# Not part of ./test.sh. Writes bench/results/soak-<UTC time>.csv and a
# .json summary beside it; exits non-zero when a check fails. Publish-to-ack
# latency is reported for publishes sent during the hold (ack_ms_*) and,
# apart, for those sent while clients were still connecting (ramp_ack_ms_*).
set -euo pipefail
cd "$(dirname "$0")/.."

MINUTES=10
CLIENTS=15000
PROCS=3
ROOMS=500
PUBLISH_EVERY=60
SAMPLE_EVERY=5
PORT=7090
while [ $# -gt 0 ]; do
    case "$1" in
        --minutes) MINUTES="$2"; shift 2 ;;
        --clients) CLIENTS="$2"; shift 2 ;;
        --procs) PROCS="$2"; shift 2 ;;
        --rooms) ROOMS="$2"; shift 2 ;;
        --publish-every) PUBLISH_EVERY="$2"; shift 2 ;;
        --port) PORT="$2"; shift 2 ;;
        *) echo "unknown flag $1" >&2; exit 2 ;;
    esac
done
PER_PROC=$(( (CLIENTS + PROCS - 1) / PROCS ))
if [ "$PER_PROC" -gt 19000 ]; then
    echo "$PER_PROC clients per process is over the 20,000 descriptors a process may hold; use more --procs" >&2
    exit 2
fi
GRACE=10

cargo build --release -q -p switchboard -p switchboard-soak
mkdir -p bench/results
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
CSV="bench/results/soak-$STAMP.csv"
SUMMARY="bench/results/soak-$STAMP.json"
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT

# The server needs a descriptor per client and some.
ulimit -n "$(ulimit -Hn)"
SWITCHBOARD_STORE=sqlite SWITCHBOARD_DATA_DIR="$WORK/data" SWITCHBOARD_GRACE=${GRACE}s \
    target/release/switchboard serve --listen "127.0.0.1:$PORT" --log warn >"$WORK/server.log" 2>&1 &
SERVER=$!
for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break
    sleep 0.1
done

PHASE=start
echo "seconds,phase,rss_kib,fds,sessions,ws_connections" >"$CSV"
T0=$(date +%s.%N)
sample() {
    local rss fds metrics sessions ws
    rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$SERVER/status" 2>/dev/null || echo 0)
    fds=$(ls "/proc/$SERVER/fd" 2>/dev/null | wc -l)
    metrics=$(curl -s --max-time 2 "http://127.0.0.1:$PORT/metrics" || true)
    sessions=$(awk '/^switchboard_sessions / {print $2}' <<<"$metrics")
    ws=$(awk '/^switchboard_connections\{transport="ws"\} / {print $2}' <<<"$metrics")
    printf '%s,%s,%s,%s,%s,%s\n' "$(awk -v t0="$T0" -v now="$(date +%s.%N)" 'BEGIN { printf "%.1f", now - t0 }')" \
        "$PHASE" "$rss" "$fds" "${sessions:-0}" "${ws:-0}" >>"$CSV"
}
column() { # column NAME PHASE... -> values of that column in those phases
    local name=$1; shift
    python3 - "$CSV" "$name" "$@" <<'EOF'
import csv, sys
path, name, phases = sys.argv[1], sys.argv[2], sys.argv[3:]
for row in csv.DictReader(open(path)):
    if row["phase"] in phases:
        print(row[name])
EOF
}

for _ in 1 2 3; do sample; sleep 1; done
RSS_START=$(column rss_kib start | sort -n | tail -1)
FDS_START=$(column fds start | sort -n | tail -1)

# The generators: two source addresses each.
GENS=()
for p in $(seq 0 $((PROCS - 1))); do
    a=$((2 + 2 * p)); b=$((3 + 2 * p))
    target/release/switchboard-soak --server "127.0.0.1:$PORT" --clients "$PER_PROC" \
        --source "127.0.0.$a" --source "127.0.0.$b" --rooms "$ROOMS" --id "$p" \
        --publish-every "$PUBLISH_EVERY" --minutes "$MINUTES" \
        >"$WORK/gen$p.json" 2>"$WORK/gen$p.log" &
    GENS+=($!)
done
PHASE=ramp
running() { for g in "${GENS[@]}"; do kill -0 "$g" 2>/dev/null && return 0; done; return 1; }
while running; do
    if [ "$PHASE" = ramp ] && [ "$(cat "$WORK"/gen*.log | grep -c 'sessions open after')" -ge "$PROCS" ]; then
        PHASE=hold
    fi
    sample
    sleep "$SAMPLE_EVERY"
done
for g in "${GENS[@]}"; do wait "$g" || true; done
# Everyone left; sessions end after the grace period.
PHASE=after
END=$(( $(date +%s) + GRACE + 30 ))
while [ "$(date +%s)" -lt "$END" ]; do sample; sleep "$SAMPLE_EVERY"; done

RSS_PEAK=$(column rss_kib ramp hold | sort -n | tail -1)
FDS_PEAK=$(column fds ramp hold | sort -n | tail -1)
RSS_END=$(column rss_kib after | tail -1)
FDS_END=$(column fds after | tail -1)
SESSIONS_END=$(column sessions after | tail -1)
kill -TERM "$SERVER"; wait "$SERVER" || true

set +e
python3 - "$SUMMARY" "$WORK" "$CLIENTS" "$PROCS" "$MINUTES" "$RSS_START" "$RSS_PEAK" "$RSS_END" "$FDS_START" "$FDS_PEAK" "$FDS_END" "$SESSIONS_END" <<'EOF'
import glob, json, os, sys
out, work = sys.argv[1], sys.argv[2]
clients, procs, minutes, rss0, rssp, rss1, fd0, fdp, fd1, sessions = sys.argv[3:]
gens = [json.loads(open(p).read().strip().splitlines()[-1]) for p in sorted(glob.glob(os.path.join(work, "gen*.json")))]
total = {k: sum(g.get(k, 0) for g in gens) for k in ["opened", "failed", "dropped", "sent", "acked", "received", "gaps", "errors"]}
rss0, rssp, rss1, fd0, fdp, fd1 = map(int, [rss0, rssp, rss1, fd0, fdp, fd1])
growth = rssp - rss0
checks = {
    "all clients connected": total["opened"] == int(clients) and total["failed"] == 0,
    "no session dropped by the server": total["dropped"] == 0,
    "every publish acknowledged": total["acked"] == total["sent"],
    "no gap": total["gaps"] == 0,
    "descriptors back near the start (+16)": fd1 <= fd0 + 16,
    "memory back near the start (+64 MiB or a quarter of the growth)": rss1 <= rss0 + max(64 * 1024, growth // 4),
    "every session ended": float(sessions or 0) == 0,
}
summary = {
    "clients": int(clients), "processes": procs, "minutes": float(minutes),
    "rss_kib": {"start": rss0, "peak": rssp, "end": rss1, "per_session_at_peak": round(growth / max(1, int(clients)), 2)},
    "fds": {"start": fd0, "peak": fdp, "end": fd1},
    "traffic": total,
    "ack_ms_p50_max_of_processes": max((g.get("ack_ms_p50", 0) for g in gens), default=0),
    "ack_ms_p99_max_of_processes": max((g.get("ack_ms_p99", 0) for g in gens), default=0),
    "ack_ms_max": max((g.get("ack_ms_max", 0) for g in gens), default=0),
    # Publishes sent while the process's clients were still connecting,
    # when the ramp's connects fill the machine.
    "ramp_acks": sum(g.get("ramp_ack_ms_count", 0) for g in gens),
    "ramp_ack_ms_p99_max_of_processes": max((g.get("ramp_ack_ms_p99", 0) for g in gens), default=0),
    "checks": checks,
}
json.dump(summary, open(out, "w"), indent=2)
print(json.dumps(summary, indent=2))
sys.exit(0 if all(checks.values()) else 1)
EOF
STATUS=$?
echo "samples: $CSV"
echo "summary: $SUMMARY"
exit $STATUS
