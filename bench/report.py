#!/usr/bin/env python3
"""Regenerates BENCHMARKS.md from bench/results/*.json (written by
bench/run.sh). Standard library only; the plots are SVG written by hand,
so nothing is fetched.

    python3 bench/report.py bench/results BENCHMARKS.md
"""
import glob
import json
import math
import os
import sys

PEERS_WS = ["socketioxide", "socketio-node"]
LABEL = {
    "switchboard": "Switchboard",
    "socketioxide": "socketioxide",
    "socketio-node": "socket.io (Node)",
    "nchan": "nginx + nchan",
}
PROTO = {
    "native-ws": "native WebSocket",
    "native-sse": "native SSE",
    "native-stream": "native HTTP streaming",
    "native-longpoll": "native long polling",
    "socketio-ws": "socket.io WebSocket",
    "nchan-sse": "SSE",
    "nchan-longpoll": "long polling",
}
COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"]


def load(results):
    runs = {}
    for path in sorted(glob.glob(os.path.join(results, "*.json"))):
        name = os.path.basename(path)[:-5]
        if name == "meta":
            continue
        with open(path) as f:
            runs[name] = json.load(f)
    meta = {}
    meta_path = os.path.join(results, "meta.json")
    if os.path.exists(meta_path):
        with open(meta_path) as f:
            meta = json.load(f)
    return meta, runs


def who(run):
    return f"{LABEL.get(run['server'], run['server'])}, {PROTO.get(run['protocol'], run['protocol'])}"


def fmt(x, digits=0):
    if x is None:
        return "—"
    if isinstance(x, float) and math.isnan(x):
        return "—"
    if digits == 0:
        return f"{x:,.0f}"
    return f"{x:,.{digits}f}"


def ms(x):
    if x is None:
        return "—"
    if x < 10:
        return f"{x:.2f}"
    if x < 100:
        return f"{x:.1f}"
    return f"{x:,.0f}"


def ratio(a, b, lower_is_better=False):
    """Switchboard's figure a divided by the peer's b, with a word."""
    if a is None or b is None or a == 0 or b == 0:
        return "—"
    r = a / b
    if lower_is_better:
        word = "less" if r < 1 else "more"
        return f"{r:.2f}× ({1 / r:.1f}× {word})" if r < 1 else f"{r:.2f}× ({r:.1f}× {word})"
    return f"{r:.2f}×"


def cpu(step):
    v = step.get("server_cpu_us_per_delivery")
    return "—" if not v else f"{v:.2f}"


def load_of(run):
    la = run.get("loadavg_before")
    return "—" if not la else f"{la[0]:.1f}"


def result(run):
    return run.get("result") or {}


def failure(run):
    if run.get("error"):
        return run["error"]
    setup = result(run).get("setup") or {}
    if setup.get("failed"):
        return f"{setup['failed']} clients failed to connect (first: {setup.get('first_error')})"
    return None


def step0(run):
    steps = result(run).get("steps") or []
    return steps[0] if steps else None


def by_rate(run):
    """One step per rate tried, in order: the attempt that held, or the
    last attempt when none did (a failing step is retried, see --retries)."""
    out = []
    for s in result(run).get("steps") or []:
        if out and out[-1]["rate"] == s["rate"]:
            if not out[-1]["ok"]:
                out[-1] = s
        else:
            out.append(s)
    return out


def held(run):
    """The highest rate at which a step held."""
    res = result(run)
    if res.get("held_rate") is not None:
        return res["held_rate"]
    best = None
    for s in by_rate(run):
        if not s["ok"]:
            break
        best = s["rate"]
    return best


def first_fail(run):
    for s in by_rate(run):
        if not s["ok"]:
            return s
    return None


