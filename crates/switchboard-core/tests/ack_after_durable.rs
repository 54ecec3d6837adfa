//! "Ack means durable": a publish is acknowledged only after the store took
//! it; when the store fails, the sender gets error 4500, nobody receives
//! the message, and a retry with the same cid is applied once it works.

use std::sync::Arc;

use serde_json::Value;
use switchboard_core::frame::{parse_batch, Downstream};
use switchboard_core::identity::Credentials;
use switchboard_core::session::Attachment;
use switchboard_core::store::{HistoryQuery, MemoryStore, Store};
use switchboard_core::{codes, Core, CoreOptions};

fn frames(attachment: &mut Attachment) -> Vec<Value> {
    let Some(Ok(batch)) = attachment.try_batch(1000) else { return Vec::new() };
    batch
        .iter()
        .map(|f: &Downstream| {
            let mut out = Vec::new();
            f.write_json(&mut out);
            serde_json::from_slice(&out).unwrap()
        })
        .collect()
}

async fn user(core: &Core, name: &str) -> Attachment {
    let creds = Credentials { name: Some(name.into()), token: None };
    core.attach(None, 0, &creds).await.unwrap().attachment
}

async fn send(core: &Core, a: &Attachment, json: &str) {
    core.apply(a.session(), parse_batch(json.as_bytes(), 100, 10_000).unwrap()).await;
}

#[tokio::test]
async fn failed_store_gives_error_not_ack_and_delivers_nothing() {
    let store = Arc::new(MemoryStore::new());
    let core = Core::with_options(CoreOptions { store: store.clone(), ..CoreOptions::default() });
    let mut alice = user(&core, "alice").await;
    let mut bob = user(&core, "bob").await;
    send(&core, &alice, r#"{"type":"join","room":"r","cid":"j"}"#).await;
    send(&core, &bob, r#"{"type":"join","room":"r","cid":"j"}"#).await;
    frames(&mut alice);
    frames(&mut bob);

    store.set_failing(true);
    send(&core, &alice, r#"{"type":"publish","room":"r","data":"lost?","cid":"m1"}"#).await;
    let answer = frames(&mut alice);
    assert_eq!(answer.len(), 1, "{answer:?}");
    assert_eq!(answer[0]["type"], "error");
    assert_eq!(answer[0]["cid"], "m1");
    assert_eq!(answer[0]["code"], codes::STORE_FAILED);
    assert!(frames(&mut bob).is_empty(), "bob must not receive an unstored message");
    assert!(store.history("r", HistoryQuery { limit: 10, ..Default::default() }).await.unwrap().is_empty());

    store.set_failing(false);
    send(&core, &alice, r#"{"type":"publish","room":"r","data":"lost?","cid":"m1"}"#).await;
    let answer = frames(&mut alice);
    let types: Vec<&str> = answer.iter().map(|f| f["type"].as_str().unwrap()).collect();
    assert_eq!(types, vec!["msg", "ack"]);
    assert_eq!(answer[1]["id"], 1);
    let stored = store.history("r", HistoryQuery { limit: 10, ..Default::default() }).await.unwrap();
    assert_eq!(stored.len(), 1);
    let bob_sees = frames(&mut bob);
    assert_eq!(bob_sees.len(), 1);
    assert_eq!(bob_sees[0]["data"], "lost?");

    // The same cid again: acked again with the same id, stored and delivered once.
    send(&core, &alice, r#"{"type":"publish","room":"r","data":"lost?","cid":"m1"}"#).await;
    let again = frames(&mut alice);
    assert_eq!(again.len(), 1);
    assert_eq!(again[0]["type"], "ack");
    assert_eq!(again[0]["id"], 1);
    assert!(frames(&mut bob).is_empty());
}

#[tokio::test]
async fn retry_from_a_new_session_is_stored_once() {
    let store = Arc::new(MemoryStore::new());
    let core = Core::with_options(CoreOptions { store: store.clone(), ..CoreOptions::default() });
    let first = user(&core, "alice").await;
    send(&core, &first, r#"[{"type":"join","room":"r","cid":"j"},{"type":"publish","room":"r","data":1,"cid":"m"}]"#)
        .await;
    let mut second = user(&core, "alice").await;
    frames(&mut second);
    send(&core, &second, r#"{"type":"publish","room":"r","data":1,"cid":"m"}"#).await;
    let answer = frames(&mut second);
    assert_eq!(answer.iter().filter(|f| f["type"] == "msg").count(), 0, "{answer:?}");
    assert_eq!(answer.last().unwrap()["type"], "ack");
    assert_eq!(store.count_after("r", 0).await.unwrap(), 1);
}
