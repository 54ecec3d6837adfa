//! A node dies (SIGKILL) while messages flow.
//!
//! Its clients, one on every native transport, notice their connection
//! break, go to another node with their old `sid` and are told the session
//! is gone (`close` 4004 on the downstream, 404/502 with code 4004 on `POST
//! /v1/send`); they open a new session there (which rejoins the user's
//! rooms) and ask `history` after the last message id they hold. In the end
//! each holds every message of the room once, each live stream having
//! delivered nothing twice. One of them publishes all along: a publish left
//! unanswered by the death is sent again with the same `cid` through its
//! new session and is stored once. The dead node's users drop out of
//! presence within `node_ttl` (plus a heartbeat and a margin), and the
//! users left get a `presence` leave event for a user who had no other
//! session.

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

/// What the publishing victim went through.
struct Published {
    member: Member,
    /// Each publish's data and the id its ack gave.
    acked: Vec<(Value, u64)>,
    /// Publishes sent again (same `cid`) after an attempt went unanswered.
    resent: usize,
}

/// How long one publish attempt may wait for its ack before it is taken
/// as lost with its node.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);

/// Publishes `{"victim": n}` until told to stop, through the member's
/// current node, each until acked: when the node dies under a publish, the
/// member goes to the next node, starts a new session when told its
/// session is gone, and sends the publish again with the same `cid`.
async fn publish_through_death(mut member: Member, stop: Arc<AtomicBool>) -> anyhow::Result<Published> {
    let (mut acked, mut resent) = (Vec::new(), 0);
    let mut n = 0u64;
    while !stop.load(Ordering::SeqCst) {
        let data = json!({"victim": n});
        let cid = member.sender().next_cid();
        let frame = json!({"type": "publish", "room": ROOM, "data": data, "cid": cid});
        let mut attempts = 0;
        let id = loop {
            attempts += 1;
            anyhow::ensure!(attempts <= 10, "publish {cid} unacked after {attempts} attempts");
            if attempts > 1 {
                resent += 1;
            }
            let body = Value::Array(vec![frame.clone()]).to_string();
            let node = member.node();
            let posted = tokio::time::timeout(ATTEMPT_TIMEOUT, member.sender().post(node, &body)).await;
            match posted {
                Ok(Ok((200, _))) => {}
                Ok(Ok((404 | 502, answer))) if answer["code"] == 4004 => {
                    member.renew().await?;
                    continue;
                }
                Ok(Ok((status, answer))) => anyhow::bail!("publish {cid} through {node}: {status} {answer}"),
                // The node does not answer: the next one.
                Ok(Err(_)) | Err(_) => {
                    member.move_to(member.node_index() + 1);
                    continue;
                }
            }
            match tokio::time::timeout(ATTEMPT_TIMEOUT, member.answer(&cid)).await {
                Ok(Ok((answer, _))) if answer.typ() == "ack" => {
                    break answer.u64("id").ok_or_else(|| anyhow::anyhow!("ack without id: {answer}"))?
                }
                Ok(Ok((answer, _))) => anyhow::bail!("publish {cid} answered {answer}"),
                Ok(Err(e)) if e.is::<SessionGone>() => member.renew().await?,
                Ok(Err(e)) => return Err(e.context(format!("waiting for the ack of {cid}"))),
                Err(_) => member.move_to(member.node_index() + 1),
            }
        };
        acked.push((data, id));
        n += 1;
        tokio::time::sleep(PACE).await;
    }
    Ok(Published { member, acked, resent })
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

        // A client of the victim node on every transport that will come
        // back elsewhere, one more that publishes, and one ("ghost") that
        // will not come back.
        let mut victims = Vec::new();
        for transport in Transport::ALL {
            let user = format!("v-{}", transport.to_string().to_lowercase());
            let mut member = Member::create(&addrs, VICTIM, VICTIM, &user, transport).await?;
            member.join(ROOM).await?;
            victims.push(member);
        }
        let mut victim_publisher = Member::create(&addrs, VICTIM, VICTIM, "v-publisher", Transport::WebSocket).await?;
        victim_publisher.join(ROOM).await?;
        let mut ghost = Member::create(&addrs, VICTIM, VICTIM, "ghost", Transport::WebSocket).await?;
        ghost.join(ROOM).await?;
        // Clients of the nodes that live on.
        let mut observer = Member::create(&addrs, 0, 0, "observer", Transport::WebSocket).await?;
        observer.join(ROOM).await?;
        let mut steady = Member::create(&addrs, 1, 1, "steady", Transport::Sse).await?;
        steady.join(ROOM).await?;
        let publisher = Publisher::join(addrs[0], ROOM).await?;

        let mut everybody: Vec<String> = victims.iter().map(|m| m.user().to_owned()).collect();
        everybody.extend(["ghost", "observer", "steady", "v-publisher"].map(String::from));
        let victim_count = victims.len();
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
        let stop_victim = Arc::new(AtomicBool::new(false));
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
        let victim_publishing = tokio::spawn(publish_through_death(victim_publisher, Arc::clone(&stop_victim)));
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
        let until = Instant::now() + Duration::from_secs(10);
        while renewed.load(Ordering::SeqCst) < victim_count || killed.elapsed() < NODE_TTL * 2 {
            anyhow::ensure!(
                Instant::now() < until,
                "only {} of {victim_count} victims recovered",
                renewed.load(Ordering::SeqCst)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // The publishing victim stops first: all of its messages come
        // before the end marker.
        stop_victim.store(true, Ordering::SeqCst);
        let victim = victim_publishing.await??;
        stop.store(true, Ordering::SeqCst);
        let published = publishing.await??;
        let mut outcomes = Vec::new();
        for follower in followers {
            outcomes.push(follower.await??);
        }

        let history = full_history(&cluster.api(0), ROOM).await?;
        assert_eq!(history.len() as u64, published + victim.acked.len() as u64 + 1, "every publish stored once");
        // The publishing victim's messages: each stored once, under the id
        // its (perhaps second) ack gave, the ones sent again included.
        for (data, id) in &victim.acked {
            let stored: Vec<&Value> = history.iter().filter(|m| m["data"] == *data).collect();
            assert!(stored.len() == 1 && stored[0]["id"] == *id, "{data} acked as {id}, stored as {stored:?}");
        }
        assert_eq!(victim.member.sessions(), 2, "the publishing victim's sessions");
        assert!(victim.resent > 0, "no publish of the victim was sent again after its node died");
        assert!(victim.member.violations().is_empty(), "{:#?}", victim.member.violations());
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
        let stayed: Vec<&String> = everybody.iter().filter(|u| *u != "ghost").collect();
        assert!(
            stayed.iter().all(|u| users.iter().any(|p| p == *u)) && !users.iter().any(|u| u == "ghost"),
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
