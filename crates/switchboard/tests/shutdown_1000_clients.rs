//! Graceful shutdown and restart under load (protocol §6 code 4002, §7
//! "an ack means durable"): the server binary, with its SQLite history in a
//! temporary folder, carries 1,000 clients (700 WebSocket, 300 long-poll,
//! driven by eight tasks) chatting in 70 rooms. On SIGTERM every attached
//! client receives `close` 4002 and the process exits within
//! `shutdown_timeout` plus a margin. Restarted on the same folder, the
//! server has every message it acknowledged, and each client recovers what
//! it missed with `history` after the last message id it had seen.
//!
//! The WebSocket clients chat right through the SIGTERM (publishes in
//! flight when it arrives). The long-poll clients have rooms of their own
//! and fall quiet two seconds before it, so that each of them is attached
//! (a poll held by the server) when it comes: a long-poll client that is
//! between two polls is not attached, and whether the server had read its
//! next request yet is a race no client can observe.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use futures_util::{SinkExt, StreamExt};
use switchboard_testkit::hardening::{KeepAlive, ServerProcess};
use switchboard_testkit::im::Api;
use switchboard_testkit::json;
use switchboard_testkit::serde_json::{self, Value};
use tokio_websockets::{ClientBuilder, Message};

const WEBSOCKETS: usize = 700;
const LONG_POLLS: usize = 300;
const GROUPS: usize = 8;
/// Rooms of the WebSocket clients (about 18 members each).
const WS_ROOMS: usize = 40;
/// Rooms of the long-poll clients (10 members each).
const LP_ROOMS: usize = 30;
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(3);
const API_KEY: &str = "shutdown-test-key";

/// What one client did and saw.
#[derive(Debug, Default)]
struct Outcome {
    name: String,
    room: String,
    websocket: bool,
    /// Message ids the server acknowledged to this client.
    acked: Vec<u64>,
    /// Message ids of its room that it received live.
    seen: BTreeSet<u64>,
    /// It received `close` 4002.
    told_to_reconnect: bool,
    /// How its last poll failed, if it did.
    error: Option<String>,
}

fn room_of(i: usize) -> String {
    if i < WEBSOCKETS {
        format!("ws-room-{}", i % WS_ROOMS)
    } else {
        format!("lp-room-{}", i % LP_ROOMS)
    }
}

/// The wait before the next publish: `base` to twice `base`, spread by `n`.
fn pause(n: u64, base: Duration) -> Duration {
    let base = base.as_millis() as u64;
    Duration::from_millis(base + (n.wrapping_mul(2_654_435_761) % base))
}

const WS_PAUSE: Duration = Duration::from_millis(1500);
const LP_PAUSE: Duration = Duration::from_millis(3000);

fn record(outcome: &mut Outcome, frame: &Value) {
    match frame["type"].as_str() {
        Some("ack") => {
            if let Some(id) = frame["id"].as_u64() {
                outcome.acked.push(id);
            }
        }
        Some("msg") if frame["room"] == outcome.room.as_str() => {
            if let Some(id) = frame["id"].as_u64() {
                outcome.seen.insert(id);
            }
        }
        Some("close") if frame["code"] == 4002 => outcome.told_to_reconnect = true,
        _ => {}
    }
}

async fn websocket_client(
    addr: std::net::SocketAddr,
    i: usize,
    stop_publishing: Arc<AtomicBool>,
) -> anyhow::Result<Outcome> {
    let mut outcome = Outcome { name: format!("ws{i}"), room: room_of(i), websocket: true, ..Outcome::default() };
    let url = format!("ws://{addr}/v1/ws?name={}", outcome.name);
    let (mut ws, _) = ClientBuilder::new().uri(&url)?.connect().await?;
    ws.send(Message::text(json!({"type":"join","room":outcome.room,"cid":"join"}).to_string())).await?;
    let mut n = i as u64;
    let mut next = tokio::time::Instant::now() + pause(n, WS_PAUSE);
    loop {
        tokio::select! {
            message = ws.next() => match message {
                Some(Ok(message)) => {
                    if let Some(text) = message.as_text() {
                        record(&mut outcome, &serde_json::from_str(text)?);
                    }
                }
                // Closed: after the close frame, or the process went away.
                _ => return Ok(outcome),
            },
            () = tokio::time::sleep_until(next) => {
                n += 1;
                next += pause(n, WS_PAUSE);
                if !stop_publishing.load(Ordering::Relaxed) {
                    let frame = json!({"type":"publish","room":outcome.room,"data":{"from":outcome.name,"n":n},"cid":format!("c{n}")});
                    let _ = ws.send(Message::text(frame.to_string())).await;
                }
            }
        }
    }
}