# ------------------------------------------------------------------ SVG
def svg_ramp(path, title, series, ylabel_left, ylabel_right, limit_ms=100.0):
    """Two panels: p99 latency vs offered rate, received/s vs offered."""
    W, H, M = 960, 380, 60
    pw = (W - 3 * M) / 2
    ph = H - 2 * M
    xs = [s["x"] for _, pts in series for s in pts]
    if not xs:
        return
    xmin, xmax = min(xs) / 1.3, max(xs) * 1.3
    lat = [s["p99"] for _, pts in series for s in pts if s["p99"] > 0]
    ymin_l = 10 ** math.floor(math.log10(max(min(lat + [limit_ms]) / 2, 0.01)))
    ymax_l = 10 ** math.ceil(math.log10(max(lat + [limit_ms]) * 1.5))
    thr = [s["got"] for _, pts in series for s in pts if s["got"] > 0] or xs
    ymin_r, ymax_r = min(thr) / 1.5, max(thr) * 1.5

    def lx(x, x0):
        return x0 + (math.log10(x) - math.log10(xmin)) / (math.log10(xmax) - math.log10(xmin)) * pw

    def ly(y, lo, hi):
        y = min(max(y, lo), hi)
        return M + ph - (math.log10(y) - math.log10(lo)) / (math.log10(hi) - math.log10(lo)) * ph

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" '
           'font-family="sans-serif" font-size="11">',
           f'<rect width="{W}" height="{H}" fill="white"/>',
           f'<text x="{W / 2}" y="18" text-anchor="middle" font-size="14">{title}</text>']

    def ticks(lo, hi):
        t = []
        e = math.floor(math.log10(lo))
        while 10 ** e <= hi * 1.0001:
            for m in (1, 2, 5):
                v = m * 10 ** e
                if lo <= v <= hi:
                    t.append(v)
            e += 1
        return t

    def label(v):
        if v >= 1e6:
            return f"{v / 1e6:g}M"
        if v >= 1e3:
            return f"{v / 1e3:g}k"
        return f"{v:g}"

    for panel, (x0, lo, hi, key, ylabel) in enumerate([
        (M, ymin_l, ymax_l, "p99", ylabel_left),
        (2 * M + pw, ymin_r, ymax_r, "got", ylabel_right),
    ]):
        out.append(f'<rect x="{x0}" y="{M}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>')
        for v in ticks(xmin, xmax):
            x = lx(v, x0)
            out.append(f'<line x1="{x:.1f}" y1="{M}" x2="{x:.1f}" y2="{M + ph}" stroke="#eee"/>')
            out.append(f'<text x="{x:.1f}" y="{M + ph + 14}" text-anchor="middle">{label(v)}</text>')
        for v in ticks(lo, hi):
            y = ly(v, lo, hi)
            out.append(f'<line x1="{x0}" y1="{y:.1f}" x2="{x0 + pw}" y2="{y:.1f}" stroke="#eee"/>')
            out.append(f'<text x="{x0 - 4}" y="{y + 4:.1f}" text-anchor="end">{label(v)}</text>')
        out.append(f'<text x="{x0 + pw / 2}" y="{M + ph + 32}" text-anchor="middle">offered rate (msg/s)</text>')
        out.append(f'<text x="{x0 - 44}" y="{M + ph / 2}" text-anchor="middle" '
                   f'transform="rotate(-90 {x0 - 44} {M + ph / 2})">{ylabel}</text>')
        if panel == 0:
            y = ly(limit_ms, lo, hi)
            out.append(f'<line x1="{x0}" y1="{y:.1f}" x2="{x0 + pw}" y2="{y:.1f}" stroke="#000" '
                       'stroke-dasharray="4 3"/>')
            out.append(f'<text x="{x0 + pw - 4}" y="{y - 4:.1f}" text-anchor="end">p99 limit {limit_ms:g} ms</text>')
        for i, (name, pts) in enumerate(series):
            color = COLORS[i % len(COLORS)]
            coords = [(lx(p["x"], x0), ly(max(p[key], lo), lo, hi), p) for p in pts if p["x"] > 0]
            if len(coords) > 1:
                d = " ".join(f"{x:.1f},{y:.1f}" for x, y, _ in coords)
                out.append(f'<polyline points="{d}" fill="none" stroke="{color}" stroke-width="2"/>')
            for x, y, p in coords:
                fill = color if p["ok"] else "white"
                out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="{fill}" stroke="{color}" stroke-width="1.5"/>')
    for i, (name, _) in enumerate(series):
        color = COLORS[i % len(COLORS)]
        y = 36 + 0 * i
        x = M + i * 220
        out.append(f'<rect x="{x}" y="{y - 9}" width="12" height="12" fill="{color}"/>')
        out.append(f'<text x="{x + 16}" y="{y + 1}">{name}</text>')
    out.append(f'<text x="{W - 10}" y="{H - 6}" text-anchor="end" fill="#666">'
               'filled: step held (p99 within limit, ≥ 97% delivered); hollow: it did not</text>')
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


def ramp_series(runs, names, per_delivery=1):
    series = []
    for name in names:
        run = runs.get(name)
        if not run or not result(run).get("steps"):
            continue
        pts = [{"x": s["rate"], "p99": max(s["latency_ms"]["p99"], 0.001) if s["latency_ms"]["count"] else 1e5,
                "got": max(s["deliveries_per_s"] / per_delivery, 0.1), "ok": s["ok"]}
               for s in by_rate(run)]
        series.append((who(run), pts))
    return series


# ------------------------------------------------------------------ cluster
def cluster_label(name):
    if name.endswith("-2nodes"):
        return "2 nodes on Redis"
    if name.endswith("-1node"):
        return "1 node, in process"
    return name


