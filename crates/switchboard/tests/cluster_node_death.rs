//! A node dies (SIGKILL) while messages flow.
//!
//! Its clients notice their connection break, go to another node with
//! their old `sid` and are told the session is gone (`close` 4004 on the
//! downstream, 404/502 with code 4004 on `POST /v1/send`); they open a new
//! session there (which rejoins the user's rooms) and ask `history` after
//! the last message id they hold. In the end each holds every message of
//! the room once, each live stream having delivered nothing twice. The dead
//! node's users drop out of presence within `node_ttl` (plus a heartbeat and
//! a margin), and the users left get a `presence` leave event for a user
//! who had no other session.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use switchboard_testkit::cluster::{full_history, Cluster, ClusterOptions, Member, MessageLog, SessionGone};
use switchboard_testkit::im::ChatClient;
use switchboard_testkit::serde_json::Value;
use switchboard_testkit::{bounded, json, Frame, Publisher, Transport};

const ROOM: &str = "survivors";
const NODE_TTL: Duration = Duration::from_secs(2);
/// Slack on top of the node TTL and one heartbeat period for the
/// presence checks (scheduling, a loaded test machine).
const MARGIN: Duration = Duration::from_millis(1500);
const VICTIM: usize = 2;
const PACE: Duration = Duration::from_millis(10);

fn is_end(frame: &Frame) -> bool {
    frame.typ() == "msg" && frame.data() == Some(&json!({"end": true}))
}

/// What one client went through.
struct Outcome {
    member: Member,
    log: MessageLog,
    gone: Vec<SessionGone>,
    /// `POST /v1/send` answers for the old session, after it was gone.
    old_sid_posts: Vec<(u16, Value)>,
    /// Presence frames, with when they arrived.
    presence: Vec<(Instant, Frame)>,
}

/// Reads the room until the end marker; on [`SessionGone`] starts a new
/// session on the node it reached and recovers from history.
async fn follow(mut member: Member, renewed: Arc<AtomicUsize>) -> anyhow::Result<Outcome> {
    let mut log = MessageLog::new(ROOM);
    let (mut gone, mut old_sid_posts, mut presence) = (Vec::new(), Vec::new(), Vec::new());
    loop {
        let frame = match member.recv().await {
            Ok(frame) => frame,
            Err(e) => {
                let Some(session_gone) = e.downcast_ref::<SessionGone>() else {
                    return Err(e.context(format!("{} failed", member.user())));
                };
                gone.push(session_gone.clone());
                anyhow::ensure!(gone.len() <= 3, "{} keeps losing sessions: {gone:#?}", member.user());
                let ack = json!({"type": "ack", "seq": 0}).to_string();
                old_sid_posts.push(member.sender().post(member.node(), &ack).await?);
                let after = log.last_id();
                member.renew().await?;
                log.new_session();
                let (recovered, others) = member.recover(ROOM, after).await?;
                for frame in &others {
                    log.live(frame);
                    if frame.typ() == "presence" {
                        presence.push((Instant::now(), frame.clone()));
                    }
                }
                log.recovered(&recovered);
                renewed.fetch_add(1, Ordering::SeqCst);
                if log.holds_data(&json!({"end": true})) {
                    break;
                }
                continue;
            }
        };
        log.live(&frame);
        if frame.typ() == "presence" {
            presence.push((Instant::now(), frame.clone()));
        }
        if is_end(&frame) {
            break;
        }
    }
    Ok(Outcome { member, log, gone, old_sid_posts, presence })
}

async fn present(cluster: &Cluster, node: usize) -> anyhow::Result<Vec<String>> {
    let (status, body) = cluster.api(node).get(&format!("/rooms/{ROOM}/presence")).await?;
    anyhow::ensure!(status == 200, "presence answered {status}: {body}");
    let mut users: Vec<String> = body["users"]
        .as_array()
        .ok_or_else(|| anyhow::anyhow!("presence without users: {body}"))?
        .iter()
        .map(|u| u["user"].as_str().unwrap_or_default().to_owned())
        .collect();
    users.sort();
    Ok(users)
}

