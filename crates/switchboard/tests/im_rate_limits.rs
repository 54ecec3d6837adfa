//! §7 rate limits (per session): over a limit the frame is dropped and
//! answered with `error` 4429; nothing else is affected: the frames within
//! the limit, other sessions (even of the same user) and later frames once
//! the bucket refilled all go through.

use std::time::Duration;

use switchboard_testkit::im::{ids, Api, ChatClient};
use switchboard_testkit::{bounded, json, Frame, TestServer};

const ROOM: &str = "lobby";
const KEY: &str = "rate-key";

#[tokio::test]
async fn a_burst_of_publishes_is_cut_at_the_message_rate() {
    bounded(async {
        let server = TestServer::start_with(|c| {
            c.rate_messages = 5.0; // burst 20
            c.api_key = Some(KEY.into());
        })
        .await;
        let addr = server.addr();
        let api = Api::new(addr, Some(KEY));
        let mut alice = ChatClient::connect(addr, "alice").await?;
        alice.join(ROOM).await?;
        let mut alice_tab = ChatClient::connect(addr, "alice").await?;
        alice_tab.join(ROOM).await?;
        let mut bob = ChatClient::connect(addr, "bob").await?;
        bob.join(ROOM).await?;
        bob.sync().await?;

        let answers = alice.publish_all(ROOM, (0..100).map(|n| json!({"n": n})).collect()).await?;
        let acked: Vec<&Frame> = answers.iter().filter(|a| a.typ() == "ack").collect();
        let limited: Vec<&Frame> = answers.iter().filter(|a| a.typ() == "error" && a.code() == Some(4429)).collect();
        assert_eq!(acked.len() + limited.len(), 100, "every publish is acked or refused with 4429: {answers:?}");
        assert!((20..=30).contains(&acked.len()), "burst 20 at 5/s: {} acked", acked.len());
        assert!(limited[0].str("message").is_some_and(|m| !m.is_empty()), "{}", limited[0]);
        let acked_ids: Vec<u64> = acked.iter().filter_map(|a| a.u64("id")).collect();
        assert_eq!(acked_ids.len(), acked.len(), "every ack carries an id");

        // Only the acked ones were stored and delivered.
        assert_eq!(ids(&api.history(ROOM, "after=0&limit=500").await?), acked_ids);
        let seen = bob.sync().await?;
        let delivered: Vec<u64> = seen.iter().filter(|f| f.typ() == "msg").filter_map(|f| f.u64("id")).collect();
        assert_eq!(delivered, acked_ids);

        // Other sessions are unaffected, including alice's other tab.
        for client in [&mut bob, &mut alice_tab] {
            let answers = client.publish_all(ROOM, (0..10).map(|n| json!({"other": n})).collect()).await?;
            assert!(answers.iter().all(|a| a.typ() == "ack"), "{}: {answers:?}", client.user());
        }

        // A refused frame is not remembered: once the bucket refilled, the
        // same cid goes through.
        tokio::time::sleep(Duration::from_millis(250)).await;
        let retry = limited[0].cid().expect("errors name their cid").to_owned();
        let ack = alice.request(json!({"type": "publish", "room": ROOM, "data": "again", "cid": retry})).await?;
        assert_eq!(ack.typ(), "ack", "{ack}");
        server.shutdown().await;
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn typing_is_rate_limited() {
    bounded(async {
        let server = TestServer::start_with(|c| c.rate_typing = 2.0).await; // burst 4
        let addr = server.addr();
        let mut alice = ChatClient::connect(addr, "alice").await?;
        alice.join(ROOM).await?;
        let mut bob = ChatClient::connect(addr, "bob").await?;
        bob.join(ROOM).await?;
        alice.sync().await?;
        bob.sync().await?;

        let burst: Vec<_> = (0..20).map(|_| json!({"type": "typing", "room": ROOM})).collect();
        alice.send(&serde_json::Value::Array(burst)).await?;
        let seen = alice.sync().await?;
        let limited = seen.iter().filter(|f| f.typ() == "error" && f.code() == Some(4429)).count();
        let relayed = bob.sync().await?.iter().filter(|f| f.typ() == "typing").count();
        assert!((4..=6).contains(&relayed), "burst 4 at 2/s: {relayed} relayed");
        assert_eq!(relayed + limited, 20, "each typing frame relayed or refused");
        // Chat messages have their own bucket.
        alice.publish(ROOM, json!("typing limits do not stop messages")).await?;
        server.shutdown().await;
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn joins_are_rate_limited() {
    bounded(async {
        let server = TestServer::start_with(|c| c.rate_joins = 1.0).await; // burst 5
        let addr = server.addr();
        let mut alice = ChatClient::connect(addr, "alice").await?;
        let joins: Vec<_> =
            (0..20).map(|n| json!({"type": "join", "room": format!("room-{n}"), "cid": format!("j-{n}")})).collect();
        alice.send(&serde_json::Value::Array(joins)).await?;
        let mut acked = 0;
        let mut limited = 0;
        for n in 0..20 {
            let answer = alice.answer(&format!("j-{n}")).await?;
            match (answer.typ(), answer.code()) {
                ("ack", _) => acked += 1,
                ("error", Some(4429)) => limited += 1,
                _ => anyhow::bail!("join answered {answer}"),
            }
        }
        assert!((5..=7).contains(&acked), "burst 5 at 1/s: {acked} joins acked");
        assert_eq!(acked + limited, 20);
        // Joining a room already joined is not a join.
        alice.join("room-0").await?;
        server.shutdown().await;
        Ok(())
    })
    .await;
}
