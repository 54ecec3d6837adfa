//! §7 history paging, over the protocol (`history` frames) and the HTTP API
//! (`GET /api/v1/rooms/ROOM/messages`): `after` pages forward, `before`
//! pages back (the newest before it), always oldest first; `limit` 1–500,
//! default 50.

use switchboard_testkit::im::{ids, Api, ChatClient};
use switchboard_testkit::{bounded, json, TestServer};

const ROOM: &str = "lobby";
const KEY: &str = "paging-key";

fn range(from: u64, to: u64) -> Vec<u64> {
    (from..=to).collect()
}

#[tokio::test]
async fn history_pages_forward_and_back() {
    bounded(async {
        let server = TestServer::start_with(|c| c.api_key = Some(KEY.into())).await;
        let addr = server.addr();
        let api = Api::new(addr, Some(KEY));
        let mut alice = ChatClient::connect(addr, "alice").await?;
        alice.join(ROOM).await?;
        let answers = alice.publish_all(ROOM, (1..=60).map(|n| json!({"n": n})).collect()).await?;
        assert!(answers.iter().all(|a| a.typ() == "ack"));

        // (protocol query, API query, expected ids)
        let cases = [
            (json!({"after": 0}), "after=0", range(1, 50)),
            (json!({"after": 0, "limit": 10}), "after=0&limit=10", range(1, 10)),
            (json!({"after": 10, "limit": 10}), "after=10&limit=10", range(11, 20)),
            (json!({"after": 55, "limit": 10}), "after=55&limit=10", range(56, 60)),
            (json!({"after": 60}), "after=60", vec![]),
            (json!({"before": 61, "limit": 10}), "before=61&limit=10", range(51, 60)),
            (json!({"before": 51, "limit": 10}), "before=51&limit=10", range(41, 50)),
            (json!({"before": 5, "limit": 10}), "before=5&limit=10", range(1, 4)),
            (json!({"before": 1}), "before=1", vec![]),
            (json!({"before": 61}), "before=61", range(11, 60)),
            (json!({"after": 5, "before": 9}), "after=5&before=9", range(6, 8)),
            (json!({"after": 0, "limit": 1}), "after=0&limit=1", vec![1]),
        ];
        for (query, api_query, expected) in cases {
            let page = alice.history(ROOM, query.clone()).await?;
            assert_eq!(ids(&page), expected, "history {query}");
            let page = api.history(ROOM, api_query).await?;
            assert_eq!(ids(&page), expected, "GET ?{api_query}");
        }

        // Every message carries what was stored.
        let page = alice.history(ROOM, json!({"after": 0, "limit": 3})).await?;
        for (n, message) in (1..).zip(&page) {
            assert_eq!(message["data"], json!({"n": n}), "{message}");
            assert_eq!((&message["user"], &message["name"]), (&json!("alice"), &json!("alice")));
            assert!(message["ts"].as_u64().is_some_and(|ts| ts > 0), "{message}");
        }

        // A room nobody wrote to has an empty history.
        assert!(alice.history("empty", json!({"after": 0})).await?.is_empty());
        server.shutdown().await;
        Ok(())
    })
    .await;
}

/// A page holds at most 500 messages, whatever `limit` asks.
#[tokio::test]
async fn a_page_holds_at_most_500() {
    bounded(async {
        let server = TestServer::start_with(|c| c.api_key = Some(KEY.into())).await;
        let addr = server.addr();
        let mut alice = ChatClient::connect(addr, "alice").await?;
        alice.join(ROOM).await?;
        alice.publish_all(ROOM, (0..520).map(|n| json!(n)).collect()).await?;
        let page = alice.history(ROOM, json!({"after": 0, "limit": 1000})).await?;
        assert_eq!(ids(&page), range(1, 500));
        let page = Api::new(addr, Some(KEY)).history(ROOM, "before=521&limit=1000").await?;
        assert_eq!(ids(&page), range(21, 520));
        server.shutdown().await;
        Ok(())
    })
    .await;
}

/// Paging through the whole room with `before`, as a client scrolling up
/// does, sees every message exactly once.
#[tokio::test]
async fn scrolling_back_sees_every_message_once() {
    bounded(async {
        let server = TestServer::start().await;
        let mut alice = ChatClient::connect(server.addr(), "alice").await?;
        alice.join(ROOM).await?;
        alice.publish_all(ROOM, (0..137).map(|n| json!(n)).collect()).await?;
        let mut seen = Vec::new();
        let mut before = 138;
        loop {
            let page = alice.history(ROOM, json!({"before": before, "limit": 20})).await?;
            let Some(oldest) = page.first().and_then(|m| m["id"].as_u64()) else {
                break;
            };
            let mut page_ids = ids(&page);
            page_ids.extend(seen);
            seen = page_ids;
            before = oldest;
        }
        assert_eq!(seen, range(1, 137));
        server.shutdown().await;
        Ok(())
    })
    .await;
}
