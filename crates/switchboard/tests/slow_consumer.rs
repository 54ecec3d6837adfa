//! Slow consumers (`docs/limits.md`: `write_timeout`, outbox bounds): while
//! 200 clients receive a steady room stream, one WebSocket and one HTTP
//! stream stop reading. The server does not buffer for them beyond their
//! outbox bound, gives up on their sockets after `write_timeout`, and the
//! WebSocket's session, resumed, gets an exact `gap` and at most the
//! outbox's worth of frames. The 200 others lose nothing, see no gap, and
//! their latency is not hurt (p99 with the slow clients compared with p99
//! before them, a generous bound: the test shares two cores with the
//! server).
//!
//! On loopback the kernel gives a socket a send buffer of about 4 MB at
//! once, so a slow consumer only stalls the server's writes once that much
//! is queued for it. Each slow session is therefore also fed large `echo`
//! answers (its own upstream, posted by the test) until the server gives up
//! on its socket: they go to that session's outbox only, nobody else's.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use switchboard_testkit::downstream::WsDownstream;
use switchboard_testkit::hardening::{percentile, proc_rss_kib, Metrics, StalledSocket};
use switchboard_testkit::scenario::assert_serving;
use switchboard_testkit::serde_json::{self, Value};
use switchboard_testkit::{json, Attach, TestServer, Upstream};
use tokio::net::TcpStream;
use tokio_websockets::{ClientBuilder, MaybeTlsStream, Message, WebSocketStream};

const CLIENTS: usize = 200;
const ROOM: &str = "stream";
const RATE_PER_SECOND: u64 = 50;
const PAYLOAD_BYTES: usize = 1000;
const OUTBOX_FRAMES: usize = 64;
const OUTBOX_BYTES: usize = 1024 * 1024;
const WRITE_TIMEOUT: Duration = Duration::from_secs(2);
/// Echoes of this size, sixteen to a POST, fill a slow socket's buffers.
const ECHO_BYTES: usize = 60_000;
const ECHOES_PER_POST: usize = 16;

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The clock every timestamp in a payload counts from.
fn base() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

async fn connect(addr: std::net::SocketAddr, name: &str, room: &str) -> anyhow::Result<Socket> {
    let url = format!("ws://{addr}/v1/ws?name={name}");
    let (mut ws, _) = ClientBuilder::new().uri(&url)?.connect().await?;
    let welcome = ws.next().await.ok_or_else(|| anyhow::anyhow!("no welcome"))??;
    anyhow::ensure!(welcome.as_text().is_some_and(|t| t.contains("\"welcome\"")), "{welcome:?}");
    ws.send(Message::text(json!({"type":"join","room":room,"cid":"join"}).to_string())).await?;
    loop {
        let message = ws.next().await.ok_or_else(|| anyhow::anyhow!("closed before the join ack"))??;
        if message.as_text().is_some_and(|t| t.contains("\"cid\":\"join\"")) {
            return Ok(ws);
        }
    }
}

/// What one fast client saw: latencies per phase (0: before the slow
/// clients, 1: with them) and the number of messages.
#[derive(Default)]
struct Seen {
    latency: [Vec<Duration>; 2],
    messages: u64,
    gaps: u64,
}

/// Reads the room stream until the `end` message, acknowledging every 16
/// frames.
async fn fast_client(mut ws: Socket) -> anyhow::Result<Seen> {
    let mut seen = Seen::default();
    let mut unacked = 0;
    let mut last = 0;
    while let Some(message) = ws.next().await {
        let message = message?;
        let Some(text) = message.as_text() else {
            continue;
        };
        let frame: Value = serde_json::from_str(text)?;
        if let Some(seq) = frame["seq"].as_u64() {
            last = seq;
            unacked += 1;
        }
        match frame["type"].as_str() {
            Some("gap") => seen.gaps += 1,
            Some("msg") => {
                let data = &frame["data"];
                if data["end"] == true {
                    return Ok(seen);
                }
                let sent = Duration::from_micros(data["t"].as_u64().unwrap_or(0));
                let phase = data["p"].as_u64().unwrap_or(0).min(1) as usize;
                seen.latency[phase].push(base().elapsed().saturating_sub(sent));
                seen.messages += 1;
            }
            _ => {}
        }
        if unacked >= 16 {
            ws.send(Message::text(json!({"type":"ack","seq":last}).to_string())).await?;
            unacked = 0;
        }
    }
    anyhow::bail!("the stream ended before the end message")
}

