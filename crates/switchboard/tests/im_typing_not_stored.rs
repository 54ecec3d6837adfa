//! §7 typing: `typing` is relayed to the room's *other* users (not to any
//! session of the typist) and never stored.

use switchboard_testkit::im::{Api, ChatClient};
use switchboard_testkit::{bounded, json, TestServer};

const ROOM: &str = "lobby";
const KEY: &str = "typing-key";

#[tokio::test]
async fn typing_reaches_others_only_and_is_not_history() {
    bounded(async {
        let server = TestServer::start_with(|c| c.api_key = Some(KEY.into())).await;
        let addr = server.addr();
        let mut alice = ChatClient::connect(addr, "alice").await?;
        alice.join(ROOM).await?;
        let mut alice_phone = ChatClient::connect(addr, "alice").await?;
        alice_phone.join(ROOM).await?;
        let mut bob = ChatClient::connect(addr, "bob").await?;
        bob.join(ROOM).await?;
        for client in [&mut alice, &mut alice_phone, &mut bob] {
            client.sync().await?;
        }

        alice.send(&json!({"type": "typing", "room": ROOM})).await?;
        let typing = bob.skip_to("typing").await?;
        assert_eq!(
            (typing.str("room"), typing.str("user"), typing.str("name")),
            (Some(ROOM), Some("alice"), Some("alice")),
            "{typing}"
        );
        assert!(typing.seq().is_some(), "typing is a sequenced frame: {typing}");
        assert!(typing.str("sid").is_none(), "never a session id: {typing}");

        for (who, client) in [("alice", &mut alice), ("alice's phone", &mut alice_phone)] {
            let seen = client.sync().await?;
            assert!(seen.iter().all(|f| f.typ() != "typing"), "{who} must not hear her own typing: {seen:?}");
        }

        // Not stored: the room has no history, and a real message that
        // follows is message 1.
        assert!(bob.history(ROOM, json!({})).await?.is_empty());
        let api = Api::new(addr, Some(KEY));
        assert!(api.history(ROOM, "").await?.is_empty());
        let id = alice.publish(ROOM, json!("hello")).await?;
        assert_eq!(id, 1, "typing must not take message ids");
        let history = bob.history(ROOM, json!({})).await?;
        assert_eq!(history.len(), 1, "{history:?}");
        assert_eq!(history[0]["data"], "hello");
        server.shutdown().await;
        Ok(())
    })
    .await;
}

/// Typing in a room the session has not joined is refused (4403) and
/// relayed to nobody.
#[tokio::test]
async fn typing_outside_a_joined_room_is_refused() {
    bounded(async {
        let server = TestServer::start().await;
        let addr = server.addr();
        let mut bob = ChatClient::connect(addr, "bob").await?;
        bob.join(ROOM).await?;
        let mut mallory = ChatClient::connect(addr, "mallory").await?;
        mallory.send(&json!({"type": "typing", "room": ROOM})).await?;
        let error = mallory.skip_to("error").await?;
        assert_eq!(error.code(), Some(4403), "{error}");
        assert!(error.seq().is_some(), "an answer to a frame is sequenced: {error}");
        let seen = bob.sync().await?;
        assert!(seen.iter().all(|f| f.typ() != "typing"), "{seen:?}");
        server.shutdown().await;
        Ok(())
    })
    .await;
}