/// `GET`/`POST` on a keep-alive connection, the answer as JSON.
async fn call(client: &mut KeepAlive, path: &str, body: Option<&Value>) -> std::io::Result<Value> {
    let (_, bytes) = match body {
        Some(body) => client.post(path, body.to_string().as_bytes()).await?,
        None => client.get(path).await?,
    };
    serde_json::from_slice(&bytes).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

async fn long_poll_client(
    addr: std::net::SocketAddr,
    i: usize,
    stop_publishing: Arc<AtomicBool>,
) -> anyhow::Result<Outcome> {
    let name = format!("lp{i}");
    let room = room_of(i);
    // Polls on one keep-alive connection, sends on another.
    let mut poller = KeepAlive::new(addr);
    let mut sender = KeepAlive::new(addr);
    let welcome = call(&mut poller, &format!("/v1/poll?name={name}"), None).await?;
    let sid = welcome[0]["sid"].as_str().unwrap_or_default().to_owned();
    let send_path = format!("/v1/send?sid={sid}");
    call(&mut sender, &send_path, Some(&json!({"type":"join","room":room,"cid":"join"}))).await?;
    let outcome =
        Mutex::new(Outcome { name: name.clone(), room: room.clone(), websocket: false, ..Outcome::default() });
    let done = AtomicBool::new(false);
    let polling = async {
        let mut last = 0;
        loop {
            let frames = match call(&mut poller, &format!("/v1/poll?sid={sid}&last={last}"), None).await {
                Ok(frames) => frames.as_array().cloned().unwrap_or_default(),
                Err(e) => {
                    outcome.lock().unwrap().error = Some(e.to_string());
                    break;
                }
            };
            let mut o = outcome.lock().unwrap();
            for frame in &frames {
                last = last.max(frame["seq"].as_u64().unwrap_or(0));
                record(&mut o, frame);
            }
            if frames.iter().any(|f| f["type"] == "close") {
                break;
            }
        }
        done.store(true, Ordering::Relaxed);
    };
    let publishing = async {
        let mut n = i as u64;
        while !done.load(Ordering::Relaxed) {
            tokio::time::sleep(pause(n, LP_PAUSE)).await;
            n += 1;
            if stop_publishing.load(Ordering::Relaxed) || done.load(Ordering::Relaxed) {
                continue;
            }
            let frame = json!({"type":"publish","room":room,"data":{"from":name,"n":n},"cid":format!("c{n}")});
            let _ = call(&mut sender, &send_path, Some(&frame)).await;
        }
    };
    tokio::join!(polling, publishing);
    Ok(outcome.into_inner().unwrap())
}

/// Every message of `room` after `after`, through a new session's
/// `history` queries (paged).
async fn recover(addr: std::net::SocketAddr, name: &str, room: &str, after: u64) -> anyhow::Result<Vec<u64>> {
    let mut client = KeepAlive::new(addr);
    let welcome = call(&mut client, &format!("/v1/poll?wait=0&name={name}"), None).await?;
    let sid = welcome[0]["sid"].as_str().unwrap_or_default().to_owned();
    let mut ids = Vec::new();
    let mut from = after;
    let mut last = 0;
    loop {
        let cid = format!("h{from}");
        let query = json!({"type":"history","room":room,"after":from,"limit":500,"cid":cid});
        call(&mut client, &format!("/v1/send?sid={sid}"), Some(&query)).await?;
        let page = loop {
            let frames = call(&mut client, &format!("/v1/poll?sid={sid}&last={last}&wait=5000"), None).await?;
            let frames = frames.as_array().cloned().unwrap_or_default();
            last = frames.iter().filter_map(|f| f["seq"].as_u64()).max().unwrap_or(last);
            if let Some(answer) = frames.iter().find(|f| f["type"] == "history" && f["cid"] == cid.as_str()) {
                break answer["messages"].as_array().cloned().unwrap_or_default();
            }
        };
        let page: Vec<u64> = page.iter().filter_map(|m| m["id"].as_u64()).collect();
        ids.extend(&page);
        match page.last() {
            Some(&id) if page.len() == 500 => from = id,
            _ => return Ok(ids),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_with_1000_clients_loses_no_acked_message_and_restarts() {
    match tokio::time::timeout(Duration::from_secs(60), run()).await {
        Ok(result) => result.unwrap(),
        Err(_) => panic!("the shutdown test did not finish within 60 s"),
    }
}

async fn run() -> anyhow::Result<()> {
    let data = tempfile::tempdir()?;
    let binary = std::path::Path::new(env!("CARGO_BIN_EXE_switchboard"));
    let env = [
        ("SWITCHBOARD_STORE", "sqlite".to_owned()),
        ("SWITCHBOARD_DATA_DIR", data.path().display().to_string()),
        ("SWITCHBOARD_SHUTDOWN_TIMEOUT", format!("{}s", SHUTDOWN_TIMEOUT.as_secs())),
        ("SWITCHBOARD_API_KEY", API_KEY.to_owned()),
    ];
    let mut server = ServerProcess::start(binary, &env).await?;
    let addr = server.addr;

    let stop_publishing = Arc::new(AtomicBool::new(false));
    let quiet_long_polls = Arc::new(AtomicBool::new(false));
    let mut groups = Vec::new();
    for g in 0..GROUPS {
        let stop = Arc::clone(&stop_publishing);
        let quiet = Arc::clone(&quiet_long_polls);
        groups.push(tokio::spawn(async move {
            let mut clients: Vec<futures_util::future::BoxFuture<'static, anyhow::Result<Outcome>>> = Vec::new();
            for i in (g..WEBSOCKETS + LONG_POLLS).step_by(GROUPS) {
                if i < WEBSOCKETS {
                    clients.push(Box::pin(websocket_client(addr, i, Arc::clone(&stop))));
                } else {
                    clients.push(Box::pin(long_poll_client(addr, i, Arc::clone(&quiet))));
                }
            }
            join_all(clients).await
        }));
    }

    // Let them chat, quiet the long polls, then SIGTERM.
    tokio::time::sleep(Duration::from_secs(6)).await;
    quiet_long_polls.store(true, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(2)).await;
    server.terminate()?;
    let (exited_after, success) = server.wait_exit(SHUTDOWN_TIMEOUT + Duration::from_secs(5)).await?;
    stop_publishing.store(true, Ordering::Relaxed);
    assert!(success, "the server exited with an error after SIGTERM");
    assert!(
        exited_after <= SHUTDOWN_TIMEOUT + Duration::from_secs(3),
        "exit took {exited_after:?} (shutdown_timeout {SHUTDOWN_TIMEOUT:?})"
    );
    let mut outcomes = Vec::new();
    for group in groups {
        for outcome in tokio::time::timeout(Duration::from_secs(10), group).await?? {
            outcomes.push(outcome?);
        }
    }
    assert_eq!(outcomes.len(), WEBSOCKETS + LONG_POLLS);

    // Every attached client was told to reconnect.
    let not_told: Vec<&Outcome> = outcomes.iter().filter(|o| !o.told_to_reconnect).collect();
    assert!(not_told.is_empty(), "{} clients got no close 4002, e.g. {:?}", not_told.len(), not_told.first());
    let websockets_told = outcomes.iter().filter(|o| o.websocket && o.told_to_reconnect).count();
    assert_eq!(websockets_told, WEBSOCKETS);
    let acked: usize = outcomes.iter().map(|o| o.acked.len()).sum();
    assert!(acked >= 1000, "only {acked} messages acknowledged before SIGTERM");

    // Restart on the same history.
    let server = ServerProcess::start(binary, &env).await?;
    let addr = server.addr;
    let started = Instant::now();
    let mut acked_by_room: HashMap<&str, BTreeSet<u64>> = HashMap::new();
    for o in &outcomes {
        acked_by_room.entry(o.room.as_str()).or_default().extend(&o.acked);
    }
    // Durable: every acknowledged id is in the room's history.
    let api = Api::new(addr, Some(API_KEY));
    for (room, acked) in &acked_by_room {
        let mut stored = BTreeSet::new();
        let mut after = 0;
        loop {
            let page = api.history(room, &format!("after={after}&limit=500")).await?;
            let ids: Vec<u64> = page.iter().filter_map(|m| m["id"].as_u64()).collect();
            stored.extend(&ids);
            match ids.last() {
                Some(&id) if ids.len() == 500 => after = id,
                _ => break,
            }
        }
        let lost: Vec<&u64> = acked.difference(&stored).collect();
        assert!(lost.is_empty(), "{room}: acknowledged but not in history after restart: {lost:?}");
    }
    // Every client recovers what it missed: history after its last id.
    let sessions_before: Vec<(String, String, u64, BTreeSet<u64>)> = outcomes
        .iter()
        .map(|o| (o.name.clone(), o.room.clone(), o.seen.iter().next_back().copied().unwrap_or(0), o.seen.clone()))
        .collect();
    let mut recoveries = Vec::new();
    for chunk in sessions_before.chunks(sessions_before.len().div_ceil(GROUPS)) {
        let chunk = chunk.to_vec();
        recoveries.push(tokio::spawn(async move {
            let mut out = Vec::new();
            for (name, room, last, seen) in chunk {
                let recovered = recover(addr, &name, &room, last).await?;
                out.push((room, seen, recovered));
            }
            anyhow::Ok(out)
        }));
    }
    for task in recoveries {
        for (room, seen, recovered) in task.await?? {
            assert!(recovered.windows(2).all(|w| w[0] < w[1]), "{room}: history out of order {recovered:?}");
            let known: BTreeSet<u64> = seen.iter().chain(&recovered).copied().collect();
            let acked = &acked_by_room[room.as_str()];
            let missing: Vec<&u64> = acked.iter().filter(|id| !known.contains(id)).collect();
            // Live messages from before the client joined are not its to
            // have seen; everything from its first live one on must be
            // known after recovery.
            let first = seen.iter().next().copied().unwrap_or(0);
            let missing: Vec<&&u64> = missing.iter().filter(|id| ***id > first).collect();
            assert!(missing.is_empty(), "{room}: a client still lacks {missing:?} after recovering");
        }
    }
    eprintln!(
        "{} clients, {acked} acked messages; exit {exited_after:?} after SIGTERM; restart and recovery {:?}",
        outcomes.len(),
        started.elapsed()
    );
    drop(server);
    Ok(())
}