def cluster(runs, results, rel, w):
    """Two nodes on Redis against one node in process (bench/run.sh, the
    `cluster-*` scenarios)."""
    fixed = {n: r for n, r in runs.items() if n.startswith("cluster-fanout-") and "-ramp-" not in n}
    ramps = {n: r for n, r in runs.items() if n.startswith("cluster-fanout-ramp-")}
    if not fixed and not ramps:
        return
    w("## Many nodes on Redis")
    w("")
    w("The room fan-out (native WebSocket) on **two Switchboard nodes sharing one Redis** "
      "(`--broker redis`; history, fan-out and presence in Redis; Redis with an append-only file "
      "fsynced every second), against **one node in process** (memory store). Both nodes, Redis and "
      "the load generator share this machine's cores. The server CPU column counts both nodes and "
      "Redis. Every stored message goes through Redis on the way to every node, the publisher's "
      "own included.")
    w("")
    if fixed:
        w("**Cross-node delivery latency.** Two nodes: every publisher on node A, every subscriber "
          "on node B (`--publish-url A --url B`), so each delivery crosses nodes. Latency from the "
          "scheduled send to the subscriber's receipt.")
        w("")
        w("| setup | subscribers | rate | delivered | deliveries/s | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms "
          "| server CPU µs/delivery | load avg |")
        w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for n, r in sorted(fixed.items()):
            s = step0(r)
            if not s:
                w(f"| {cluster_label(n)} | — | — | — | — | — | — | — | — | {failure(r) or 'no result'} | — | — |")
                continue
            l = s["latency_ms"]
            w(f"| {cluster_label(n)} | {fmt(r['params']['clients'])} | {fmt(s['rate'])}/s | {s['delivered'] * 100:.1f}% "
              f"| {fmt(s['deliveries_per_s'])} | **{ms(l['p50'])}** | {ms(l['p90'])} | **{ms(l['p99'])}** "
              f"| {ms(l['p999'])} | {ms(l['max'])} | {cpu(s)} | {load_of(r)} |")
        w("")
    if ramps:
        w("**Fan-out throughput.** The fan-out ramp; on two nodes the clients are spread over both "
          "(half of the subscribers and publishers on each). A step holds when p99 ≤ 100 ms and "
          "≥ 97% arrived, as in the other ramps.")
        w("")
        w("| setup | held rate | held deliveries/s | sustained rate | first missed rate | rates tried "
          "| server CPU µs/delivery (last held step) | load avg |")
        w("|---|---:|---:|---:|---|---|---:|---:|")
        for n, r in sorted(ramps.items()):
            res = result(r)
            f = first_fail(r)
            h = held(r)
            fan = res.get("held_deliveries_per_s")
            ff = "none (every step held)" if not f else (
                f"{fmt(f['rate'])}/s: p99 {ms(f['latency_ms']['p99'])} ms, {f['delivered'] * 100:.1f}% delivered")
            if failure(r) and not res.get("steps"):
                ff = failure(r)
            tried = ", ".join(fmt(s["rate"]) + ("" if s["ok"] else "✗") for s in res.get("steps") or [])
            held_steps = [x for x in by_rate(r) if x["ok"] and h is not None and x["rate"] <= h]
            c = cpu(held_steps[-1]) if held_steps else "—"
            sus = res.get("delivered_rate")
            w(f"| {cluster_label(n)} | **{fmt(h)}**/s | {fmt(fan)} | {fmt(sus) + '/s' if sus else '—'} | {ff} "
              f"| {tried} | {c} | {load_of(r)} |")
        w("")
        one = [n for n in ramps if n.endswith("-1node")]
        two = [n for n in ramps if n.endswith("-2nodes")]
        if one and two:
            a, b = ramps[two[0]], ramps[one[0]]
            w(f"Two nodes on Redis against one node: held rate {ratio(held(a), held(b))}, "
              f"sustained rate {ratio(result(a).get('delivered_rate'), result(b).get('delivered_rate'))}.")
            w("")
        series = [(cluster_label(n), one[0][1]) for n in sorted(ramps) for one in [ramp_series(runs, [n], 1)] if one]
        if series:
            path = os.path.join(results, "cluster-fanout-ramp.svg")
            svg_ramp(path, "Room fan-out: 2 nodes on Redis vs 1 node", series,
                     "p99 latency from schedule (ms)", "received per second")
            w(f"![Room fan-out: 2 nodes on Redis vs 1 node]({rel}/cluster-fanout-ramp.svg)")
            w("")


