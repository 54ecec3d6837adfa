//! `docs/limits.md`, Requests and frames: body size, frame size and batch
//! size, on `POST /v1/send` and on the WebSocket. Over each bound the
//! documented answer arrives, `switchboard_errors_total{code}` grows, and a
//! bystander chats on unaffected. (`bad_input.rs` proves that nothing of a
//! refused body is applied.)

use switchboard_testkit::downstream::WsDownstream;
use switchboard_testkit::hardening::{errors_series, Bystander, Metrics};
use switchboard_testkit::room::create_session;
use switchboard_testkit::serde_json::Value;
use switchboard_testkit::{bounded, json, next_non_ping, Attach, Ended, TestServer, Upstream};

const MAX_FRAME: usize = 2048;
const MAX_BODY: usize = 8192;
const MAX_BATCH: usize = 4;

async fn server() -> TestServer {
    TestServer::start_with(|c| {
        c.max_frame_bytes = MAX_FRAME;
        c.max_body_bytes = MAX_BODY;
        c.max_batch = MAX_BATCH;
    })
    .await
}

fn echo(n: usize, pad: usize) -> Value {
    json!({"type":"echo","data":{"n":n,"pad":"x".repeat(pad)}})
}

#[tokio::test]
async fn posts_over_body_frame_or_batch_limits_get_413() {
    bounded(async {
        let server = server().await;
        let addr = server.addr();
        let before = Metrics::scrape(addr).await?;
        let mut bystander = Bystander::join(addr, "bystander", "calm").await?;
        let (sid, _) = create_session(addr).await?;
        let upstream = Upstream::new(addr, &sid);

        // Frames within their limits, whitespace pushing the body over.
        let frames = Value::Array((0..MAX_BATCH).map(|n| echo(n, MAX_FRAME - 100)).collect());
        let too_big_body = format!("{frames}{}", " ".repeat(1024));
        assert!(too_big_body.len() > MAX_BODY);
        let too_big_frame = echo(0, MAX_FRAME + 1).to_string();
        let too_many = Value::Array((0..=MAX_BATCH).map(|n| echo(n, 1)).collect()).to_string();
        for (what, body) in [("body", too_big_body), ("frame", too_big_frame), ("batch", too_many)] {
            let (status, answer) = upstream.post(body).await?;
            assert_eq!(status, 413, "{what}: {answer}");
            assert_eq!(answer["code"], 4413, "{what}: {answer}");
            assert!(answer["message"].as_str().is_some_and(|m| !m.is_empty()), "{what}: {answer}");
        }
        before.wait_grown(addr, &errors_series(4413), 3.0).await?;

        // At the bounds: accepted.
        let fits = Value::Array((0..MAX_BATCH).map(|n| echo(n, MAX_FRAME - 100)).collect()).to_string();
        assert!(fits.len() <= MAX_BODY);
        let (status, answer) = upstream.post(fits).await?;
        assert_eq!((status, answer), (200, json!({"accepted": MAX_BATCH})));
        bystander.check().await?;
        server.shutdown().await;
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn a_websocket_message_over_the_frame_limit_closes_with_1009() {
    bounded(async {
        let server = server().await;
        let addr = server.addr();
        let before = Metrics::scrape(addr).await?;
        let mut bystander = Bystander::join(addr, "bystander", "calm").await?;
        let mut ws = WsDownstream::connect(addr, &Attach::new(None, 0)).await?;
        let sid = ws.next().await?.str("sid").unwrap_or_default().to_owned();
        ws.send_text(&echo(0, MAX_FRAME * 2).to_string()).await?;
        let ended = loop {
            match ws.next().await {
                Ok(frame) => assert_ne!(frame.typ(), "echo", "the oversized message was applied"),
                Err(e) => break e,
            }
        };
        assert_eq!(ended.downcast_ref::<Ended>(), Some(&Ended { ws_close: Some(1009) }), "{ended:#}");
        before.wait_grown(addr, &errors_series(1009), 1.0).await?;
        // The session survives the closed socket.
        let mut again = WsDownstream::connect(addr, &Attach::new(Some(&sid), 0)).await?;
        assert_eq!(again.next().await?.bool("resumed"), Some(true));
        bystander.check().await?;
        server.shutdown().await;
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn a_websocket_batch_over_the_limit_gets_error_4413_and_stays_open() {
    bounded(async {
        let server = server().await;
        let addr = server.addr();
        let before = Metrics::scrape(addr).await?;
        let mut bystander = Bystander::join(addr, "bystander", "calm").await?;
        let mut ws = WsDownstream::connect(addr, &Attach::new(None, 0)).await?;
        ws.next().await?; // welcome
        let batch = Value::Array((0..=MAX_BATCH).map(|n| echo(n, 1)).collect());
        ws.send_text(&batch.to_string()).await?;
        let error = next_non_ping(&mut ws).await?;
        assert!(
            error.typ() == "error" && error.code() == Some(4413) && error.seq().is_none(),
            "expected an unsequenced error 4413, got {error}"
        );
        before.wait_grown(addr, &errors_series(4413), 1.0).await?;
        // Nothing of the batch was applied; the socket still serves.
        ws.send_text(r#"{"type":"echo","data":"after","cid":"after"}"#).await?;
        let echo = next_non_ping(&mut ws).await?;
        assert_eq!((echo.cid(), echo.seq()), (Some("after"), Some(1)), "{echo}");
        bystander.check().await?;
        server.shutdown().await;
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn malformed_frames_are_counted_as_4400() {
    bounded(async {
        let server = server().await;
        let addr = server.addr();
        let before = Metrics::scrape(addr).await?;
        let mut bystander = Bystander::join(addr, "bystander", "calm").await?;
        let (sid, _) = create_session(addr).await?;
        let (status, _) = Upstream::new(addr, &sid).post("{not json").await?;
        assert_eq!(status, 400);
        let mut ws = WsDownstream::connect(addr, &Attach::new(None, 0)).await?;
        ws.next().await?;
        ws.send_text(r#"{"type":"join","room":"","cid":"j"}"#).await?;
        let error = next_non_ping(&mut ws).await?;
        assert_eq!((error.typ(), error.code(), error.cid()), ("error", Some(4400), Some("j")), "{error}");
        before.wait_grown(addr, &errors_series(4400), 2.0).await?;
        bystander.check().await?;
        server.shutdown().await;
        Ok(())
    })
    .await;
}
