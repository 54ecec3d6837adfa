//! Redis restarts under a running cluster.
//!
//! Redis runs with an append-only file fsynced on every write (what
//! `docs/deploy.md` asks for acks to survive a restart) and is stopped,
//! left down for a while and started again while messages flow. A send
//! during the outage is answered with `error` 4500 and never with an ack;
//! the client sends it again (same `cid`) until it is acked. Afterwards
//! every acked message is in the history exactly once and was delivered
//! exactly once to every member, on every node and transport; and the
//! users who stayed connected are still present.
//!
//! A variant has every poll request (and every send) of its poll clients
//! go to the next node in turn, so that during the outage requests land on
//! nodes that cannot look up where the session lives: they are answered
//! "try again" (`close` 4500, HTTP 503), never "session gone", and every
//! client ends with the one session it started with.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use switchboard_testkit::cluster::{
    full_history, new_session, Cluster, ClusterOptions, Member, MessageLog, RedisProcess, Sender,
};
use switchboard_testkit::serde_json::{self, Value};
use switchboard_testkit::{bounded, json, Frame, HttpRequest, Transport};
use tokio::sync::Mutex;

const ROOM: &str = "restart";
const NODE_TTL: Duration = Duration::from_secs(2);
/// How long Redis stays down: longer than the node TTL, as a real restart
/// of a loaded Redis (or a failover) may well be.
const OUTAGE: Duration = Duration::from_millis(2500);
/// The pause before a refused publish is sent again.
const RETRY_PAUSE: Duration = Duration::from_millis(50);
/// Longest wait for the answer to one publish.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

fn is_end(frame: &Frame) -> bool {
    frame.typ() == "msg" && frame.data() == Some(&json!({"end": true}))
}

/// One answered publish attempt.
#[derive(Debug)]
struct Attempt {
    data: Value,
    sent: Instant,
    answered: Instant,
    answer: Frame,
}

/// When Redis was down: from the moment its process had exited to the
/// moment it was started again.
#[derive(Default)]
struct Outage {
    down: Option<Instant>,
    up: Option<Instant>,
}

/// Publishes `{"publisher": p, "n": n}` for n = 0, 1, ... until told to
/// stop, each sent again (same cid) after a refusal until it is acked;
/// logs everything the member receives.
async fn publish_until_stopped(
    mut member: Member,
    p: usize,
    stop: Arc<AtomicBool>,
    acked_after_restart: Arc<AtomicUsize>,
    outage: Arc<Mutex<Outage>>,
) -> anyhow::Result<(Member, MessageLog, Vec<Attempt>)> {
    let mut log = MessageLog::new(ROOM);
    let mut attempts = Vec::new();
    let mut n = 0u64;
    while !stop.load(Ordering::SeqCst) {
        let data = json!({"publisher": p, "n": n});
        let cid = member.sender().next_cid();
        let frame = json!({"type": "publish", "room": ROOM, "data": data, "cid": cid});
        loop {
            let sent = Instant::now();
            member.send(frame.clone()).await?;
            let answer = tokio::time::timeout(ANSWER_TIMEOUT, async {
                loop {
                    let f = member.recv().await?;
                    if f.cid() == Some(cid.as_str()) {
                        return anyhow::Ok(f);
                    }
                    log.live(&f);
                }
            })
            .await
            .map_err(|_| anyhow::anyhow!("publish {cid} unanswered for {ANSWER_TIMEOUT:?}"))??;
            let acked = answer.typ() == "ack";
            attempts.push(Attempt { data: data.clone(), sent, answered: Instant::now(), answer });
            if acked {
                if outage.lock().await.up.is_some_and(|up| sent > up) {
                    acked_after_restart.fetch_add(1, Ordering::SeqCst);
                }
                break;
            }
            tokio::time::sleep(RETRY_PAUSE).await;
        }
        n += 1;
    }
    Ok((member, log, attempts))
}

/// Reads the room until the end marker.
async fn subscribe(mut member: Member) -> anyhow::Result<(Member, MessageLog)> {
    let mut log = MessageLog::new(ROOM);
    loop {
        let frame = member.recv().await?;
        log.live(&frame);
        if is_end(&frame) {
            return Ok((member, log));
        }
    }
}