# ------------------------------------------------------------------ targets
def svg_lines(path, title, series, xlabel, ylabel):
    """One panel, log-scale x, linear y from 0: a line per series of (x, y)."""
    W, H, M = 640, 340, 60
    pw, ph = W - 2 * M - 120, H - 2 * M
    xs = [x for _, pts in series for x, _ in pts]
    ys = [y for _, pts in series for _, y in pts]
    if not xs:
        return
    xmin, xmax = min(xs) / 1.5, max(xs) * 1.5
    ymax = max(ys) * 1.15 or 1

    def px(x):
        return M + (math.log10(x) - math.log10(xmin)) / (math.log10(xmax) - math.log10(xmin)) * pw

    def py(y):
        return M + ph - y / ymax * ph

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" '
           'font-family="sans-serif" font-size="11">',
           f'<rect width="{W}" height="{H}" fill="white"/>',
           f'<text x="{M}" y="20" font-size="13" font-weight="bold">{title}</text>',
           f'<rect x="{M}" y="{M}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>',
           f'<text x="{M + pw / 2}" y="{H - 15}" text-anchor="middle">{xlabel}</text>',
           f'<text x="15" y="{M + ph / 2}" transform="rotate(-90 15 {M + ph / 2})" text-anchor="middle">{ylabel}</text>']
    for x in sorted(set(xs)):
        out.append(f'<line x1="{px(x):.1f}" y1="{M + ph}" x2="{px(x):.1f}" y2="{M + ph + 4}" stroke="#999"/>')
        out.append(f'<text x="{px(x):.1f}" y="{M + ph + 16}" text-anchor="middle">{x:,.0f}</text>')
    for i in range(5):
        y = ymax * i / 4
        out.append(f'<line x1="{M - 4}" y1="{py(y):.1f}" x2="{M + pw}" y2="{py(y):.1f}" stroke="#eee"/>')
        out.append(f'<text x="{M - 6}" y="{py(y) + 4:.1f}" text-anchor="end">{y:,.1f}</text>')
    for k, (name, pts) in enumerate(series):
        color = COLORS[k % len(COLORS)]
        pts = sorted(pts)
        line = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in pts)
        out.append(f'<polyline points="{line}" fill="none" stroke="{color}" stroke-width="2"/>')
        for x, y in pts:
            out.append(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3" fill="{color}"/>')
        out.append(f'<text x="{M + pw + 10}" y="{M + 14 + 16 * k}" fill="{color}">{name}</text>')
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out))


def growth(runs, results, rel, w):
    """How memory per connection grows with connections, and CPU per
    delivery with room size (runs named growth-idle-N-... and growth-room-N-...)."""
    idle = {n: r for n, r in runs.items() if n.startswith("growth-idle-")}
    room = {n: r for n, r in runs.items() if n.startswith("growth-room-")}
    if not idle and not room:
        return
    w("## How cost grows")
    w("")
    if idle:
        w("Server memory per idle connection as the number of held connections grows (same method as")
        w("the idle scenario; 18,000 is as far as 20,000 open files per process allows the server).")
        w("")
        w("| server, transport | connections | bytes per connection | load avg |")
        w("|---|---:|---:|---:|")
        series = {}
        for n, r in sorted(idle.items(), key=lambda kv: (kv[1]["server"], kv[1]["params"]["clients"])):
            i = result(r).get("idle") or {}
            w(f"| {who(r)} | {fmt(r['params']['clients'])} | **{fmt(i.get('bytes_per_connection'))}**"
              f"{' (' + failure(r) + ')' if failure(r) else ''} | {load_of(r)} |")
            if i.get("bytes_per_connection"):
                series.setdefault(who(r), []).append((r["params"]["clients"], i["bytes_per_connection"] / 1000))
        w("")
        svg_lines(os.path.join(results, "growth-idle.svg"), "Memory per idle connection",
                  list(series.items()), "connections held", "KB per connection")
        w(f"![Memory per idle connection]({rel}/growth-idle.svg)")
        w("")
    if room:
        w("Room fan-out over WebSocket with the room size growing from 10 to 10,000 subscribers, the")
        w("publish rate chosen so that every size asks for 50,000 deliveries/s: server CPU per")
        w("delivered message (user + system time of the server process over the step, divided by")
        w("deliveries) and the server's resident memory at the end of the step.")
        w("")
        w("| server, transport | subscribers | publishes/s | delivered | p99 ms | server CPU µs/delivery | server RSS MB | load avg |")
        w("|---|---:|---:|---:|---:|---:|---:|---:|")
        series = {}
        for n, r in sorted(room.items(), key=lambda kv: (kv[1]["server"], kv[1]["params"]["clients"])):
            st = step0(r) or {}
            lat = st.get("latency_ms") or {}
            rss = st.get("server_rss_bytes") or result(r).get("server_rss_bytes")
            w(f"| {who(r)} | {fmt(r['params']['clients'])} | {fmt(st.get('rate'))} "
              f"| {fmt((st.get('delivered') or 0) * 100, 1)}%{' (' + failure(r) + ')' if failure(r) else ''} "
              f"| {ms(lat.get('p99'))} | **{cpu(st)}** | {fmt(rss / 1e6, 1) if rss else '—'} | {load_of(r)} |")
            if st.get("server_cpu_us_per_delivery"):
                series.setdefault(who(r), []).append((r["params"]["clients"], st["server_cpu_us_per_delivery"]))
        w("")
        svg_lines(os.path.join(results, "growth-room.svg"), "Server CPU per delivery by room size",
                  list(series.items()), "subscribers in the room", "µs of server CPU per delivery")
        w(f"![Server CPU per delivery by room size]({rel}/growth-room.svg)")
        w("")


