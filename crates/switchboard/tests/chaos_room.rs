//! Two clients exchange 10,000 messages through a room while a proxy cuts
//! every one of their connections a few milliseconds after it opens —
//! downstream attachments, upstream POSTs and acks alike. Each must receive
//! exactly what the other sent, once, in order (and its own messages too).
//!
//! Clients resume with `sid` + `last` after every cut and resend a cut POST
//! with the same `cid`s until the server answers; the [`ResumingClient`]
//! records any replayed or skipped `seq`, and the receivers count every
//! message, so a single lost or doubled frame fails the test.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use switchboard_testkit::scenario::ROOM;
use switchboard_testkit::serde_json::Value;
use switchboard_testkit::{json, ChaosProxy, Cuts, ResumingClient, TestServer, Transport, Upstream};
use tokio::sync::watch;

/// Messages each client publishes (10,000 in total).
const PER_CLIENT: u64 = 5_000;
/// Frames per `POST /v1/send`.
const BATCH: u64 = 50;
/// How far a sender may run ahead of its own messages coming back.
const WINDOW: u64 = 500;
/// Each proxied connection lives this long, or carries this many bytes,
/// before it is cut (the byte budget keeps a fast machine cutting too).
fn cuts() -> Cuts {
    Cuts { lifetime: Duration::from_millis(2)..Duration::from_millis(25), bytes: 1024..16 * 1024 }
}
/// Frames per poll answer: small enough (about 5 KB) that most answers fit
/// in a byte budget; with larger answers than every budget, a poll client
/// could never get one through.
const FRAMES_PER_ANSWER: usize = 32;
/// The bound on one exchange.
const DEADLINE: Duration = Duration::from_secs(60);

/// What one client saw.
struct Received {
    client: ResumingClient,
    own: Vec<u64>,
    other: Vec<u64>,
    acked: HashSet<String>,
}

async fn join(client: &mut ResumingClient) -> anyhow::Result<()> {
    let cid = client.upstream().join(ROOM).await?;
    loop {
        let frame = client.recv().await?;
        if frame.typ() == "ack" && frame.cid() == Some(cid.as_str()) {
            return Ok(());
        }
        anyhow::ensure!(frame.typ() == "ack", "before any publish: {frame}");
    }
}

/// Publishes `{"n": 0..PER_CLIENT}` in batches, never more than [`WINDOW`]
/// ahead of what came back to its own session.
async fn send_all(upstream: Upstream, mut own_received: watch::Receiver<u64>) -> anyhow::Result<Vec<String>> {
    let mut cids = Vec::new();
    for start in (0..PER_CLIENT).step_by(BATCH as usize) {
        own_received.wait_for(|&got| got + WINDOW >= start).await?;
        let frames: Vec<Value> =
            (start..start + BATCH).map(|n| json!({"type":"publish","room":ROOM,"data":{"n":n}})).collect();
        cids.extend(upstream.send(frames).await?);
    }
    Ok(cids)
}

/// Receives until both its own and the other's messages are all in, and
/// every one of its publishes was acknowledged.
async fn receive_all(
    mut client: ResumingClient,
    other_id: String,
    own_received: watch::Sender<u64>,
) -> anyhow::Result<Received> {
    let own_id = client.id().to_owned();
    let (mut own, mut other, mut acked) = (Vec::new(), Vec::new(), HashSet::new());
    // Done when every message is in and every publish acknowledged (the
    // last acks may come after the last messages).
    while (own.len() as u64) < PER_CLIENT || (other.len() as u64) < PER_CLIENT || (acked.len() as u64) < PER_CLIENT {
        let frame = client.recv().await?;
        match frame.typ() {
            "msg" => {
                let n = frame.data().and_then(|d| d["n"].as_u64());
                let n = n.ok_or_else(|| anyhow::anyhow!("bad msg {frame}"))?;
                match frame.str("from") {
                    Some(from) if from == own_id => {
                        own.push(n);
                        own_received.send_replace(own.len() as u64);
                    }
                    Some(from) if from == other_id => other.push(n),
                    _ => anyhow::bail!("msg from a stranger: {frame}"),
                }
            }
            "ack" => {
                acked.insert(frame.cid().unwrap_or_default().to_owned());
            }
            _ => anyhow::bail!("{}: unexpected {frame} ({})", client.transport(), client.report()),
        }
    }
    Ok(Received { client, own, other, acked })
}

