//! The Redis store beyond history, seen from more than one node: read
//! marks, memberships of private rooms (set through the HTTP API), offline
//! marks and retention are written through one node and hold on the
//! others; the retried-publish `cid`s are kept only as long as their
//! messages.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use switchboard_testkit::cluster::{Cluster, ClusterOptions};
use switchboard_testkit::im::{ids, room_entry, rooms_of, wait_session_ended, ChatClient};
use switchboard_testkit::{bounded, json, Frame};

const BINARY: &str = env!("CARGO_BIN_EXE_switchboard");
const ROOM: &str = "lobby";

/// One `redis-cli` command against the cluster's Redis; its output.
fn redis_cli(cluster: &Cluster, args: &[&str]) -> anyhow::Result<String> {
    let output = Command::new("redis-cli")
        .args(["-u", &cluster.options().redis_url])
        .args(args)
        .stdin(Stdio::null())
        .output()?;
    anyhow::ensure!(output.status.success(), "redis-cli {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// The frames after `welcome` up to and including the first `rooms` frame.
async fn until_rooms(client: &mut ChatClient) -> anyhow::Result<Vec<Frame>> {
    let mut frames = Vec::new();
    loop {
        let frame = client.next().await?;
        let done = frame.typ() == "rooms";
        frames.push(frame);
        if done {
            return Ok(frames);
        }
    }
}

#[tokio::test]
async fn read_marks_set_on_one_node_are_seen_on_the_others() {
    bounded(async {
        let cluster = Cluster::start(ClusterOptions::new(BINARY, "store-reads"), 2).await?;
        let mut alice = ChatClient::connect(cluster.addr(0), "alice").await?;
        alice.join(ROOM).await?;
        let mut bob = ChatClient::connect(cluster.addr(1), "bob").await?;
        bob.join(ROOM).await?;
        let mut posted = Vec::new();
        for n in 0..3 {
            posted.push(alice.publish(ROOM, json!({"n": n})).await?);
        }
        assert_eq!(posted, [1, 2, 3]);

        bob.acked(json!({"type": "read", "room": ROOM, "id": 2})).await?;
        let read = alice.skip_to("read").await?;
        assert_eq!((read.str("user"), read.u64("id")), (Some("bob"), Some(2)), "{read}");
        // A mark never moves back, whichever node is asked.
        let mut bob_elsewhere = ChatClient::connect(cluster.addr(0), "bob").await?;
        until_rooms(&mut bob_elsewhere).await?;
        bob_elsewhere.request(json!({"type": "read", "room": ROOM, "id": 1})).await?;

        // Bob's next session, on the other node, starts from the mark.
        let mut bob_again = ChatClient::connect(cluster.addr(0), "bob").await?;
        let frames = until_rooms(&mut bob_again).await?;
        let rooms = rooms_of(frames.last().expect("rooms"))?;
        let lobby = room_entry(&rooms, ROOM)?;
        assert_eq!(
            (&lobby["last_id"], &lobby["read"], &lobby["unread"]),
            (&json!(3), &json!(2), &json!(1)),
            "{rooms:?}"
        );
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn private_room_memberships_set_through_one_node_hold_on_every_node() {
    bounded(async {
        let cluster = Cluster::start(ClusterOptions::new(BINARY, "store-members"), 2).await?;
        let (status, created) =
            cluster.api(0).post("/rooms", json!({"name": "staff", "private": true, "members": ["alice"]})).await?;
        assert_eq!(status, 201, "{created}");

        // A member's new session on the other node is joined to it.
        let mut alice = ChatClient::connect(cluster.addr(1), "alice").await?;
        let frames = until_rooms(&mut alice).await?;
        let rooms = rooms_of(frames.last().expect("rooms"))?;
        room_entry(&rooms, "staff")?;
        let mut carol = ChatClient::connect(cluster.addr(1), "carol").await?;
        carol.refused_with(json!({"type": "join", "room": "staff"}), 4403).await?;

        // Made a member through node 1, carol joins through node 0.
        let (status, body) = cluster.api(1).put("/rooms/staff/members/carol").await?;
        assert_eq!(status, 204, "{body}");
        let mut carol = ChatClient::connect(cluster.addr(0), "carol").await?;
        carol.join("staff").await?;
        carol.join(ROOM).await?;
        alice.join(ROOM).await?;
        let first = alice.publish("staff", json!("for members")).await?;
        assert_eq!(carol.skip_to("msg").await?.u64("id"), Some(first));

        // Removed through node 1, carol's session on node 0 leaves the room
        // at once: told its rooms without it, and nothing more from it.
        let (status, body) = cluster.api(1).delete("/rooms/staff/members/carol").await?;
        assert_eq!(status, 204, "{body}");
        let rooms = carol.skip_to("rooms").await?;
        let listed = rooms_of(&rooms)?;
        assert!(listed.iter().all(|r| r["room"] != "staff"), "staff still listed for carol: {rooms}");
        alice.skip_to_presence("carol", "leave").await?;
        alice.publish("staff", json!("members only")).await?;
        let marker = alice.publish(ROOM, json!("marker")).await?;
        loop {
            let frame = carol.skip_to("msg").await?;
            assert_ne!(frame.str("room"), Some("staff"), "carol still gets the room: {frame}");
            if frame.str("room") == Some(ROOM) && frame.u64("id") == Some(marker) {
                break;
            }
        }
        carol.refused_with(json!({"type": "join", "room": "staff"}), 4403).await?;
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn offline_marks_left_on_one_node_replay_on_another() {
    bounded(async {
        let grace = Duration::from_millis(300);
        let mut options = ClusterOptions::new(BINARY, "store-offline");
        options.grace = grace;
        let cluster = Cluster::start(options, 2).await?;
        let mut alice = ChatClient::connect(cluster.addr(1), "alice").await?;
        alice.join(ROOM).await?;
        let mut bob = ChatClient::connect(cluster.addr(0), "bob").await?;
        bob.join(ROOM).await?;
        let seen = alice.publish(ROOM, json!({"n": 0})).await?;
        assert_eq!(bob.skip_to("msg").await?.u64("id"), Some(seen));

        let sid = bob.sid().to_owned();
        bob.disconnect().await?;
        wait_session_ended(cluster.addr(0), &sid, grace).await?;
        alice.skip_to_presence("bob", "leave").await?;
        let mut missed = Vec::new();
        for n in 1..4 {
            missed.push(alice.publish(ROOM, json!({"n": n})).await?);
        }

        let mut bob = ChatClient::connect(cluster.addr(1), "bob").await?;
        let frames = until_rooms(&mut bob).await?;
        let replayed: Vec<u64> = frames
            .iter()
            .filter(|f| f.typ() == "msg" && f.str("room") == Some(ROOM))
            .filter_map(|f| f.u64("id"))
            .collect();
        assert_eq!(replayed, missed, "replayed after welcome: {frames:?}");
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn retention_trims_history_for_every_node_and_forgets_the_trimmed_cids() {
    bounded(async {
        let mut options = ClusterOptions::new(BINARY, "store-retention");
        for (key, value) in [
            ("SWITCHBOARD_HISTORY_MAX_MESSAGES", "5"),
            ("SWITCHBOARD_RETENTION_INTERVAL", "100ms"),
            ("SWITCHBOARD_RETENTION", r#"{"brief-*"={max_age="1s"}}"#),
        ] {
            options.env.push((key.to_owned(), value.to_owned()));
        }
        let cluster = Cluster::start(options, 2).await?;
        let prefix = cluster.options().key_prefix.clone();
        // An entry of the unbounded cid hash older versions kept.
        redis_cli(&cluster, &["HSET", &format!("{prefix}cids:{ROOM}"), "alice\u{1f}legacy", "1"])?;

        for n in 1..=12u64 {
            let body = json!({"data": n, "user": "alice", "cid": format!("c{n}")});
            let answer = cluster.api((n % 2) as usize).publish(ROOM, body).await?;
            assert_eq!(answer["id"], n, "{answer}");
        }
        for n in 1..=3u64 {
            cluster.api(0).publish("brief-a", json!({"data": n, "user": "alice", "cid": format!("b{n}")})).await?;
        }

        // Both nodes read the trimmed history.
        for node in 0..2 {
            let kept = ids(&cluster.api(node).history(ROOM, "after=0").await?);
            assert_eq!(kept, [8, 9, 10, 11, 12], "history through node {node}");
        }
        // Only the kept messages' cids are remembered ...
        let cids = redis_cli(&cluster, &["ZRANGE", &format!("{prefix}cid:{ROOM}"), "0", "-1"])?;
        let cids: Vec<&str> = cids.lines().collect();
        let want: Vec<String> = (8..=12).map(|n| format!("alice\u{1f}c{n}")).collect();
        assert_eq!(cids, want, "cids kept for {ROOM}");
        // ... and a retry of one of them is still stored once.
        let retry = cluster.api(1).publish(ROOM, json!({"data": 12, "user": "alice", "cid": "c12"})).await?;
        assert_eq!(retry["id"], 12, "{retry}");
        assert_eq!(ids(&cluster.api(0).history(ROOM, "after=0").await?), [8, 9, 10, 11, 12]);

        // Age: the brief room empties, and its cids and the old hash go.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let left = cluster.api(1).history("brief-a", "after=0").await?;
            let brief_cids = redis_cli(&cluster, &["EXISTS", &format!("{prefix}cid:brief-a")])?;
            let legacy = redis_cli(&cluster, &["EXISTS", &format!("{prefix}cids:{ROOM}")])?;
            if left.is_empty() && brief_cids == "0" && legacy == "0" {
                break;
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "brief-a holds {left:?}, its cid set exists: {brief_cids}, the old cid hash exists: {legacy}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(())
    })
    .await;
}