def targets(runs, w):
    """Switchboard's targets (issue 8) against what this run measured."""
    rows = []

    def idle_bytes(name):
        r = runs.get(name)
        return r and (result(r).get("idle") or {}).get("bytes_per_connection")

    for name, label, limit in [
        ("idle-switchboard-native-ws", "idle WebSocket connection", 4096),
        ("idle-switchboard-native-sse", "idle SSE connection", 6144),
        ("idle-switchboard-native-longpoll", "idle long-poll connection", 6144),
        ("idle-switchboard-socketio-ws", "idle socket.io WebSocket connection", 4096),
    ]:
        b = idle_bytes(name)
        if b is not None:
            rows.append((f"{label} ≤ {limit // 1024} KB", f"{fmt(b)} B", b <= limit))

    def held_of(name):
        r = runs.get(name)
        return held(r) if r else None

    base = held_of("echo-ramp-socketioxide-socketio-ws")
    for name in ["echo-ramp-switchboard-native-ws", "echo-ramp-switchboard-socketio-ws"]:
        mine = held_of(name)
        if name in runs and base:
            r = (mine or 0) / base
            rows.append((f"echo saturation ≥ 2× socketioxide ({who(runs[name])})",
                         f"{fmt(mine)}/s vs {fmt(base)}/s = {r:.2f}×", r >= 2))
    base = held_of("fanout-ramp-socketioxide-socketio-ws")
    for name in ["fanout-ramp-switchboard-native-ws", "fanout-ramp-switchboard-socketio-ws"]:
        mine = held_of(name)
        if name in runs and base:
            r = (mine or 0) / base
            rows.append((f"fan-out saturation ≥ 2.5× socketioxide, p99 ≤ 100 ms ({who(runs[name])})",
                         f"{fmt(mine)}/s vs {fmt(base)}/s publishes = {r:.2f}×", r >= 2.5))
    for kind, label in [("sse", "SSE"), ("longpoll", "long polling")]:
        mine = held_of(f"httpfanout-ramp-switchboard-native-{kind}")
        base = held_of(f"httpfanout-ramp-nchan-nchan-{kind}")
        if mine is not None and base:
            r = mine / base
            rows.append((f"fan-out over {label} ≥ 5× nginx + nchan, p99 ≤ 100 ms",
                         f"{fmt(mine)}/s vs {fmt(base)}/s publishes = {r:.2f}×", r >= 5))
    if not rows:
        return
    w("## Targets")
    w("")
    w("| target | measured | met |")
    w("|---|---|---|")
    for label, measured, ok in rows:
        w(f"| {label} | {measured} | {'✅' if ok else '❌ missed'} |")
    w("")