/// How Redis goes down.
#[derive(Clone, Copy, Debug)]
enum Stop {
    /// SIGTERM: Redis writes its append-only file and exits.
    Restart,
    /// SIGKILL: Redis dies on the spot (what was fsynced survives).
    Crash,
}

/// Who takes part: (home node, transport) of each publisher and
/// subscriber, and whether poll clients send each request to the next node.
struct Layout {
    publishers: &'static [(usize, Transport)],
    subscribers: &'static [(usize, Transport)],
    rotate_polls: bool,
}

/// Every client stays on its home node.
const STAY: Layout = Layout {
    publishers: &[(0, Transport::WebSocket), (1, Transport::LongPoll)],
    subscribers: &[(1, Transport::WebSocket), (0, Transport::Sse), (1, Transport::LongPoll)],
    rotate_polls: false,
};

/// Poll clients (publishers among them) alternate between the nodes.
const ROTATE: Layout = Layout {
    publishers: &[(0, Transport::WebSocket), (1, Transport::LongPoll)],
    subscribers: &[(0, Transport::LongPoll), (1, Transport::ShortPoll), (1, Transport::Jsonp), (0, Transport::Sse)],
    rotate_polls: true,
};

#[tokio::test]
async fn acked_messages_survive_a_redis_restart_and_outage_sends_get_4500() {
    bounded(acked_messages_survive(Stop::Restart, STAY)).await;
}

#[tokio::test]
async fn acked_messages_survive_a_redis_crash_and_outage_sends_get_4500() {
    bounded(acked_messages_survive(Stop::Crash, STAY)).await;
}

/// Polls that land on a node other than their session's home during the
/// outage are told to try again; no session ends, nothing is lost or
/// doubled.
#[tokio::test]
async fn polls_rotating_across_nodes_through_a_redis_outage_keep_their_sessions() {
    bounded(acked_messages_survive(Stop::Restart, ROTATE)).await;
}

async fn member(
    addrs: &[std::net::SocketAddr],
    home: usize,
    user: &str,
    transport: Transport,
    rotate: bool,
) -> anyhow::Result<Member> {
    let mut member = Member::create(addrs, home, home, user, transport).await?;
    member.rotate_polls(rotate);
    member.join(ROOM).await?;
    Ok(member)
}

