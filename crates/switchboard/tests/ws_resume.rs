//! WebSocket (`/v1/ws`): ordered delivery, resume after a cut, upstream frames on the socket.

use switchboard_testkit::downstream::WsDownstream;
use switchboard_testkit::room::check_new_welcome;
use switchboard_testkit::{bounded, json, next_documented, next_non_ping, scenario, Attach, TestServer, Transport};

#[tokio::test]
async fn ws_delivers_published_frames_in_order() {
    bounded(scenario::delivers_in_order(Transport::WebSocket)).await;
}

#[tokio::test]
async fn ws_resumes_after_cut_without_loss_or_duplicate() {
    bounded(scenario::resumes_after_cut(Transport::WebSocket)).await;
}

/// Resumes after every TCP drop of a proxy that cuts each connection within
/// milliseconds, mid-response included: 600 messages, once each, in order.
#[tokio::test]
async fn ws_resumes_through_tcp_cuts_without_loss_or_duplicate() {
    bounded(scenario::resumes_through_tcp_cuts(Transport::WebSocket)).await;
}

/// Upstream frames travel as text messages, one frame or an array of them;
/// every frame with a `cid` is answered by a sequenced frame, an `ack`
/// frame is answered by nothing.
#[tokio::test]
async fn ws_carries_upstream_frames_as_text_messages() {
    bounded(async {
        let server = TestServer::start().await;
        let mut ws = WsDownstream::connect(server.addr(), &Attach::new(None, 0)).await?;
        let welcome = ws.next().await?;
        check_new_welcome(&welcome)?;
        let id = welcome.str("id").unwrap_or_default().to_owned();

        ws.send_text(r#"{"type":"join","room":"lobby","cid":"j1"}"#)
            .await?;
        let ack = next_documented(&mut ws).await?;
        assert_eq!((ack.typ(), ack.cid()), ("ack", Some("j1")), "{ack}");
        let mut last = ack.seq().expect("ack is sequenced");

        ws.send_text(
            r#"[{"type":"publish","room":"lobby","data":{"n":0},"cid":"p1"},{"type":"echo","data":[1,"two"],"cid":"e1"}]"#,
        )
        .await?;
        let mut frames = Vec::new();
        for _ in 0..3 {
            let frame = next_documented(&mut ws).await?;
            let seq = frame.seq().unwrap_or_default();
            assert!(seq > last, "seq must increase: {frame} after {last}");
            last = seq;
            frames.push(frame);
        }
        let msg = frames.iter().find(|f| f.typ() == "msg").expect("msg");
        assert_eq!(msg.str("from"), Some(id.as_str()), "{msg}");
        assert_eq!(msg.str("room"), Some("lobby"), "{msg}");
        assert_eq!(msg.data(), Some(&json!({"n":0})), "{msg}");
        let ack = frames.iter().find(|f| f.typ() == "ack").expect("ack");
        assert_eq!(ack.cid(), Some("p1"), "{ack}");
        let echo = frames.iter().find(|f| f.typ() == "echo").expect("echo");
        assert_eq!(echo.cid(), Some("e1"), "{echo}");
        assert_eq!(echo.data(), Some(&json!([1, "two"])), "{echo}");

        // An ack is answered by nothing: the next frame answers the echo.
        ws.send_text(&json!({"type":"ack","seq":last}).to_string())
            .await?;
        ws.send_text(r#"{"type":"echo","data":"x","cid":"e2"}"#)
            .await?;
        let echo = next_non_ping(&mut ws).await?;
        assert_eq!(
            echo.value(),
            &json!({"seq":last + 1,"type":"echo","cid":"e2","data":"x"})
        );
        server.shutdown().await;
        Ok(())
    })
    .await;
}