# ------------------------------------------------------------------ report
def main():
    results = sys.argv[1] if len(sys.argv) > 1 else "bench/results"
    target = sys.argv[2] if len(sys.argv) > 2 else "BENCHMARKS.md"
    meta, runs = load(results)
    rel = os.path.relpath(results, os.path.dirname(os.path.abspath(target)) or ".")
    md = []
    w = md.append
    w("# Benchmarks")
    w("")
    w("Generated by `bench/report.py` from the raw results in `bench/results/`, written by")
    w("`bench/run.sh` (see `bench/README.md` for what each scenario does). Do not edit by hand.")
    w("")
    if meta.get("quick"):
        w("> **Quick smoke run** (`--quick`): small sizes and short steps; the figures below are")
        w("> not comparable with a full run.")
        w("")
    w("## Machine and versions")
    w("")
    w("| | |")
    w("|---|---|")
    for key, label in [("date", "date"), ("cpu", "CPU"), ("cores", "cores"), ("memory", "memory"),
                       ("kernel", "kernel"), ("rustc", "Rust"), ("uptime_before", "`uptime` before the run")]:
        if key in meta:
            w(f"| {label} | {meta[key]} |")
    for k, v in (meta.get("versions") or {}).items():
        w(f"| {LABEL.get(k, k)} | {v} |")
    for r in meta.get("reruns") or []:
        w(f"| re-run of the scenarios matching `{r['only']}` | {r['date']}, `uptime` before: {r['uptime_before']} |")
    w("")
    w("Everything runs on this one machine: the server under test and the load generator")
    w("(2 worker processes; 4 for the SSE and long-poll fan-out) share its cores, so every")
    w("figure is a figure of the pair. Each")
    w("scenario starts a fresh server. Switchboard runs as `target/release/switchboard serve`")
    w("with the memory history store and its rate and connection limits raised out of the way")
    w("(`SWITCHBOARD_STORE=memory`, `SWITCHBOARD_RATE_MESSAGES=1000000000.0`, ...; everything else default:")
    w("outbox 1024 frames, 256 KiB stream budget, 25 s heartbeats). The peers run with the same")
    w("three handlers (`echo`, `join`, `publish`): socketioxide on axum, socket.io on Node, and")
    w("nginx + nchan with 2 worker processes (`bench/peers/`). Latency is counted from the")
    w("**scheduled** send time (open loop), so a generator or server that falls behind shows it;")
    w("the latency from the actual send is in the JSON (`send_latency_ms`). The **server CPU per")
    w("delivery** (user + system time of the server's processes during the step, from `/proc`,")
    w("divided by the messages the clients received) is the figure that depends least on what")
    w("else the machine was doing; the **load avg** column is the 1-minute load average when that")
    w("scenario started (2 cores: anything above ~2 means the run shared the CPUs with other work).")
    w("")

    # ---------------- idle
    idle = {n: r for n, r in runs.items() if n.startswith("idle-")}
    if idle:
        w("## Idle connections: server memory per connection")
        w("")
        w("Server RSS (`VmRSS` of the process and its children) before the connections and "
          "after they are all open and settled, divided by the number of connections.")
        w("")
        w("| server, transport | connections | RSS before | RSS after | bytes per connection |")
        w("|---|---:|---:|---:|---:|")
        for n, r in sorted(idle.items()):
            i = result(r).get("idle") or {}
            err = failure(r)
            w(f"| {who(r)} | {fmt(i.get('connections'))} | {fmt((i.get('rss_before') or 0) / 1048576, 1)} MiB "
              f"| {fmt((i.get('rss_after') or 0) / 1048576, 1)} MiB | **{fmt(i.get('bytes_per_connection'))}**"
              f"{' (' + err + ')' if err else ''} |")
        w("")
        per = {n: (result(r).get("idle") or {}).get("bytes_per_connection") for n, r in idle.items()}
        pairs = [
            ("idle-switchboard-native-ws", ["idle-socketioxide-socketio-ws", "idle-socketio-node-socketio-ws"], 4096),
            ("idle-switchboard-socketio-ws", ["idle-socketioxide-socketio-ws", "idle-socketio-node-socketio-ws"], None),
            ("idle-switchboard-native-sse", ["idle-nchan-nchan-sse"], 6144),
            ("idle-switchboard-native-longpoll", ["idle-nchan-nchan-longpoll"], 6144),
        ]
        w("Switchboard's bytes per connection divided by the peer's (below 1: Switchboard uses less):")
        w("")
        w("| Switchboard | target | vs | ratio |")
        w("|---|---:|---|---:|")
        for sb, peers, tgt in pairs:
            if sb not in idle:
                continue
            for p in peers:
                if p in idle:
                    verdict = ""
                    if tgt and per[sb] is not None:
                        verdict = " ✅" if per[sb] <= tgt else " ❌"
                    w(f"| {who(idle[sb])}: {fmt(per[sb])} B | {fmt(tgt) + ' B' + verdict if tgt else '—'} "
                      f"| {who(idle[p])}: {fmt(per[p])} B | {ratio(per[sb], per[p], True)} |")
        w("")

    # ---------------- echo / fanout fixed
    def fixed_table(prefix, title, text, fan):
        sel = {n: r for n, r in runs.items() if n.startswith(prefix) and "-ramp-" not in n}
        if not sel:
            return
        w(f"## {title}")
        w("")
        w(text)
        w("")
        w("| server, transport | rate | delivered | deliveries/s | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms "
          "| server CPU µs/delivery | load avg |")
        w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for n, r in sorted(sel.items()):
            s = step0(r)
            if not s:
                w(f"| {who(r)} | — | — | — | — | — | — | — | {failure(r) or 'no result'} | — | — |")
                continue
            l = s["latency_ms"]
            w(f"| {who(r)} | {fmt(s['rate'])}/s | {s['delivered'] * 100:.1f}% | {fmt(s['deliveries_per_s'])} "
              f"| {ms(l['p50'])} | {ms(l['p90'])} | **{ms(l['p99'])}** | {ms(l['p999'])} | {ms(l['max'])} "
              f"| {cpu(s)} | {load_of(r)} |")
        w("")
        sbs = [n for n in sel if "-switchboard-" in n]
        peers = [n for n in sel if "-switchboard-" not in n]
        if sbs and peers:
            w("Switchboard's p99 divided by the peer's (below 1: Switchboard is faster):")
            w("")
            w("| Switchboard | " + " | ".join(who(sel[p]) for p in sorted(peers)) + " |")
            w("|---|" + "---:|" * len(peers))
            for sb in sorted(sbs):
                a = step0(sel[sb])
                cells = []
                for p in sorted(peers):
                    b = step0(sel[p])
                    cells.append(ratio(a and a["latency_ms"]["p99"], b and b["latency_ms"]["p99"], True))
                w(f"| {who(sel[sb])} | " + " | ".join(cells) + " |")
            w("")
            w("Switchboard's server CPU per delivery divided by the peer's (below 1: Switchboard "
              "spends less CPU per message; this figure depends least on other load on the machine):")
            w("")
            w("| Switchboard | " + " | ".join(who(sel[p]) for p in sorted(peers)) + " |")
            w("|---|" + "---:|" * len(peers))
            for sb in sorted(sbs):
                a = step0(sel[sb])
                cells = []
                for p in sorted(peers):
                    b = step0(sel[p])
                    cells.append(ratio(a and a.get("server_cpu_us_per_delivery"),
                                       b and b.get("server_cpu_us_per_delivery"), True))
                w(f"| {who(sel[sb])} | " + " | ".join(cells) + " |")
            w("")

    def ramp_table(prefix, title, text, unit_fan, svg_name, peers_for_target=None, target_x=None):
        sel = {n: r for n, r in runs.items() if n.startswith(prefix)}
        if not sel:
            return
        w(f"## {title}")
        w("")
        w(text)
        w("")
        w("| server, transport | held rate | held deliveries/s | sustained rate | first missed rate | rates tried "
          "| server CPU µs/delivery (last held step) | load avg |")
        w("|---|---:|---:|---:|---|---|---:|---:|")
        for n, r in sorted(sel.items()):
            res = result(r)
            f = first_fail(r)
            fan = None
            if res.get("held_rate") and res.get("held_deliveries_per_s"):
                fan = res["held_deliveries_per_s"]
            ff = "none (every step held)" if not f else (
                f"{fmt(f['rate'])}/s: p99 {ms(f['latency_ms']['p99'])} ms, {f['delivered'] * 100:.1f}% delivered"
                + (f", {f['disconnects']} disconnects" if f.get("disconnects") else ""))
            if failure(r) and not res.get("steps"):
                ff = failure(r)
            tried = ", ".join(fmt(s["rate"]) + ("" if s["ok"] else "✗") + (f" (try {s.get('attempt')})" if (s.get("attempt") or 1) > 1 else "")
                              for s in res.get("steps") or [])
            h = held(r)
            if h is not None and fan is None and res.get("setup"):
                fan = h * (res["setup"].get("subscribers") or 1) if "fanout" in n else h
            held_steps = [x for x in by_rate(r) if x["ok"] and h is not None and x["rate"] <= h]
            c = cpu(held_steps[-1]) if held_steps else "—"
            sus = res.get("delivered_rate")
            w(f"| {who(r)} | **{fmt(h)}**/s | {fmt(fan)} | {fmt(sus) + '/s' if sus else '—'} | {ff} | {tried} | {c} | {load_of(r)} |")
        w("")
        sbs = sorted(n for n in sel if "-switchboard-" in n)
        peers = sorted(n for n in sel if "-switchboard-" not in n)
        if sbs and peers:
            w("Switchboard's highest held rate divided by the peer's (above 1: Switchboard holds more):")
            w("")
            w("| Switchboard | " + " | ".join(who(sel[p]) for p in peers) + " |")
            w("|---|" + "---:|" * len(peers))
            for sb in sbs:
                cells = []
                for p in peers:
                    a, b = held(sel[sb]), held(sel[p])
                    c = ratio(a, b)
                    if a and not b:
                        c = "peer held no step"
                    if b and sel[p].get("result", {}).get("steps") and not first_fail(sel[p]):
                        c += " (peer held every step tried)"
                    cells.append(c)
                w(f"| {who(sel[sb])} | " + " | ".join(cells) + " |")
            w("")
            get = lambda n: result(sel[n]).get("delivered_rate")
            if any(get(n) for n in sel):
                w("Switchboard's sustained rate (≥ 97% delivered, p99 under 2 s) divided by the peer's:")
                w("")
                w("| Switchboard | " + " | ".join(who(sel[p]) for p in peers) + " |")
                w("|---|" + "---:|" * len(peers))
                for sb in sbs:
                    w(f"| {who(sel[sb])} | " + " | ".join(ratio(get(sb), get(p)) for p in peers) + " |")
                w("")
        series = ramp_series(runs, sorted(sel), 1)
        if series:
            path = os.path.join(results, svg_name)
            svg_ramp(path, title, series, "p99 latency from schedule (ms)",
                     "received per second" if unit_fan else "received per second")
            w(f"![{title}]({rel}/{svg_name})")
            w("")

    fixed_table("echo-", "Echo at a fixed rate",
                "Each client sends `echo` requests on a fixed schedule (open loop) and measures the "
                "round trip of the answer.", 1)
    ramp_table("echo-ramp-", "Echo saturation ramp",
               "The echo scenario at increasing rates; each step runs for a few seconds and counts "
               "answers arriving up to 1 s after it. A step **holds** when p99 ≤ 100 ms and ≥ 97% of "
               "the answers arrived; a step that fails is run once more (the machine is shared). The ramp "
               "goes on past a rate that missed the p99 limit as long as ≥ 97% still arrived with a p99 "
               "under 2 s: the **sustained rate** is the highest such rate (the throughput limit, whatever "
               "the latency). ✗ marks a failed attempt.", 1, "echo-ramp.svg")
    fixed_table("fanout-", "Room fan-out at a fixed rate (WebSocket)",
                "Subscribers in one room, publishers (also members) publishing to it on a fixed "
                "schedule; every subscriber receives every message. Deliveries = messages received "
                "by subscribers.", 1)
    ramp_table("fanout-ramp-", "Room fan-out saturation ramp (WebSocket)",
               "The fan-out scenario at increasing publish rates (a rate of R publishes/s is R × "
               "subscribers deliveries/s). Same holding rule as the echo ramp.", 1, "fanout-ramp.svg")
    fixed_table("httpfanout-", "Fan-out to SSE and long-poll subscribers (vs nchan)",
                "As the room fan-out, with subscribers on Server-Sent Events or long polling. "
                "Switchboard's publishers use the native WebSocket; nchan's POST to `/pub/<channel>`.", 1)
    ramp_table("httpfanout-ramp-", "SSE and long-poll fan-out saturation ramp (vs nchan)",
               "Same holding rule as above.", 1, "httpfanout-ramp.svg")

    cluster(runs, results, rel, w)

    churn = {n: r for n, r in runs.items() if n.startswith("churn-")}
    if churn:
        w("## Connection churn")
        w("")
        w("Concurrent loops each open a connection, complete the protocol's handshake (native: the "
          "`welcome`; socket.io: the CONNECT answer to `/`), close it and start again.")
        w("")
        w("| server, transport | loops | connects/s | handshake p50 ms | p99 ms | errors | server CPU µs/connect | load avg |")
        w("|---|---:|---:|---:|---:|---:|---:|---:|")
        for n, r in sorted(churn.items()):
            c = result(r).get("churn") or {}
            l = c.get("latency_ms") or {}
            w(f"| {who(r)} | {fmt(c.get('concurrency'))} | **{fmt(c.get('connects_per_s'))}** | {ms(l.get('p50'))} "
              f"| {ms(l.get('p99'))} | {fmt(c.get('errors'))}{' (' + failure(r) + ')' if failure(r) else ''} "
              f"| {fmt(c.get('server_cpu_us_per_connect'))} | {load_of(r)} |")
        w("")
        sbs = sorted(n for n in churn if "-switchboard-" in n)
        peers = sorted(n for n in churn if "-switchboard-" not in n)
        if sbs and peers:
            w("Switchboard's connects/s divided by the peer's:")
            w("")
            w("| Switchboard | " + " | ".join(who(churn[p]) for p in peers) + " |")
            w("|---|" + "---:|" * len(peers))
            for sb in sbs:
                get = lambda n: (result(churn[n]).get("churn") or {}).get("connects_per_s")
                w(f"| {who(churn[sb])} | " + " | ".join(ratio(get(sb), get(p)) for p in peers) + " |")
            w("")

    growth(runs, results, rel, w)

    targets(runs, w)

    # The hand-written findings quote the run in bench/results; a report of
    # another run (a smoke run, an archived one) is the tables alone.
    notes = os.path.join(os.path.dirname(os.path.abspath(__file__)), "NOTES.md")
    if os.path.basename(target) == "BENCHMARKS.md" and os.path.exists(notes):
        with open(notes) as f:
            w(f.read().rstrip())
            w("")
    with open(target, "w") as f:
        f.write("\n".join(md))
    print(f"wrote {target}", file=sys.stderr)


if __name__ == "__main__":
    main()
