//! §7 "An ack means durable": a publish's `ack` carries the stored message
//! `id`, and the message is in the history by the time the ack arrives. A
//! retried publish (same `cid`) is stored and delivered once, even from a
//! new session of the same user.

use std::path::Path;

use switchboard::config::StoreKind;
use switchboard_testkit::im::{ids, Api, ChatClient};
use switchboard_testkit::{bounded, json, Config, TestServer};

const ROOM: &str = "lobby";
const KEY: &str = "durable-key";

fn on_disk(dir: &Path) -> impl FnOnce(&mut Config) + '_ {
    move |c| {
        c.store = StoreKind::Sqlite;
        c.data_dir = dir.to_owned();
        c.api_key = Some(KEY.into());
    }
}

#[tokio::test]
async fn an_acked_message_is_already_in_history() {
    bounded(async {
        let dir = tempfile::tempdir()?;
        let server = TestServer::start_with(on_disk(dir.path())).await;
        let api = Api::new(server.addr(), Some(KEY));
        let mut alice = ChatClient::connect(server.addr(), "alice").await?;
        alice.join(ROOM).await?;
        for n in 0..20 {
            let ack = alice.acked(json!({"type": "publish", "room": ROOM, "data": {"n": n}})).await?;
            let id = ack.u64("id").ok_or_else(|| anyhow::anyhow!("publish ack without id: {ack}"))?;
            // Asked the moment the ack arrived, through another door.
            let page = api.history(ROOM, &format!("after={}&limit=1", id - 1)).await?;
            assert_eq!(ids(&page), [id], "message {id} acked but not in history");
            assert_eq!(page[0]["data"], json!({"n": n}));
        }
        server.shutdown().await;
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn a_retried_publish_is_stored_and_delivered_once() {
    bounded(async {
        let server = TestServer::start_with(|c| c.api_key = Some(KEY.into())).await;
        let addr = server.addr();
        let api = Api::new(addr, Some(KEY));
        let mut alice = ChatClient::connect(addr, "alice").await?;
        alice.join(ROOM).await?;
        let mut bob = ChatClient::connect(addr, "bob").await?;
        bob.join(ROOM).await?;
        bob.sync().await?;

        let publish = json!({"type": "publish", "room": ROOM, "data": "hello", "cid": "m-1"});
        let first = alice.acked(publish.clone()).await?;
        let id = first.u64("id").expect("ack with id");

        // Resent on the same session: acked again with the same id.
        let again = alice.acked(publish.clone()).await?;
        assert_eq!(again.u64("id"), Some(id), "{again}");

        // Resent from a new session of the same user (the page reloaded
        // before the ack came).
        let mut alice_reloaded = ChatClient::connect(addr, "alice").await?;
        let third = alice_reloaded.acked(publish.clone()).await?;
        assert_eq!(third.u64("id"), Some(id), "{third}");

        // Twice in one batch.
        let twice = json!([
            {"type": "publish", "room": ROOM, "data": "batch", "cid": "m-2"},
            {"type": "publish", "room": ROOM, "data": "batch", "cid": "m-2"},
        ]);
        alice.send(&twice).await?;
        let batch_ack = alice.answer("m-2").await?;
        assert_eq!(batch_ack.typ(), "ack", "{batch_ack}");

        let history = api.history(ROOM, "after=0").await?;
        let stored: Vec<&serde_json::Value> = history.iter().map(|m| &m["data"]).collect();
        assert_eq!(stored, [&json!("hello"), &json!("batch")], "{history:?}");

        let seen = bob.sync().await?;
        let delivered: Vec<Option<u64>> = seen.iter().filter(|f| f.typ() == "msg").map(|f| f.u64("id")).collect();
        assert_eq!(delivered, [Some(id), batch_ack.u64("id")], "{seen:?}");

        // The same cid from another user is another message.
        let bobs = bob.acked(publish).await?;
        assert_ne!(bobs.u64("id"), Some(id), "{bobs}");
        assert_eq!(api.history(ROOM, "after=0").await?.len(), 3);
        server.shutdown().await;
        Ok(())
    })
    .await;
}

/// A publish to a room the session has not joined is refused (4403), not
/// stored, and may be sent again after joining (a refusal is not
/// remembered).
#[tokio::test]
async fn a_refused_publish_is_not_stored() {
    bounded(async {
        let server = TestServer::start_with(|c| c.api_key = Some(KEY.into())).await;
        let api = Api::new(server.addr(), Some(KEY));
        let mut alice = ChatClient::connect(server.addr(), "alice").await?;
        let publish = json!({"type": "publish", "room": ROOM, "data": "early", "cid": "p-1"});
        alice.refused_with(publish.clone(), 4403).await?;
        assert!(api.history(ROOM, "after=0").await?.is_empty());
        alice.join(ROOM).await?;
        let ack = alice.acked(publish).await?;
        assert_eq!(ack.u64("id"), Some(1), "{ack}");
        server.shutdown().await;
        Ok(())
    })
    .await;
}
