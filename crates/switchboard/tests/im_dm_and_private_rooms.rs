//! §7 rooms: a direct-message room `dm:<a>:<b>` (a < b) is only for its two
//! users; a private room created by the HTTP API only for its members. Who
//! may not join may not read its history or presence either.

use switchboard_testkit::im::{Api, ChatClient};
use switchboard_testkit::{bounded, json, TestServer};

const KEY: &str = "rooms-key";
const DM: &str = "dm:alice:bob";

#[tokio::test]
async fn a_dm_room_is_only_for_its_two_users() {
    bounded(async {
        let server = TestServer::start().await;
        let addr = server.addr();
        let mut alice = ChatClient::connect(addr, "alice").await?;
        let mut bob = ChatClient::connect(addr, "bob").await?;
        let mut carol = ChatClient::connect(addr, "carol").await?;
        alice.join(DM).await?;
        bob.join(DM).await?;
        bob.sync().await?;
        let id = alice.publish(DM, json!("just between us")).await?;
        let msg = bob.skip_to("msg").await?;
        assert_eq!((msg.str("room"), msg.u64("id")), (Some(DM), Some(id)), "{msg}");

        let refusal = carol.refused_with(json!({"type": "join", "room": DM}), 4403).await?;
        assert!(refusal.cid().is_some(), "the refusal names the frame: {refusal}");
        carol.refused_with(json!({"type": "history", "room": DM}), 4403).await?;
        carol.refused_with(json!({"type": "who", "room": DM}), 4403).await?;
        carol.refused_with(json!({"type": "publish", "room": DM, "data": "hi"}), 4403).await?;
        let seen = bob.sync().await?;
        assert!(seen.iter().all(|f| f.typ() != "msg"), "{seen:?}");

        // Only the canonical name exists.
        alice.refused_with(json!({"type": "join", "room": "dm:bob:alice"}), 4400).await?;
        server.shutdown().await;
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn a_private_room_admits_its_members_only() {
    bounded(async {
        let server = TestServer::start_with(|c| c.api_key = Some(KEY.into())).await;
        let addr = server.addr();
        let api = Api::new(addr, Some(KEY));
        let (status, created) =
            api.post("/rooms", json!({"name": "staff", "private": true, "members": ["alice"]})).await?;
        assert_eq!(status, 201, "{created}");
        assert_eq!(created, json!({"name": "staff", "private": true, "members": ["alice"]}));

        let mut alice = ChatClient::connect(addr, "alice").await?;
        alice.join("staff").await?;
        alice.publish("staff", json!("staff only")).await?;

        let mut carol = ChatClient::connect(addr, "carol").await?;
        let error = carol.refused_with(json!({"type": "join", "room": "staff"}), 4403).await?;
        assert!(error.str("message").is_some_and(|m| m.contains("private")), "{error}");
        carol.refused_with(json!({"type": "history", "room": "staff"}), 4403).await?;
        carol.refused_with(json!({"type": "who", "room": "staff"}), 4403).await?;

        // Made a member, carol may join and read.
        let (status, body) = api.put("/rooms/staff/members/carol").await?;
        assert_eq!(status, 204, "{body}");
        carol.join("staff").await?;
        let history = carol.history("staff", json!({})).await?;
        assert_eq!(history.len(), 1, "{history:?}");

        // Removed again, a new session of carol is refused.
        let (status, body) = api.delete("/rooms/staff/members/carol").await?;
        assert_eq!(status, 204, "{body}");
        let mut carol_again = ChatClient::connect(addr, "carol").await?;
        carol_again.refused_with(json!({"type": "join", "room": "staff"}), 4403).await?;

        // Made public, anyone may join.
        let (status, body) = api.post("/rooms", json!({"name": "staff", "private": false})).await?;
        assert_eq!(status, 201, "{body}");
        let mut dave = ChatClient::connect(addr, "dave").await?;
        dave.join("staff").await?;
        server.shutdown().await;
        Ok(())
    })
    .await;
}

/// A private room's members get it on every new session: the API made them
/// members, so they are joined automatically and told in `rooms`.
#[tokio::test]
async fn members_of_a_private_room_are_joined_automatically() {
    bounded(async {
        let server = TestServer::start_with(|c| c.api_key = Some(KEY.into())).await;
        let addr = server.addr();
        let api = Api::new(addr, Some(KEY));
        let (status, body) =
            api.post("/rooms", json!({"name": "staff", "private": true, "members": ["alice"]})).await?;
        assert_eq!(status, 201, "{body}");
        let mut alice = ChatClient::connect(addr, "alice").await?;
        let rooms = alice.skip_to("rooms").await?;
        assert!(rooms.value()["rooms"].as_array().is_some_and(|r| r.iter().any(|r| r["room"] == "staff")), "{rooms}");
        let posted = api.publish("staff", json!({"data": "welcome aboard"})).await?;
        let msg = alice.skip_to("msg").await?;
        assert_eq!((msg.str("room"), msg.u64("id")), (Some("staff"), posted["id"].as_u64()));
        server.shutdown().await;
        Ok(())
    })
    .await;
}

/// Removing a member through the API takes the user's live sessions out of
/// the room at once: each gets a `rooms` frame without it, receives nothing
/// more from it, and may neither publish there nor join again; the room
/// sees the user leave.
#[tokio::test]
async fn removing_a_member_takes_the_live_sessions_out_of_the_room() {
    bounded(async {
        let server = TestServer::start_with(|c| c.api_key = Some(KEY.into())).await;
        let addr = server.addr();
        let api = Api::new(addr, Some(KEY));
        let (status, body) =
            api.post("/rooms", json!({"name": "staff", "private": true, "members": ["alice", "carol"]})).await?;
        assert_eq!(status, 201, "{body}");
        let mut alice = ChatClient::connect(addr, "alice").await?;
        let mut carol = ChatClient::connect(addr, "carol").await?;
        let mut carol_phone = ChatClient::connect(addr, "carol").await?;
        for client in [&mut alice, &mut carol, &mut carol_phone] {
            client.join("staff").await?;
        }
        let before = alice.publish("staff", json!("before")).await?;
        for carol in [&mut carol, &mut carol_phone] {
            assert_eq!(carol.skip_to("msg").await?.u64("id"), Some(before));
        }

        let (status, body) = api.delete("/rooms/staff/members/carol").await?;
        assert_eq!(status, 204, "{body}");
        alice.skip_to_presence("carol", "leave").await?;
        for carol in [&mut carol, &mut carol_phone] {
            let rooms = carol.skip_to("rooms").await?;
            assert!(rooms.cid().is_none(), "told unasked: {rooms}");
            let listed = rooms.value()["rooms"].as_array().cloned().unwrap_or_default();
            assert!(listed.iter().all(|r| r["room"] != "staff"), "staff still listed: {rooms}");
        }

        let after = alice.publish("staff", json!("after")).await?;
        api.publish("staff", json!({"data": "from the back-end"})).await?;
        assert_eq!(alice.skip_to("msg").await?.u64("id"), Some(after));
        for carol in [&mut carol, &mut carol_phone] {
            let seen = carol.sync().await?;
            assert!(seen.iter().all(|f| f.typ() != "msg"), "carol still receives staff: {seen:?}");
            carol.refused_with(json!({"type": "publish", "room": "staff", "data": "hi"}), 4403).await?;
            carol.refused_with(json!({"type": "join", "room": "staff"}), 4403).await?;
        }
        let (status, presence) = api.get("/rooms/staff/presence").await?;
        assert_eq!(status, 200, "{presence}");
        assert_eq!(presence["users"], json!([{"user": "alice", "name": "alice"}]), "{presence}");
        server.shutdown().await;
        Ok(())
    })
    .await;
}