async fn exchange(transport_a: Transport, transport_b: Transport) -> anyhow::Result<()> {
    let started = Instant::now();
    let server = TestServer::start_with(|c| {
        // Room for every frame of the run, so a gap can only mean a bug.
        c.outbox_max_frames = 1 << 16;
        c.outbox_max_bytes = 64 << 20;
        c.max_frames_per_write = FRAMES_PER_ANSWER;
    })
    .await;
    let proxy = ChaosProxy::start(server.addr(), cuts()).await?;
    // A request the proxy cut may still reach the server after the client's
    // next one and supersede it (see `resume_when_superseded`): resume then.
    let mut a = ResumingClient::connect(proxy.addr(), transport_a).await?.resume_when_superseded(true);
    let mut b = ResumingClient::connect(proxy.addr(), transport_b).await?.resume_when_superseded(true);
    join(&mut a).await?;
    join(&mut b).await?;
    let (a_id, b_id) = (a.id().to_owned(), b.id().to_owned());

    let (a_progress, a_progress_rx) = watch::channel(0);
    let (b_progress, b_progress_rx) = watch::channel(0);
    let a_sender = tokio::spawn(send_all(a.upstream(), a_progress_rx));
    let b_sender = tokio::spawn(send_all(b.upstream(), b_progress_rx));
    let a_receiver = tokio::spawn(receive_all(a, b_id, a_progress));
    let b_receiver = tokio::spawn(receive_all(b, a_id, b_progress));

    // The first failure of any of the four wins (a sender only notices a
    // failed receiver as a closed progress channel).
    let (a_sent, b_sent, a_got, b_got) =
        tokio::try_join!(flatten(a_sender), flatten(b_sender), flatten(a_receiver), flatten(b_receiver))?;

    for (name, got, sent) in [("A", &a_got, &a_sent), ("B", &b_got, &b_sent)] {
        let transport = got.client.transport();
        assert_sequence(&format!("{name} ({transport}) own"), &got.own, &got.client);
        assert_sequence(&format!("{name} ({transport}) peer"), &got.other, &got.client);
        let unacked: Vec<&String> = sent.iter().filter(|c| !got.acked.contains(*c)).collect();
        assert!(unacked.is_empty(), "{name} ({transport}): never acked {unacked:?}");
        assert!(got.client.report().is_clean(), "{name} ({transport}): {}", got.client.report());
        assert!(
            got.client.report().attachments > 10,
            "{name} ({transport}): the proxy barely cut anything: {}",
            got.client.report()
        );
    }
    eprintln!(
        "{transport_a}+{transport_b}: {} connections, {} cut, {:?}; A {}; B {}",
        proxy.accepted(),
        proxy.cuts(),
        started.elapsed(),
        a_got.client.report(),
        b_got.client.report()
    );
    assert!(proxy.cuts() > 200, "only {} connections cut", proxy.cuts());
    drop(proxy);
    server.shutdown().await;
    Ok(())
}

async fn flatten<T>(task: tokio::task::JoinHandle<anyhow::Result<T>>) -> anyhow::Result<T> {
    task.await?
}

/// `ns` must be exactly `0..PER_CLIENT`; on failure, say what is missing,
/// doubled or out of place.
fn assert_sequence(what: &str, ns: &[u64], client: &ResumingClient) {
    let expected: Vec<u64> = (0..PER_CLIENT).collect();
    if ns == expected.as_slice() {
        return;
    }
    let mut seen = HashSet::new();
    let doubled: Vec<u64> = ns.iter().copied().filter(|n| !seen.insert(*n)).collect();
    let missing: Vec<u64> = expected.iter().copied().filter(|n| !seen.contains(n)).collect();
    let at = ns.iter().zip(&expected).position(|(a, b)| a != b).unwrap_or(ns.len().min(expected.len()));
    let around = |v: &[u64]| v[at.saturating_sub(3)..(at + 5).min(v.len())].to_vec();
    panic!(
        "{what} messages: {} received, missing {missing:?}, received twice {doubled:?}, \
         first out of place at index {at}: {:?}, expected {:?}; {}",
        ns.len(),
        around(ns),
        around(&expected),
        client.report()
    );
}

async fn bounded_exchange(a: Transport, b: Transport) {
    match tokio::time::timeout(DEADLINE, exchange(a, b)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => panic!("{a}+{b}: {e:#}"),
        Err(_) => panic!("{a}+{b}: not done within {DEADLINE:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_and_long_poll_exchange_10000_messages_through_chaos() {
    bounded_exchange(Transport::WebSocket, Transport::LongPoll).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_and_stream_exchange_10000_messages_through_chaos() {
    bounded_exchange(Transport::Sse, Transport::Stream).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn htmlfile_and_jsonp_exchange_10000_messages_through_chaos() {
    bounded_exchange(Transport::HtmlFile, Transport::Jsonp).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_poll_and_websocket_exchange_10000_messages_through_chaos() {
    bounded_exchange(Transport::ShortPoll, Transport::WebSocket).await;
}