/// Publishes at a steady rate until `until` says stop; returns how many.
async fn publish_phase(
    ws: &mut futures_util::stream::SplitSink<Socket, Message>,
    phase: u64,
    run: impl Fn(Duration) -> bool,
) -> anyhow::Result<u64> {
    let pad = "x".repeat(PAYLOAD_BYTES);
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / RATE_PER_SECOND));
    let started = Instant::now();
    let mut sent = 0;
    while run(started.elapsed()) {
        tick.tick().await;
        let t = base().elapsed().as_micros() as u64;
        let frame = json!({"type":"publish","room":ROOM,"data":{"t":t,"p":phase,"pad":pad}});
        ws.send(Message::text(frame.to_string())).await?;
        sent += 1;
    }
    Ok(sent)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_consumer_costs_its_outbox_only_and_others_keep_their_latency() {
    let outcome = tokio::time::timeout(Duration::from_secs(90), run()).await;
    match outcome {
        Ok(result) => result.unwrap(),
        Err(_) => panic!("the slow-consumer test did not finish within 90 s"),
    }
}

async fn run() -> anyhow::Result<()> {
    base();
    let server = TestServer::start_with(|c| {
        c.outbox_max_frames = OUTBOX_FRAMES;
        c.outbox_max_bytes = OUTBOX_BYTES;
        c.write_timeout = WRITE_TIMEOUT;
        // The stream must stall, not end itself at its budget first.
        c.stream_budget = 64 << 20;
    })
    .await;
    let addr = server.addr();

    let mut readers = Vec::with_capacity(CLIENTS);
    for i in 0..CLIENTS {
        let ws = connect(addr, &format!("fast{i}"), ROOM).await?;
        readers.push(tokio::spawn(fast_client(ws)));
    }
    let (mut publisher, mut own) = connect(addr, "publisher", ROOM).await?.split();
    // The publisher's own copies are read and dropped.
    let drain = tokio::spawn(async move { while let Some(Ok(_)) = own.next().await {} });

    // Phase 0: the room stream without any slow consumer.
    let baseline = publish_phase(&mut publisher, 0, |t| t < Duration::from_secs(3)).await?;

    // Phase 1: a WebSocket and an HTTP stream join and never read again.
    let before = Metrics::scrape(addr).await?;
    let rss_before = proc_rss_kib(std::process::id()).unwrap_or(0);
    let mut slow_ws = StalledSocket::websocket(addr, "?name=slowws").await?;
    let mut slow_stream = StalledSocket::stream(addr, "?name=slowstream").await?;
    let slow_sids = [slow_ws.sid(), slow_stream.sid()];
    for sid in &slow_sids {
        Upstream::new(addr, sid).join(ROOM).await?;
    }
    // Large echoes for the slow sessions until the server gave up on both;
    // returns how many each got.
    let (stop_echoes, mut stopped) = tokio::sync::watch::channel(false);
    let echoes = tokio::spawn(async move {
        let pad = "y".repeat(ECHO_BYTES);
        let batch = Value::Array(vec![json!({"type":"echo","data":pad}); ECHOES_PER_POST]).to_string();
        let mut counts = [0u64; 2];
        while !*stopped.borrow_and_update() {
            for (count, sid) in counts.iter_mut().zip(&slow_sids) {
                let (status, answer) = Upstream::new(addr, sid).post(batch.clone()).await?;
                anyhow::ensure!(status == 200, "echo batch refused: {status} {answer}");
                *count += answer["accepted"].as_u64().unwrap_or(0);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        anyhow::Ok(counts)
    });
    let stalled_by = |metrics: &Metrics| {
        metrics.value("switchboard_slow_consumers_total") - before.value("switchboard_slow_consumers_total")
    };
    let mut rss_peak = rss_before;
    let mut with_slow = 0;
    let started = Instant::now();
    // Publish in one-second slices until the server gave up on both slow
    // sockets (at least five seconds, at most thirty).
    loop {
        with_slow += publish_phase(&mut publisher, 1, |t| t < Duration::from_secs(1)).await?;
        rss_peak = rss_peak.max(proc_rss_kib(std::process::id()).unwrap_or(0));
        let given_up = stalled_by(&Metrics::scrape(addr).await?);
        if given_up >= 2.0 && started.elapsed() >= Duration::from_secs(5) {
            break;
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(30),
            "the server gave up on {given_up} of 2 slow sockets within 30 s (write_timeout {WRITE_TIMEOUT:?})"
        );
    }
    assert!(slow_ws.closed_by_server(Duration::from_secs(5)).await?, "the slow WebSocket is still open");
    assert!(slow_stream.closed_by_server(Duration::from_secs(5)).await?, "the slow stream is still open");

    publisher.send(Message::text(json!({"type":"publish","room":ROOM,"data":{"end":true}}).to_string())).await?;
    let _ = stop_echoes.send(true);
    let [echoes_ws, _] = echoes.await??;
    let published = baseline + with_slow;
    let mut latency: [Vec<Duration>; 2] = [Vec::new(), Vec::new()];
    for reader in readers {
        let seen = reader.await??;
        assert_eq!(seen.messages, published, "a fast client lost messages");
        assert_eq!(seen.gaps, 0, "a fast client saw a gap");
        for (all, theirs) in latency.iter_mut().zip(&seen.latency) {
            all.extend(theirs.iter().copied());
        }
    }
    drain.abort();
    let p99_without = percentile(&mut latency[0], 0.99);
    let p99_with = percentile(&mut latency[1], 0.99);
    let p50_without = percentile(&mut latency[0], 0.5);
    let p50_with = percentile(&mut latency[1], 0.5);
    eprintln!(
        "{CLIENTS} clients, {published} messages: p50 {p50_without:?} → {p50_with:?}, p99 {p99_without:?} → {p99_with:?} \
         with the slow consumers; RSS {rss_before} → peak {rss_peak} KiB"
    );
    assert!(
        p99_with <= p99_without * 4 + Duration::from_millis(200),
        "p99 latency of the others rose from {p99_without:?} to {p99_with:?} with a slow consumer"
    );
    // The slow sessions are bounded by their outbox, not by what was
    // published: memory of the whole test process (server and 200
    // clients) hardly moves.
    assert!(
        rss_peak.saturating_sub(rss_before) < 64 * 1024,
        "RSS grew from {rss_before} KiB to {rss_peak} KiB with two slow consumers"
    );

    // The slow WebSocket's session lives on; resumed, it learns exactly
    // what its outbox dropped and gets at most the outbox's worth.
    let mut resumed = WsDownstream::connect(addr, &Attach::new(Some(&slow_ws.sid()), 0)).await?;
    let welcome = resumed.next().await?;
    assert_eq!(welcome.bool("resumed"), Some(true), "{welcome}");
    let gap = resumed.next().await?;
    assert_eq!(gap.typ(), "gap", "first frame after the resume: {gap}");
    let (from, to) = (gap.u64("from").unwrap_or(0), gap.u64("to").unwrap_or(0));
    assert_eq!(from, 1, "{gap}");
    let mut kept = 0;
    let mut next = to + 1;
    // Read until the session has nothing more (it got the end message).
    loop {
        let frame = tokio::time::timeout(Duration::from_millis(500), resumed.next()).await;
        let Ok(frame) = frame else { break };
        let frame = frame?;
        if let Some(seq) = frame.seq() {
            assert_eq!(seq, next, "after the gap: {frame}");
            next += 1;
            kept += 1;
        }
    }
    assert!((1..=OUTBOX_FRAMES).contains(&kept), "{kept} frames kept after the gap (bound {OUTBOX_FRAMES})");
    // Every seq is accounted for: dropped (in the gap) or kept; the join
    // ack, each message published after the join, the end message and the
    // echoes.
    let expected = 1 + with_slow + 1 + echoes_ws;
    assert!(next > expected, "seqs 1..{next} do not cover the {expected} frames of the session");
    assert_serving(addr).await?;
    server.shutdown().await;
    Ok(())
}
