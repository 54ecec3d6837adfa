//! The SockJS `rooms` service: SockJS messages are native upstream frames,
//! and a SockJS client and a native client in one room see each other's
//! messages (docs/sockjs.md).

use std::time::Duration;

use switchboard_testkit::downstream::WsDownstream;
use switchboard_testkit::sockjs::{self, TextSocket};
use switchboard_testkit::{bounded, json, next_documented, serde_json, Attach, HttpRequest};

/// The next SockJS message of `type` on a framed WebSocket, skipping
/// heartbeats and other messages (presence events).
async fn next_of_type(ws: &mut TextSocket, typ: &str) -> anyhow::Result<serde_json::Value> {
    loop {
        for value in next_messages(ws).await? {
            if value["type"] == typ {
                return Ok(value);
            }
        }
    }
}

/// The messages of the next `a` frame, parsed.
async fn next_messages(ws: &mut TextSocket) -> anyhow::Result<Vec<serde_json::Value>> {
    loop {
        let frame = ws.recv().await?.ok_or_else(|| anyhow::anyhow!("closed"))?;
        let Some(array) = frame.strip_prefix('a') else {
            continue;
        };
        let texts: Vec<String> = serde_json::from_str(array)?;
        return texts.iter().map(|t| Ok(serde_json::from_str(t)?)).collect();
    }
}

#[tokio::test]
async fn sockjs_and_native_clients_share_a_room() {
    bounded(async {
        let server = sockjs::start(Duration::from_secs(25), Duration::from_secs(5)).await;
        let mut sj = TextSocket::connect(server.addr(), "/chat/000/s1/websocket").await?;
        assert_eq!(sj.recv().await?.as_deref(), Some("o"));
        let welcome = next_of_type(&mut sj, "welcome").await?;
        assert!(welcome["id"].is_string(), "{welcome}");
        let sj_id = welcome["id"].as_str().unwrap_or_default().to_owned();
        sj.send(&serde_json::to_string(&[r#"{"type":"join","room":"lobby","cid":"j"}"#])?).await?;
        assert_eq!(next_of_type(&mut sj, "ack").await?["cid"], "j");

        let mut native = WsDownstream::connect(server.addr(), &Attach::new(None, 0)).await?;
        let native_id = native.next().await?.str("id").unwrap_or_default().to_owned();
        native.send_text(r#"{"type":"join","room":"lobby","cid":"n1"}"#).await?;
        native.send_text(r#"{"type":"publish","room":"lobby","data":{"text":"from native"},"cid":"n2"}"#).await?;

        let msg = next_of_type(&mut sj, "msg").await?;
        assert_eq!(msg["room"], "lobby");
        assert_eq!(msg["from"], native_id.as_str());
        assert_eq!(msg["data"], json!({ "text": "from native" }));
        assert!(msg.get("seq").is_none());

        let publish =
            json!({ "type": "publish", "room": "lobby", "data": { "text": "</script> from sockjs" }, "cid": "p" });
        sj.send(&serde_json::to_string(&[publish.to_string()])?).await?;
        // The sender gets its own message and the ack (with the stored id).
        let (mut acked, mut echoed) = (false, false);
        while !(acked && echoed) {
            for m in next_messages(&mut sj).await? {
                acked |= m["type"] == "ack" && m["cid"] == "p" && m["id"].is_u64();
                echoed |= m["type"] == "msg" && m["data"]["text"] == "</script> from sockjs";
            }
        }

        loop {
            let frame = next_documented(&mut native).await?;
            if frame.typ() == "msg" && frame.str("from") == Some(sj_id.as_str()) {
                assert_eq!(frame.data(), Some(&json!({ "text": "</script> from sockjs" })));
                break;
            }
        }
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn rooms_service_answers_bad_frames_with_error_messages_over_xhr() {
    bounded(async {
        let server = sockjs::start(Duration::from_secs(25), Duration::from_secs(5)).await;
        let addr = server.addr();
        let open = HttpRequest::post("/chat/000/x1/xhr", "").send(addr).await?.text().await?;
        assert_eq!(open, "o\n");
        let bad = serde_json::to_string(&["not json", r#"{"type":"publish","room":"lobby","data":1,"cid":"p"}"#])?;
        assert_eq!(HttpRequest::post("/chat/000/x1/xhr_send", bad).send(addr).await?.status, 204);
        let body = HttpRequest::post("/chat/000/x1/xhr", "").send(addr).await?.text().await?;
        let messages: Vec<String> = serde_json::from_str(body.trim_end().strip_prefix('a').unwrap_or("[]"))?;
        let types: Vec<serde_json::Value> =
            messages.iter().map(|m| serde_json::from_str(m)).collect::<Result<_, _>>()?;
        assert_eq!(types[0]["type"], "welcome", "{body}");
        assert_eq!((types[1]["type"].as_str(), types[1]["code"].as_u64()), (Some("error"), Some(4400)), "{body}");
        assert_eq!((types[2]["type"].as_str(), types[2]["code"].as_u64()), (Some("error"), Some(4403)), "{body}");
        assert_eq!(types[2]["cid"], "p");
        Ok(())
    })
    .await;
}