async fn acked_messages_survive(stop_redis: Stop, layout: Layout) -> anyhow::Result<()> {
    {
        let mut redis = RedisProcess::start().await?;
        let mut options = ClusterOptions::new(env!("CARGO_BIN_EXE_switchboard"), "redis-restart").redis(&redis.url());
        options.node_ttl = NODE_TTL;
        if layout.rotate_polls {
            // Long polls come back within the outage, to land elsewhere.
            options.env.push(("SWITCHBOARD_POLL_TIMEOUT".into(), "200ms".into()));
        }
        let cluster = Cluster::start(options, 2).await?;
        let addrs = cluster.addrs();

        let mut publishers = Vec::new();
        for (p, &(node, transport)) in layout.publishers.iter().enumerate() {
            publishers.push(member(&addrs, node, &format!("pub{p}"), transport, layout.rotate_polls).await?);
        }
        let mut subscribers = Vec::new();
        for (s, &(node, transport)) in layout.subscribers.iter().enumerate() {
            let member = member(&addrs, node, &format!("sub{s}"), transport, layout.rotate_polls).await?;
            subscribers.push(tokio::spawn(subscribe(member)));
        }

        let stop = Arc::new(AtomicBool::new(false));
        let acked_after_restart = Arc::new(AtomicUsize::new(0));
        let outage = Arc::new(Mutex::new(Outage::default()));
        let publishing: Vec<_> = publishers
            .into_iter()
            .enumerate()
            .map(|(p, member)| {
                tokio::spawn(publish_until_stopped(
                    member,
                    p,
                    Arc::clone(&stop),
                    Arc::clone(&acked_after_restart),
                    Arc::clone(&outage),
                ))
            })
            .collect();

        tokio::time::sleep(Duration::from_millis(800)).await;
        match stop_redis {
            Stop::Restart => redis.stop().await?,
            Stop::Crash => redis.kill().await?,
        }
        outage.lock().await.down = Some(Instant::now());
        tokio::time::sleep(OUTAGE).await;
        outage.lock().await.up = Some(Instant::now());
        redis.start_again().await?;

        let until = Instant::now() + Duration::from_secs(12);
        while acked_after_restart.load(Ordering::SeqCst) < 20 {
            anyhow::ensure!(
                Instant::now() < until,
                "only {} publishes acked after the restart",
                acked_after_restart.load(Ordering::SeqCst)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        stop.store(true, Ordering::SeqCst);
        let mut results = Vec::new();
        for task in publishing {
            results.push(task.await??);
        }
        // The end marker, after every other publish was acked.
        let (first, _, _) = &mut results[0];
        let cid = first.send(json!({"type": "publish", "room": ROOM, "data": {"end": true}})).await?;
        let (answer, _) = first.answer(&cid).await?;
        assert_eq!(answer.typ(), "ack", "end marker: {answer}");
        let mut logs = Vec::new();
        for task in subscribers {
            logs.push(task.await??);
        }

        let (down, up) = {
            let outage = outage.lock().await;
            (outage.down.expect("stopped"), outage.up.expect("started"))
        };
        let attempts: Vec<&Attempt> = results.iter().flat_map(|(_, _, a)| a).collect();
        let mut problems = Vec::new();
        let mut refused_in_outage = 0;
        for a in &attempts {
            let during = a.sent >= down && a.answered <= up;
            match (a.answer.typ(), a.answer.code()) {
                ("ack", _) if during => {
                    problems.push(format!("a publish sent {:?} into the outage was acked: {}", a.sent - down, a.answer))
                }
                ("ack", _) => {}
                ("error", Some(4500)) => refused_in_outage += usize::from(during),
                _ => problems.push(format!("publish {} answered {}", a.data, a.answer)),
            }
        }
        assert!(problems.is_empty(), "{problems:#?}");
        assert!(
            refused_in_outage > 0,
            "no publish was answered during the outage (answers: {:?})",
            attempts.iter().map(|a| (a.answer.typ(), a.sent.saturating_duration_since(down))).collect::<Vec<_>>()
        );

        // Every acked message is in the history, once; nothing else is.
        let history = full_history(&cluster.api(1), ROOM).await?;
        let acks: Vec<(&Value, u64)> = attempts
            .iter()
            .filter(|a| a.answer.typ() == "ack")
            .map(|a| (&a.data, a.answer.u64("id").unwrap_or_default()))
            .collect();
        for (data, id) in &acks {
            let stored: Vec<&Value> = history.iter().filter(|m| m["data"] == **data).collect();
            assert!(stored.len() == 1 && stored[0]["id"] == *id, "{data} acked as {id}, stored as {stored:?}");
        }
        assert_eq!(history.len(), acks.len() + 1, "history holds the acked messages and the end marker");

        // ... and was delivered once to every member.
        for (member, log) in logs.iter().map(|(m, l)| (m, l)) {
            assert!(member.violations().is_empty(), "{}: {:#?}", member.user(), member.violations());
            assert!(log.problems().is_empty(), "{}: {:#?}", member.user(), log.problems());
            log.matches_history(&history)
                .map_err(|e| e.context(format!("{} did not get every message once", member.user())))?;
        }
        for (member, log, _) in &results {
            assert!(member.violations().is_empty(), "{}: {:#?}", member.user(), member.violations());
            assert!(log.problems().is_empty(), "{}: {:#?}", member.user(), log.problems());
        }

        // No session ended: each client kept the one it started with (a
        // "session gone" answer would have failed its task above).
        let members = logs.iter().map(|(m, _)| m).chain(results.iter().map(|(m, _, _)| m));
        let mut told_to_try_again = 0;
        for member in members {
            assert_eq!(member.sessions(), 1, "{} had to start a new session", member.user());
            told_to_try_again += member.unavailable();
        }
        if layout.rotate_polls {
            assert!(told_to_try_again > 0, "no request landed on a node that could not look its session up");
        }
        Ok(())
    }
}

/// Users who stay connected through a Redis outage longer than the node
/// TTL are still present afterwards, and nobody is told they left.
#[tokio::test]
async fn presence_survives_a_redis_restart() {
    bounded(async {
        let mut redis = RedisProcess::start().await?;
        let mut options = ClusterOptions::new(env!("CARGO_BIN_EXE_switchboard"), "redis-presence").redis(&redis.url());
        options.node_ttl = NODE_TTL;
        let cluster = Cluster::start(options, 2).await?;
        let addrs = cluster.addrs();

        let mut alice = Member::create(&addrs, 0, 0, "alice", Transport::WebSocket).await?;
        alice.join(ROOM).await?;
        let mut bob = Member::create(&addrs, 1, 1, "bob", Transport::Sse).await?;
        bob.join(ROOM).await?;
        let listening: Vec<_> = [alice, bob]
            .into_iter()
            .map(|mut member| {
                tokio::spawn(async move {
                    let mut presence = Vec::new();
                    loop {
                        let frame = member.recv().await?;
                        if is_end(&frame) {
                            return anyhow::Ok((member, presence));
                        }
                        if frame.typ() == "presence" {
                            presence.push(frame);
                        }
                    }
                })
            })
            .collect();

        let both_present = |node: usize| {
            let api = cluster.api(node);
            async move {
                let (status, body) = api.get(&format!("/rooms/{ROOM}/presence")).await?;
                anyhow::ensure!(status == 200, "presence answered {status}: {body}");
                let users: Vec<&str> = body["users"]
                    .as_array()
                    .map(|u| u.iter().filter_map(|u| u["user"].as_str()).collect())
                    .unwrap_or_default();
                anyhow::Ok((users.contains(&"alice") && users.contains(&"bob"), body))
            }
        };
        let until = Instant::now() + Duration::from_secs(3);
        while !both_present(0).await?.0 {
            anyhow::ensure!(Instant::now() < until, "alice and bob never present");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }

        redis.stop().await?;
        tokio::time::sleep(OUTAGE).await;
        redis.start_again().await?;

        // Give every node time to reconnect and beat a few times.
        tokio::time::sleep(NODE_TTL).await;
        for node in 0..2 {
            let until = Instant::now() + Duration::from_secs(4);
            loop {
                let (present, body) = both_present(node).await?;
                if present {
                    break;
                }
                anyhow::ensure!(
                    Instant::now() < until,
                    "node {node}: alice and bob stayed connected but are not present after the restart: {body}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        cluster.api(0).publish(ROOM, json!({"data": {"end": true}})).await?;
        for task in listening {
            let (member, presence) = task.await??;
            let leaves: Vec<&Frame> = presence.iter().filter(|f| f.str("state") == Some("leave")).collect();
            assert!(leaves.is_empty(), "{} was told that users left who never did: {leaves:?}", member.user());
            assert!(member.violations().is_empty(), "{:#?}", member.violations());
        }
        Ok(())
    })
    .await;
}

/// A session created while Redis is down cannot be written to the session
/// directory; its node writes it once Redis is back (from its heartbeat),
/// so requests for it through the other nodes reach it again.
#[tokio::test]
async fn a_session_created_during_an_outage_is_found_through_other_nodes_after_it() {
    bounded(async {
        let mut redis = RedisProcess::start().await?;
        let mut options =
            ClusterOptions::new(env!("CARGO_BIN_EXE_switchboard"), "redis-directory").redis(&redis.url());
        options.node_ttl = NODE_TTL;
        let cluster = Cluster::start(options, 2).await?;
        let addrs = cluster.addrs();

        redis.stop().await?;
        let (sid, _) = new_session(addrs[0], "early").await?;
        redis.start_again().await?;
        let back = Instant::now();

        // Polls through the other node: "try again" or "gone" until the
        // directory has the session again, then its (empty) frames.
        let path = format!("/v1/poll?sid={sid}&last=0&wait=0");
        let until = back + NODE_TTL + Duration::from_secs(3);
        let mut answers = Vec::new();
        loop {
            let response = HttpRequest::get(path.clone()).send(addrs[1]).await?;
            let status = response.status.as_u16();
            let body = response.text().await?;
            let frames: Vec<Value> = serde_json::from_str(&body).unwrap_or_default();
            if status == 200 && frames.iter().all(|f| f["type"] != "close") {
                break;
            }
            answers.push(format!("{status} {body}"));
            anyhow::ensure!(
                Instant::now() < until,
                "the session made in the outage is still not found through node 1 {:?} after Redis came back: {answers:#?}",
                back.elapsed()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }

        // ... and it is the same session: its upstream works through node 1.
        let sender = Sender::new(&sid, "early");
        sender.send_one(addrs[1], json!({"type": "join", "room": ROOM})).await?;
        Ok(())
    })
    .await;
}
