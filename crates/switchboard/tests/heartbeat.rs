//! Idle attachments are kept alive: a `ping` frame on the WebSocket, stream
//! and htmlfile, the comment line `: hb` on SSE, at the interval the
//! `welcome` announces.

use std::time::Duration;

use switchboard_testkit::downstream::SseDownstream;
use switchboard_testkit::{bounded, Attach, TestServer, Transport};

const HEARTBEAT: Duration = Duration::from_millis(100);

#[tokio::test]
async fn idle_attachments_get_ping_frames() {
    bounded(async {
        let server = TestServer::start_with(|c| c.heartbeat = HEARTBEAT).await;
        for transport in [Transport::WebSocket, Transport::Stream, Transport::HtmlFile] {
            let mut downstream = transport.attach(server.addr(), None, 0).await?;
            let welcome = downstream.next_frame().await?;
            assert_eq!(welcome.u64("heartbeat"), Some(100), "{transport}: {welcome}");
            for _ in 0..2 {
                let frame = tokio::time::timeout(HEARTBEAT * 5, downstream.next_frame())
                    .await
                    .map_err(|_| anyhow::anyhow!("{transport}: no ping within {:?}", HEARTBEAT * 5))??;
                assert_eq!(frame.value(), &switchboard_testkit::json!({"type":"ping"}), "{transport}");
            }
        }
        server.shutdown().await;
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn idle_sse_gets_comment_heartbeats() {
    bounded(async {
        let server = TestServer::start_with(|c| c.heartbeat = HEARTBEAT).await;
        let mut sse = SseDownstream::connect(server.addr(), &Attach::new(None, 0)).await?;
        let welcome = sse.next().await?;
        assert_eq!(welcome.u64("heartbeat"), Some(100), "{welcome}");
        let next = tokio::time::timeout(HEARTBEAT * 5, sse.next()).await;
        assert!(next.is_err(), "SSE heartbeats are comments, not frames: got {next:?}");
        assert!(sse.heartbeats() >= 2, "{} `: hb` lines in {:?}", sse.heartbeats(), HEARTBEAT * 5);
        server.shutdown().await;
        Ok(())
    })
    .await;
}