#[tokio::test]
async fn a_killed_nodes_clients_recover_elsewhere_and_its_users_leave_presence() {
    bounded(async {
        let mut options = ClusterOptions::new(env!("CARGO_BIN_EXE_switchboard"), "node-death");
        options.node_ttl = NODE_TTL;
        let mut cluster = Cluster::start(options, 3).await?;
        let addrs = cluster.addrs();

        // Three clients of the victim node that will come back elsewhere,
        // and one ("ghost") that will not.
        let mut victims = Vec::new();
        for (user, transport) in
            [("v-sse", Transport::Sse), ("v-poll", Transport::LongPoll), ("v-ws", Transport::WebSocket)]
        {
            let mut member = Member::create(&addrs, VICTIM, VICTIM, user, transport).await?;
            member.join(ROOM).await?;
            victims.push(member);
        }
        let mut ghost = Member::create(&addrs, VICTIM, VICTIM, "ghost", Transport::WebSocket).await?;
        ghost.join(ROOM).await?;
        // Clients of the nodes that live on.
        let mut observer = Member::create(&addrs, 0, 0, "observer", Transport::WebSocket).await?;
        observer.join(ROOM).await?;
        let mut steady = Member::create(&addrs, 1, 1, "steady", Transport::Sse).await?;
        steady.join(ROOM).await?;
        let publisher = Publisher::join(addrs[0], ROOM).await?;

        let everybody = ["ghost", "observer", "steady", "v-poll", "v-sse", "v-ws"];
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            let users = present(&cluster, 0).await?;
            if everybody.iter().all(|u| users.iter().any(|p| p == u)) {
                break;
            }
            anyhow::ensure!(Instant::now() < deadline, "presence before the kill: {users:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }

        let renewed = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let publishing = {
            let stop = Arc::clone(&stop);
            tokio::spawn(async move {
                let mut n = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    publisher.upstream().publish(ROOM, json!({"n": n})).await?;
                    n += 1;
                    tokio::time::sleep(PACE).await;
                }
                publisher.upstream().publish(ROOM, json!({"end": true})).await?;
                anyhow::Ok(n)
            })
        };
        let followers: Vec<_> = victims
            .into_iter()
            .chain([observer, steady])
            .map(|member| tokio::spawn(follow(member, Arc::clone(&renewed))))
            .collect();

        tokio::time::sleep(Duration::from_millis(700)).await;
        cluster.node(VICTIM).kill().await?;
        let killed = Instant::now();
        drop(ghost);

        // `who` across the cluster drops the dead node's users.
        let ghost_gone = loop {
            let users = present(&cluster, 0).await?;
            if !users.iter().any(|u| u == "ghost") {
                break killed.elapsed();
            }
            anyhow::ensure!(
                killed.elapsed() < NODE_TTL + MARGIN,
                "ghost still present {:?} after its node died: {users:?}",
                killed.elapsed()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };

        // Keep publishing until every victim recovered, and a while longer.
        let until = Instant::now() + Duration::from_secs(8);
        while renewed.load(Ordering::SeqCst) < 3 || killed.elapsed() < NODE_TTL * 2 {
            anyhow::ensure!(Instant::now() < until, "only {} of 3 victims recovered", renewed.load(Ordering::SeqCst));
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        stop.store(true, Ordering::SeqCst);
        let published = publishing.await??;
        let mut outcomes = Vec::new();
        for follower in followers {
            outcomes.push(follower.await??);
        }

        let history = full_history(&cluster.api(0), ROOM).await?;
        assert_eq!(history.len() as u64, published + 1, "every publish stored once");
        let mut problems = Vec::new();
        for o in &outcomes {
            let user = o.member.user();
            let victim = user.starts_with("v-");
            problems.extend(o.member.violations().iter().cloned());
            problems.extend(o.log.problems().iter().map(|p| format!("{user}: {p}")));
            if let Err(e) = o.log.matches_history(&history) {
                problems.push(format!("{user}: {e:#}"));
            }
            let sessions = if victim { 2 } else { 1 };
            if o.member.sessions() != sessions {
                problems.push(format!("{user} had {} sessions: {:#?}", o.member.sessions(), o.gone));
            }
            for gone in &o.gone {
                if !gone.is_close_4004() {
                    problems.push(format!("{user}: the downstream must get close 4004, got: {gone}"));
                }
            }
            for (status, body) in &o.old_sid_posts {
                if !matches!(status, 404 | 502) || body["code"] != 4004 {
                    problems.push(format!("{user}: POST /v1/send for the dead session answered {status} {body}"));
                }
            }
        }
        assert!(problems.is_empty(), "{problems:#?}");

        // Presence: the ghost left, for everybody who stayed.
        for o in &outcomes {
            let leave =
                o.presence.iter().find(|(_, f)| f.str("user") == Some("ghost") && f.str("state") == Some("leave"));
            let user = o.member.user();
            let Some((at, _)) = leave else {
                panic!("{user} got no presence leave for ghost: {:?}", o.presence);
            };
            let after = at.saturating_duration_since(killed);
            assert!(after < NODE_TTL + NODE_TTL / 3 + MARGIN, "{user} heard ghost leave {after:?} after the kill");
        }
        let users = present(&cluster, 1).await?;
        let stayed: Vec<&str> = everybody.iter().copied().filter(|u| *u != "ghost").collect();
        assert!(
            stayed.iter().all(|u| users.iter().any(|p| p == u)) && !users.iter().any(|u| u == "ghost"),
            "presence after the recovery: {users:?} (ghost gone after {ghost_gone:?})"
        );
        Ok(())
    })
    .await;
}

/// A node that crashes and is started again on the same address at once
/// never looks dead to the others (its heartbeat hardly pauses); it clears
/// what its previous life left in presence itself, so the users of the
/// killed process leave (with a `leave` event) within the node TTL, and the
/// users who come back to it are present again.
#[tokio::test]
async fn a_node_restarted_on_its_address_drops_its_dead_users_from_presence() {
    bounded(async {
        let mut options = ClusterOptions::new(env!("CARGO_BIN_EXE_switchboard"), "node-restart");
        options.node_ttl = NODE_TTL;
        let mut cluster = Cluster::start(options, 2).await?;
        let addrs = cluster.addrs();

        let mut observer = ChatClient::connect(addrs[0], "observer").await?;
        observer.join(ROOM).await?;
        let mut ghost = ChatClient::connect(addrs[1], "ghost").await?;
        ghost.join(ROOM).await?;
        let deadline = Instant::now() + Duration::from_secs(3);
        while present(&cluster, 0).await? != ["ghost", "observer"] {
            anyhow::ensure!(Instant::now() < deadline, "presence before the kill: {:?}", present(&cluster, 0).await?);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }

        cluster.node(1).kill().await?;
        let killed = Instant::now();
        drop(ghost);
        cluster.restart(1).await?;

        // A user who comes back to the restarted node is present again.
        let mut returning = ChatClient::connect(addrs[1], "returning").await?;
        returning.join(ROOM).await?;

        loop {
            let users = present(&cluster, 0).await?;
            if users == ["observer", "returning"] {
                break;
            }
            anyhow::ensure!(
                killed.elapsed() < NODE_TTL + MARGIN,
                "{:?} after the kill and restart, presence is {users:?}",
                killed.elapsed()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let leave = observer.skip_to_presence("ghost", "leave").await?;
        assert_eq!(leave.str("room"), Some(ROOM), "{leave}");
        for node in 0..2 {
            assert_eq!(present(&cluster, node).await?, ["observer", "returning"], "presence on node {node}");
        }
        Ok(())
    })
    .await;
}
