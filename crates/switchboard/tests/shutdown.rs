//! A server shutting down ends every attachment with `close` 4002,
//! `reconnect: true` (§6), a held long poll included.

use std::time::Duration;

use switchboard_testkit::downstream::{PollDownstream, PollKind};
use switchboard_testkit::room::create_session;
use switchboard_testkit::{bounded, next_non_ping, Attach, TestServer, Transport};

#[tokio::test]
async fn shutdown_closes_attachments_with_4002() {
    bounded(async {
        let server = TestServer::start_with(|c| c.shutdown_timeout = Duration::from_secs(2)).await;
        let addr = server.addr();
        let mut attached = Vec::new();
        for transport in [Transport::WebSocket, Transport::Sse, Transport::Stream, Transport::HtmlFile] {
            let mut downstream = transport.attach(addr, None, 0).await?;
            assert_eq!(downstream.next_frame().await?.typ(), "welcome");
            attached.push(downstream);
        }
        let (sid, _) = create_session(addr).await?;
        let mut held = PollDownstream::new(addr, PollKind::Long, &Attach::new(Some(&sid), 0));
        let held = tokio::spawn(async move { held.poll_once().await });
        tokio::time::sleep(Duration::from_millis(100)).await;

        let shutdown = tokio::spawn(server.shutdown());
        for mut downstream in attached {
            let transport = downstream.transport();
            let close = next_non_ping(downstream.as_mut()).await?;
            assert!(
                close.is_close(4002) && close.bool("reconnect") == Some(true),
                "{transport}: expected close 4002 reconnect:true, got {close}"
            );
        }
        let frames = held.await??;
        assert!(frames.len() == 1 && frames[0].is_close(4002), "held long poll: expected [close 4002], got {frames:?}");
        tokio::time::timeout(Duration::from_secs(5), shutdown)
            .await
            .map_err(|_| anyhow::anyhow!("shutdown did not finish"))??;
        Ok(())
    })
    .await;
}
