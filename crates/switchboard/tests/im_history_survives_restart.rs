//! §7 history with the SQLite store: what was acked before a shutdown is in
//! the history after a restart on the same `data_dir`, with the same ids;
//! ids keep increasing afterwards, and memberships and read marks survive
//! too.

use std::path::Path;

use switchboard::config::StoreKind;
use switchboard_testkit::im::{ids, room_entry, rooms_of, Api, ChatClient};
use switchboard_testkit::{bounded, json, Config, TestServer};

const ROOM: &str = "lobby";

fn on_disk(dir: &Path) -> impl FnOnce(&mut Config) + '_ {
    move |c| {
        c.store = StoreKind::Sqlite;
        c.data_dir = dir.to_owned();
    }
}

#[tokio::test]
async fn history_survives_a_restart() {
    bounded(async {
        let dir = tempfile::tempdir()?;
        let server = TestServer::start_with(on_disk(dir.path())).await;
        let mut alice = ChatClient::connect(server.addr(), "alice").await?;
        alice.join(ROOM).await?;
        let mut acked = Vec::new();
        for n in 0..5 {
            acked.push(alice.publish(ROOM, json!({"n": n, "text": "über <b>"})).await?);
        }
        alice.acked(json!({"type": "read", "room": ROOM, "id": acked[2]})).await?;
        let before = alice.history(ROOM, json!({})).await?;
        assert_eq!(ids(&before), acked);
        alice.disconnect().await?;
        server.shutdown().await;

        let server = TestServer::start_with(on_disk(dir.path())).await;
        let mut bob = ChatClient::connect(server.addr(), "bob").await?;
        let after = bob.history(ROOM, json!({})).await?;
        assert_eq!(after, before, "the same messages (id, ts, user, name, data) after the restart");
        for (n, message) in after.iter().enumerate() {
            assert_eq!(message["data"], json!({"n": n, "text": "über <b>"}));
            assert_eq!(message["user"], "alice");
        }

        // Ids go on from where they were.
        bob.join(ROOM).await?;
        let next = bob.publish(ROOM, json!("after the restart")).await?;
        assert_eq!(next, acked[4] + 1, "message ids must never be reused");

        // Alice is still a member (auto-joined) with her read mark: her own
        // messages count as read, so only bob's new one is unread.
        let mut alice = ChatClient::connect(server.addr(), "alice").await?;
        let rooms = alice.skip_to("rooms").await?;
        let lobby = room_entry(&rooms_of(&rooms)?, ROOM)?.clone();
        assert_eq!(
            (&lobby["last_id"], &lobby["read"], &lobby["unread"]),
            (&json!(next), &json!(acked[4]), &json!(1)),
            "{rooms}"
        );
        let live = bob.publish(ROOM, json!("live")).await?;
        let msg = alice.skip_to("msg").await?;
        assert_eq!(msg.u64("id"), Some(live), "alice is in the room again: {msg}");
        server.shutdown().await;
        Ok(())
    })
    .await;
}

/// A retry after a restart (same user, same cid) is still stored once.
#[tokio::test]
async fn a_retry_after_a_restart_is_stored_once() {
    bounded(async {
        let dir = tempfile::tempdir()?;
        let publish = json!({"type": "publish", "room": ROOM, "data": "once", "cid": "retry-1"});
        let server = TestServer::start_with(on_disk(dir.path())).await;
        let mut alice = ChatClient::connect(server.addr(), "alice").await?;
        alice.join(ROOM).await?;
        let first = alice.acked(publish.clone()).await?;
        alice.disconnect().await?;
        server.shutdown().await;

        let server = TestServer::start_with(on_disk(dir.path())).await;
        let mut alice = ChatClient::connect(server.addr(), "alice").await?;
        let again = alice.acked(publish).await?;
        assert_eq!(again.u64("id"), first.u64("id"), "{first} then {again}");
        let history = alice.history(ROOM, json!({})).await?;
        assert_eq!(history.len(), 1, "{history:?}");
        server.shutdown().await;
        Ok(())
    })
    .await;
}

/// Private rooms and their members are in the store too.
#[tokio::test]
async fn private_rooms_survive_a_restart() {
    bounded(async {
        let dir = tempfile::tempdir()?;
        let with_api = |c: &mut Config| {
            on_disk(dir.path())(c);
            c.api_key = Some("key".into());
        };
        let server = TestServer::start_with(with_api).await;
        let (status, body) = Api::new(server.addr(), Some("key"))
            .post("/rooms", json!({"name": "staff", "private": true, "members": ["alice"]}))
            .await?;
        assert_eq!(status, 201, "{body}");
        server.shutdown().await;

        let server = TestServer::start_with(with_api).await;
        let addr = server.addr();
        let mut carol = ChatClient::connect(addr, "carol").await?;
        carol.refused_with(json!({"type": "join", "room": "staff"}), 4403).await?;
        let mut alice = ChatClient::connect(addr, "alice").await?;
        alice.join("staff").await?;
        let (status, rooms) = Api::new(addr, Some("key")).get("/rooms").await?;
        assert_eq!(status, 200);
        let staff = rooms["rooms"]
            .as_array()
            .and_then(|r| r.iter().find(|r| r["name"] == "staff"))
            .cloned()
            .unwrap_or_default();
        assert_eq!(staff["private"], true, "{rooms}");
        server.shutdown().await;
        Ok(())
    })
    .await;
}
