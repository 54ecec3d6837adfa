//! One session moves from transport to transport and every frame arrives
//! exactly once, in order: the outbox belongs to the session, not to the
//! transport.

use switchboard_testkit::room::{numbered, Publisher, Subscriber};
use switchboard_testkit::scenario::ROOM;
use switchboard_testkit::{bounded, json, ResumingClient, TestServer, Transport};

/// long poll → SSE → WebSocket → stream, with frames lost in flight at each
/// switch.
#[tokio::test]
async fn session_moves_from_longpoll_to_sse_to_websocket_to_stream() {
    bounded(async {
        let server = TestServer::start().await;
        let publisher = Publisher::join(server.addr(), ROOM).await?;
        let mut subscriber = Subscriber::join(server.addr(), Transport::LongPoll, ROOM).await?;
        let id = publisher.id().to_owned();

        publisher.publish_numbered(ROOM, 0..30).await?;
        subscriber.expect_msgs(&id, 0..20).await?;

        subscriber.resume(Transport::Sse).await?;
        publisher.publish_numbered(ROOM, 30..60).await?;
        subscriber.expect_msgs(&id, 20..45).await?;

        subscriber.resume(Transport::WebSocket).await?;
        publisher.publish_numbered(ROOM, 60..80).await?;
        subscriber.expect_msgs(&id, 45..70).await?;

        subscriber.resume(Transport::Stream).await?;
        publisher.publish_numbered(ROOM, 80..100).await?;
        subscriber.expect_msgs(&id, 70..100).await?;

        // Nothing left over from any earlier transport.
        publisher.publish_numbered(ROOM, 100..101).await?;
        subscriber.expect_msgs(&id, 100..101).await?;
        server.shutdown().await;
        Ok(())
    })
    .await;
}

/// A resuming client rotates through all seven transports every few frames
/// while a publisher keeps publishing.
#[tokio::test]
async fn session_rotates_through_all_seven_transports() {
    bounded(async {
        let server = TestServer::start().await;
        let publisher = Publisher::join(server.addr(), ROOM).await?;
        let mut client = ResumingClient::connect(server.addr(), Transport::LongPoll).await?;
        let cid = client.upstream().join(ROOM).await?;
        let ack = client.recv().await?;
        assert_eq!((ack.typ(), ack.cid()), ("ack", Some(cid.as_str())), "{ack}");

        const TOTAL: u64 = 350;
        let feeder = {
            let upstream = publisher.upstream().clone();
            tokio::spawn(async move {
                for start in (0..TOTAL).step_by(10) {
                    let frames =
                        (start..start + 10).map(|n| json!({"type":"publish","room":ROOM,"data":numbered(n)})).collect();
                    upstream.send(frames).await?;
                }
                anyhow::Ok(())
            })
        };
        for n in 0..TOTAL {
            if n % 25 == 0 {
                let next = Transport::ALL[(n / 25) as usize % Transport::ALL.len()];
                client.switch_to(next);
            }
            let frame = client.recv().await?;
            assert_eq!(frame.typ(), "msg", "{frame}");
            assert_eq!(frame.str("from"), Some(publisher.id()), "{frame}");
            assert_eq!(frame.data(), Some(&numbered(n)), "{frame}");
        }
        feeder.await??;
        assert!(client.report().is_clean(), "{}", client.report());
        assert!(client.report().attachments >= 14, "{}", client.report());
        server.shutdown().await;
        Ok(())
    })
    .await;
}
