//! §7 offline delivery: when a user's last session ends, the server
//! remembers where the user's rooms stood; the user's next new session gets,
//! right after `welcome`, every message posted since (up to 500 per room,
//! oldest first; older ones by `history`), then a `rooms` frame with unread
//! counts. Rooms that became the user's while no session of the user was in
//! them (a DM opened by the other user, a membership added through the API,
//! any room after a restart) are replayed from the user's read mark.

use std::time::Duration;

use switchboard_testkit::im::{room_entry, rooms_of, wait_session_ended, Api, ChatClient};
use switchboard_testkit::{bounded, json, Frame, TestServer};

const GRACE: Duration = Duration::from_millis(300);
const ROOM: &str = "lobby";

/// Frames after `welcome` up to and including the first `rooms` frame.
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

/// Ends `client`'s session: closes its WebSocket and waits out the grace.
async fn go_offline(server: &TestServer, client: ChatClient) -> anyhow::Result<()> {
    let sid = client.sid().to_owned();
    client.disconnect().await?;
    wait_session_ended(server.addr(), &sid, GRACE).await
}

#[tokio::test]
async fn messages_posted_while_offline_arrive_after_welcome() {
    bounded(async {
        let server = TestServer::start_with(|c| c.grace = GRACE).await;
        let addr = server.addr();
        let mut alice = ChatClient::connect(addr, "alice").await?;
        alice.join(ROOM).await?;
        let mut bob = ChatClient::connect(addr, "bob").await?;
        bob.join(ROOM).await?;

        // Two messages bob sees live and marks read.
        let first = alice.publish(ROOM, json!({"n": 0})).await?;
        let second = alice.publish(ROOM, json!({"n": 1})).await?;
        assert_eq!(bob.skip_to("msg").await?.u64("id"), Some(first));
        assert_eq!(bob.skip_to("msg").await?.u64("id"), Some(second));
        bob.acked(json!({"type": "read", "room": ROOM, "id": second})).await?;

        go_offline(&server, bob).await?;
        alice.skip_to_presence("bob", "leave").await?;

        let mut offline = Vec::new();
        for n in 2..7 {
            offline.push(alice.publish(ROOM, json!({"n": n})).await?);
        }

        let mut bob = ChatClient::connect(addr, "bob").await?;
        let frames = until_rooms(&mut bob).await?;
        let (rooms, before_rooms) = frames.split_last().expect("at least the rooms frame");
        let replay: Vec<&Frame> = before_rooms.iter().filter(|f| f.typ() == "msg").collect();
        let replayed: Vec<(Option<u64>, Option<serde_json::Value>)> =
            replay.iter().map(|m| (m.u64("id"), m.data().cloned())).collect();
        let want: Vec<(Option<u64>, Option<serde_json::Value>)> =
            offline.iter().zip(2..7).map(|(id, n)| (Some(*id), Some(json!({"n": n})))).collect();
        assert_eq!(replayed, want, "replayed frames {before_rooms:?}");
        for m in &replay {
            assert_eq!(
                (m.str("room"), m.str("user"), m.str("from")),
                (Some(ROOM), Some("alice"), Some("")),
                "an offline replay names the sender, not a session: {m}"
            );
        }
        let lobby = room_entry(&rooms_of(rooms)?, ROOM)?.clone();
        assert_eq!(
            (&lobby["last_id"], &lobby["read"], &lobby["unread"]),
            (&json!(offline[4]), &json!(second), &json!(5)),
            "rooms frame {rooms}"
        );

        // Bob is a member again: a new message reaches him live, once.
        let live = alice.publish(ROOM, json!({"n": 7})).await?;
        let frame = bob.skip_to("msg").await?;
        assert_eq!(frame.u64("id"), Some(live), "{frame}");
        assert!(bob.sync().await?.iter().all(|f| f.typ() != "msg"));
        server.shutdown().await;
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn replay_covers_every_room_of_the_user() {
    bounded(async {
        let server = TestServer::start_with(|c| c.grace = GRACE).await;
        let addr = server.addr();
        let mut alice = ChatClient::connect(addr, "alice").await?;
        let mut bob = ChatClient::connect(addr, "bob").await?;
        for room in ["lobby", "random"] {
            alice.join(room).await?;
            bob.join(room).await?;
        }
        go_offline(&server, bob).await?;

        let mut posted = Vec::new();
        for (room, n) in [("lobby", 0), ("random", 1), ("lobby", 2), ("random", 3)] {
            let id = alice.publish(room, json!({"n": n})).await?;
            posted.push((room.to_owned(), id));
        }

        let mut bob = ChatClient::connect(addr, "bob").await?;
        let frames = until_rooms(&mut bob).await?;
        let (rooms, before_rooms) = frames.split_last().expect("at least the rooms frame");
        let replay: Vec<&Frame> = before_rooms.iter().filter(|f| f.typ() == "msg").collect();
        let mut got: Vec<(String, u64)> =
            replay.iter().map(|m| (m.str("room").unwrap_or_default().to_owned(), m.u64("id").unwrap_or(0))).collect();
        // Oldest first within each room; the order of rooms is free.
        for room in ["lobby", "random"] {
            let ids: Vec<u64> = got.iter().filter(|(r, _)| r == room).map(|(_, id)| *id).collect();
            assert_eq!(ids, vec![1, 2], "{room} replayed out of order: {replay:?}");
        }
        got.sort();
        posted.sort();
        assert_eq!(got, posted);
        let summary = rooms_of(rooms)?;
        for room in ["lobby", "random"] {
            let entry = room_entry(&summary, room)?;
            assert_eq!((&entry["last_id"], &entry["unread"]), (&json!(2), &json!(2)), "{rooms}");
        }
        server.shutdown().await;
        Ok(())
    })
    .await;
}

/// "The user's next new session receives, right after `welcome`, every
/// message posted since ..., then a `rooms` frame": nothing else (not even
/// the user's own presence) comes between `welcome` and the replay, so a
/// client can treat what precedes `rooms` as the catch-up.
#[tokio::test]
async fn missed_messages_come_right_after_welcome() {
    bounded(async {
        let server = TestServer::start_with(|c| c.grace = GRACE).await;
        let addr = server.addr();
        let mut alice = ChatClient::connect(addr, "alice").await?;
        alice.join(ROOM).await?;
        let mut bob = ChatClient::connect(addr, "bob").await?;
        bob.join(ROOM).await?;
        go_offline(&server, bob).await?;
        for n in 0..5 {
            alice.publish(ROOM, json!({"n": n})).await?;
        }

        let mut bob = ChatClient::connect(addr, "bob").await?;
        let frames = until_rooms(&mut bob).await?;
        let types: Vec<&str> = frames.iter().map(Frame::typ).collect();
        assert_eq!(types, ["msg", "msg", "msg", "msg", "msg", "rooms"], "after welcome: {frames:?}");
        server.shutdown().await;
        Ok(())
    })
    .await;
}

/// A user with another session still online never went offline: a new
/// session replays nothing (the messages reached the user live), and still
/// gets its `rooms` frame.
#[tokio::test]
async fn no_replay_while_another_session_is_online() {
    bounded(async {
        let server = TestServer::start_with(|c| c.grace = GRACE).await;
        let addr = server.addr();
        let mut alice = ChatClient::connect(addr, "alice").await?;
        alice.join(ROOM).await?;
        let mut bob_phone = ChatClient::connect(addr, "bob").await?;
        bob_phone.join(ROOM).await?;
        let bob_laptop = ChatClient::connect(addr, "bob").await?;
        go_offline(&server, bob_laptop).await?;

        let id = alice.publish(ROOM, json!("while the laptop was off")).await?;
        assert_eq!(bob_phone.skip_to("msg").await?.u64("id"), Some(id));

        let mut bob_laptop = ChatClient::connect(addr, "bob").await?;
        let frames = until_rooms(&mut bob_laptop).await?;
        assert!(
            frames.iter().all(|f| f.typ() != "msg"),
            "bob was online on his phone; nothing to replay, got {frames:?}"
        );
        server.shutdown().await;
        Ok(())
    })
    .await;
}

/// More than 500 messages while offline: the new session gets 500 of them
/// oldest first, and the rest are *older* ones, to be read with `history`
/// (§7: "up to 500 per room, oldest first; older ones by history"). So the
/// newest message is always among those replayed.
#[tokio::test]
async fn replay_is_capped_at_the_newest_500_per_room() {
    bounded(async {
        let server = TestServer::start_with(|c| c.grace = GRACE).await;
        let addr = server.addr();
        let mut alice = ChatClient::connect(addr, "alice").await?;
        alice.join(ROOM).await?;
        let mut bob = ChatClient::connect(addr, "bob").await?;
        bob.join(ROOM).await?;
        go_offline(&server, bob).await?;

        let answers = alice.publish_all(ROOM, (0..510).map(|n| json!({"n": n})).collect()).await?;
        assert!(answers.iter().all(|a| a.typ() == "ack"), "every publish is acked");
        let newest = answers.last().and_then(|a| a.u64("id")).expect("an id");
        assert_eq!(newest, 510);

        let mut bob = ChatClient::connect(addr, "bob").await?;
        let frames = until_rooms(&mut bob).await?;
        let ids: Vec<u64> = frames.iter().filter(|f| f.typ() == "msg").filter_map(|f| f.u64("id")).collect();
        assert_eq!(ids.len(), 500, "at most 500 replayed per room");
        assert_eq!(
            (ids.first(), ids.last()),
            (Some(&11), Some(&510)),
            "the newest 500 (11..=510), oldest first; 1..=10 are left to history"
        );
        assert!(ids.windows(2).all(|w| w[1] == w[0] + 1), "oldest first, no holes");
        server.shutdown().await;
        Ok(())
    })
    .await;
}

/// A user comes back while the room is busy: the replay (history after the
/// offline mark) and live delivery (from the moment the new session joined)
/// must meet without overlap, so the user sees every message once, in id
/// order (§1.1: a `msg`'s `id` is increasing within the room).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replay_and_live_delivery_do_not_overlap() {
    bounded(async {
        let dir = tempfile::tempdir()?;
        let server = TestServer::start_with(|c| {
            c.grace = GRACE;
            c.store = switchboard::config::StoreKind::Sqlite;
            c.data_dir = dir.path().to_owned();
        })
        .await;
        let addr = server.addr();
        let mut alice = ChatClient::connect(addr, "alice").await?;
        alice.join(ROOM).await?;
        let mut bob = ChatClient::connect(addr, "bob").await?;
        bob.join(ROOM).await?;
        go_offline(&server, bob).await?;
        alice.publish_all(ROOM, (0..20).map(|n| json!(n)).collect()).await?;

        // Alice keeps talking while bob comes back.
        let talking = tokio::spawn(async move {
            let mut last = 0;
            for round in 0..30 {
                let answers = alice.publish_all(ROOM, (0..5).map(|n| json!([round, n])).collect()).await?;
                last = answers.last().and_then(|a| a.u64("id")).unwrap_or(last);
            }
            anyhow::Ok(last)
        });
        tokio::time::sleep(Duration::from_millis(5)).await;
        let mut bob = ChatClient::connect(addr, "bob").await?;
        let last = talking.await??;

        let mut seen = Vec::new();
        while seen.last() != Some(&last) {
            let frame = bob.next().await?;
            if frame.typ() == "msg" {
                seen.push(frame.u64("id").unwrap_or(0));
                if seen.len() % 64 == 0 {
                    bob.ack().await?;
                }
            }
            anyhow::ensure!(seen.len() <= 2 * last as usize, "runaway: {seen:?}");
        }
        let want: Vec<u64> = (1..=last).collect();
        assert!(
            seen == want,
            "bob saw {} msg frames for {last} messages; out of order or twice around: {:?}",
            seen.len(),
            seen.windows(2).filter(|w| w[1] != w[0] + 1).collect::<Vec<_>>()
        );
        server.shutdown().await;
        Ok(())
    })
    .await;
}

/// A direct-message room opened while the other user was offline has no
/// offline mark (the mark is written when a session ends, for the rooms
/// the user had then): its messages are replayed from the user's read mark,
/// which bob never set there, so all of them, before the `rooms` frame.
#[tokio::test]
async fn a_dm_opened_while_offline_is_replayed_on_the_next_session() {
    bounded(async {
        let server = TestServer::start_with(|c| c.grace = GRACE).await;
        let addr = server.addr();
        let mut alice = ChatClient::connect(addr, "alice").await?;
        alice.join(ROOM).await?;
        let mut bob = ChatClient::connect(addr, "bob").await?;
        bob.join(ROOM).await?;
        go_offline(&server, bob).await?;

        const DM: &str = "dm:alice:bob";
        alice.join(DM).await?;
        let mut sent = Vec::new();
        for n in 0..3 {
            sent.push((DM.to_owned(), alice.publish(DM, json!({"dm": n})).await?));
        }
        sent.push((ROOM.to_owned(), alice.publish(ROOM, json!("in the lobby")).await?));

        let mut bob = ChatClient::connect(addr, "bob").await?;
        let frames = until_rooms(&mut bob).await?;
        let (rooms, before_rooms) = frames.split_last().expect("at least the rooms frame");
        let mut got: Vec<(String, u64)> = before_rooms
            .iter()
            .filter(|f| f.typ() == "msg")
            .map(|m| (m.str("room").unwrap_or_default().to_owned(), m.u64("id").unwrap_or(0)))
            .collect();
        let dm_ids: Vec<u64> = got.iter().filter(|(r, _)| r == DM).map(|(_, id)| *id).collect();
        assert_eq!(dm_ids, [1, 2, 3], "the DM replayed in id order, before rooms: {before_rooms:?}");
        got.sort();
        sent.sort();
        assert_eq!(got, sent, "every room's messages once: {before_rooms:?}");
        let dm = room_entry(&rooms_of(rooms)?, DM)?.clone();
        assert_eq!((&dm["last_id"], &dm["read"], &dm["unread"]), (&json!(3), &json!(0), &json!(3)), "{rooms}");

        // Live from now on, once.
        let live = alice.publish(DM, json!("live")).await?;
        assert_eq!(bob.skip_to("msg").await?.u64("id"), Some(live));
        assert!(bob.sync().await?.iter().all(|f| f.typ() != "msg"));
        server.shutdown().await;
        Ok(())
    })
    .await;
}

/// A user who has never connected, made a member of a private room through
/// the HTTP API: the first session gets what was posted there.
#[tokio::test]
async fn a_membership_added_through_the_api_is_replayed_on_the_next_session() {
    bounded(async {
        const KEY: &str = "offline-key";
        let server = TestServer::start_with(|c| {
            c.grace = GRACE;
            c.api_key = Some(KEY.into());
        })
        .await;
        let addr = server.addr();
        let api = Api::new(addr, Some(KEY));
        let (status, body) =
            api.post("/rooms", json!({"name": "staff", "private": true, "members": ["alice"]})).await?;
        assert_eq!(status, 201, "{body}");
        api.publish("staff", json!({"data": "before carol"})).await?;
        let (status, body) = api.put("/rooms/staff/members/carol").await?;
        assert_eq!(status, 204, "{body}");
        api.publish("staff", json!({"data": "welcome carol"})).await?;

        let mut carol = ChatClient::connect(addr, "carol").await?;
        let frames = until_rooms(&mut carol).await?;
        let types: Vec<&str> = frames.iter().map(Frame::typ).collect();
        assert_eq!(types, ["msg", "msg", "rooms"], "after welcome: {frames:?}");
        let data: Vec<Option<&serde_json::Value>> = frames[..2].iter().map(Frame::data).collect();
        assert_eq!(data, [Some(&json!("before carol")), Some(&json!("welcome carol"))]);
        server.shutdown().await;
        Ok(())
    })
    .await;
}

/// The node restarted while bob was connected: his session never ended
/// cleanly, so no offline mark was written. His next session (on the new
/// process, same history file) replays what is above his read mark.
#[tokio::test]
async fn after_a_restart_the_replay_starts_at_the_read_mark() {
    bounded(async {
        let dir = tempfile::tempdir()?;
        let on_disk = |c: &mut switchboard_testkit::Config| {
            c.grace = GRACE;
            c.store = switchboard::config::StoreKind::Sqlite;
            c.data_dir = dir.path().to_owned();
        };
        let server = TestServer::start_with(on_disk).await;
        let mut alice = ChatClient::connect(server.addr(), "alice").await?;
        alice.join(ROOM).await?;
        let mut bob = ChatClient::connect(server.addr(), "bob").await?;
        bob.join(ROOM).await?;
        let first = alice.publish(ROOM, json!(0)).await?;
        let second = alice.publish(ROOM, json!(1)).await?;
        bob.acked(json!({"type": "read", "room": ROOM, "id": first})).await?;
        assert_eq!(bob.skip_to("msg").await?.u64("id"), Some(first));
        server.shutdown().await;

        let server = TestServer::start_with(on_disk).await;
        let mut alice = ChatClient::connect(server.addr(), "alice").await?;
        let third = alice.publish(ROOM, json!(2)).await?;
        let mut bob = ChatClient::connect(server.addr(), "bob").await?;
        let frames = until_rooms(&mut bob).await?;
        let ids: Vec<u64> = frames.iter().filter(|f| f.typ() == "msg").filter_map(|f| f.u64("id")).collect();
        assert_eq!(ids, [second, third], "everything above bob's read mark {first}: {frames:?}");
        server.shutdown().await;
        Ok(())
    })
    .await;
}
