//! §7 read receipts: `read` stores the user's read mark, which never moves
//! back, and tells the room with a `read` frame; `rooms` shows the mark and
//! the unread count (the messages above it), also to the user's next
//! session.

use switchboard_testkit::im::{room_entry, rooms_of, ChatClient};
use switchboard_testkit::{bounded, json, TestServer};

const ROOM: &str = "lobby";

#[tokio::test]
async fn read_marks_are_stored_broadcast_and_never_move_back() {
    bounded(async {
        let server = TestServer::start().await;
        let addr = server.addr();
        let mut alice = ChatClient::connect(addr, "alice").await?;
        alice.join(ROOM).await?;
        let mut bob = ChatClient::connect(addr, "bob").await?;
        bob.join(ROOM).await?;
        let mut ids = Vec::new();
        for n in 0..3 {
            ids.push(alice.publish(ROOM, json!({"n": n})).await?);
        }
        assert_eq!(ids, [1, 2, 3]);
        alice.sync().await?;

        bob.acked(json!({"type": "read", "room": ROOM, "id": 2})).await?;
        let read = alice.skip_to("read").await?;
        assert_eq!((read.str("room"), read.str("user"), read.u64("id")), (Some(ROOM), Some("bob"), Some(2)), "{read}");
        assert!(read.seq().is_some(), "read is a sequenced frame: {read}");
        let rooms = bob.rooms().await?;
        let lobby = room_entry(&rooms, ROOM)?;
        assert_eq!(
            (&lobby["last_id"], &lobby["read"], &lobby["unread"]),
            (&json!(3), &json!(2), &json!(1)),
            "{rooms:?}"
        );

        // Going back is not allowed: the mark stays at 2, and nobody is told
        // that bob's mark went down.
        bob.request(json!({"type": "read", "room": ROOM, "id": 1})).await?;
        let rooms = bob.rooms().await?;
        let lobby = room_entry(&rooms, ROOM)?;
        assert_eq!((&lobby["read"], &lobby["unread"]), (&json!(2), &json!(1)), "the read mark moved back: {rooms:?}");
        let seen = alice.sync().await?;
        for frame in seen.iter().filter(|f| f.typ() == "read") {
            assert!(frame.u64("id").is_some_and(|id| id >= 2), "a read frame moved bob's mark back: {frame}");
        }

        bob.acked(json!({"type": "read", "room": ROOM, "id": 3})).await?;
        let read = alice.skip_to("read").await?;
        assert_eq!((read.str("user"), read.u64("id")), (Some("bob"), Some(3)));

        // A new session of bob starts from the stored mark.
        let mut bob_again = ChatClient::connect(addr, "bob").await?;
        let rooms = bob_again.skip_to("rooms").await?;
        let lobby = room_entry(&rooms_of(&rooms)?, ROOM)?.clone();
        assert_eq!((&lobby["last_id"], &lobby["read"], &lobby["unread"]), (&json!(3), &json!(3), &json!(0)), "{rooms}");

        // Marks are per user: alice read nothing but her own three
        // messages, which count as read.
        let rooms = alice.rooms().await?;
        assert_eq!(room_entry(&rooms, ROOM)?["read"], json!(3), "{rooms:?}");
        server.shutdown().await;
        Ok(())
    })
    .await;
}

/// Marking a room read that the user may not read is refused and tells
/// nobody.
#[tokio::test]
async fn read_in_a_forbidden_room_is_refused() {
    bounded(async {
        let server = TestServer::start().await;
        let addr = server.addr();
        let mut alice = ChatClient::connect(addr, "alice").await?;
        alice.join("dm:alice:bob").await?;
        alice.publish("dm:alice:bob", json!("secret")).await?;
        alice.sync().await?;
        let mut carol = ChatClient::connect(addr, "carol").await?;
        carol.refused_with(json!({"type": "read", "room": "dm:alice:bob", "id": 1}), 4403).await?;
        let seen = alice.sync().await?;
        assert!(seen.iter().all(|f| f.typ() != "read"), "{seen:?}");
        server.shutdown().await;
        Ok(())
    })
    .await;
}

/// A read mark belongs to a room the session is in (docs/protocol.md §7):
/// in a public room it has not joined the answer is `error` 4403, nothing
/// is stored (unread counts stay) and the room hears no `read` event.
#[tokio::test]
async fn read_in_a_room_not_joined_is_refused() {
    bounded(async {
        let server = TestServer::start().await;
        let addr = server.addr();
        let mut alice = ChatClient::connect(addr, "alice").await?;
        alice.join(ROOM).await?;
        alice.publish(ROOM, json!("one")).await?;
        alice.sync().await?;
        let mut bob = ChatClient::connect(addr, "bob").await?;
        let error = bob.refused_with(json!({"type": "read", "room": ROOM, "id": 1}), 4403).await?;
        assert!(error.str("message").is_some_and(|m| m.contains("join")), "{error}");
        let seen = alice.sync().await?;
        assert!(seen.iter().all(|f| f.typ() != "read"), "{seen:?}");

        // Joined, bob's mark is stored: nothing of it was stored before.
        bob.join(ROOM).await?;
        let lobby = bob.rooms().await?.into_iter().find(|r| r["room"] == ROOM).expect("lobby listed");
        assert_eq!((&lobby["read"], &lobby["unread"]), (&json!(0), &json!(1)), "{lobby}");
        bob.acked(json!({"type": "read", "room": ROOM, "id": 1})).await?;
        assert_eq!(alice.skip_to("read").await?.str("user"), Some("bob"));
        server.shutdown().await;
        Ok(())
    })
    .await;
}
