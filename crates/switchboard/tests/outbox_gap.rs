//! §2 outbox bounds: when more is queued than the outbox holds, the oldest
//! frames are dropped and a client resuming from before them gets a `gap`
//! frame naming exactly what was dropped, then the frames that were kept.

use switchboard_testkit::room::{Publisher, Subscriber};
use switchboard_testkit::scenario::ROOM;
use switchboard_testkit::{bounded, json, TestServer, Transport};

/// Subscriber on `transport`, outbox of 8 frames, 20 messages published
/// while it is away (seq L+1..=L+20 after its last L): the oldest 12 are
/// dropped.
async fn gap_on_resume(transport: Transport) -> anyhow::Result<()> {
    let server = TestServer::start_with(|c| c.outbox_max_frames = 8).await;
    let publisher = Publisher::join(server.addr(), ROOM).await?;
    let mut subscriber = Subscriber::join(server.addr(), transport, ROOM).await?;
    let last = subscriber.last();
    subscriber.upstream().ack(last).await?; // the outbox is empty now
    subscriber.cut();

    publisher.publish_numbered(ROOM, 0..20).await?;

    subscriber.resume(transport).await?;
    subscriber.expect_gap(last + 1, last + 12).await?;
    subscriber.expect_msgs(publisher.id(), 12..20).await?;
    // The session goes on normally after the gap.
    publisher.publish_numbered(ROOM, 20..21).await?;
    subscriber.expect_msgs(publisher.id(), 20..21).await?;
    server.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn outbox_overflow_yields_exact_gap_on_short_poll_resume() {
    bounded(gap_on_resume(Transport::ShortPoll)).await;
}

#[tokio::test]
async fn outbox_overflow_yields_exact_gap_on_websocket_resume() {
    bounded(gap_on_resume(Transport::WebSocket)).await;
}

#[tokio::test]
async fn outbox_overflow_yields_exact_gap_on_sse_resume() {
    bounded(gap_on_resume(Transport::Sse)).await;
}

/// The byte bound works like the frame bound: the oldest frames go, the
/// gap names them, the newest frames are kept within the limit.
#[tokio::test]
async fn outbox_byte_limit_drops_oldest_frames_with_a_gap() {
    bounded(async {
        const MAX_BYTES: usize = 4096;
        let server = TestServer::start_with(|c| c.outbox_max_bytes = MAX_BYTES).await;
        let publisher = Publisher::join(server.addr(), ROOM).await?;
        let mut subscriber = Subscriber::join(server.addr(), Transport::LongPoll, ROOM).await?;
        let last = subscriber.last();
        subscriber.upstream().ack(last).await?;
        subscriber.cut();

        let padding = "x".repeat(200);
        let frames = (0..40).map(|n| json!({"type":"publish","room":ROOM,"data":{"n":n,"pad":padding}})).collect();
        publisher.upstream().send(frames).await?; // seq last+1..=last+40

        subscriber.resume(Transport::LongPoll).await?;
        let gap = switchboard_testkit::next_non_ping(subscriber.downstream()).await?;
        assert_eq!(gap.typ(), "gap", "{gap}");
        assert_eq!(gap.u64("from"), Some(last + 1), "{gap}");
        let to = gap.u64("to").unwrap_or_default();
        assert!((last + 1..last + 40).contains(&to), "{gap}");
        let mut kept_bytes = 0;
        for seq in to + 1..=last + 40 {
            let frame = switchboard_testkit::next_non_ping(subscriber.downstream()).await?;
            assert_eq!(frame.seq(), Some(seq), "{frame}");
            assert_eq!(frame.data().and_then(|d| d.get("n")), Some(&json!(seq - last - 1)), "{frame}");
            // The limit counts frame bodies: everything but `"seq":N,`.
            kept_bytes += frame.raw().len() - format!("\"seq\":{seq},").len();
        }
        assert!(kept_bytes <= MAX_BYTES, "kept {kept_bytes} bytes of frame bodies");
        assert!(kept_bytes >= MAX_BYTES / 2, "kept only {kept_bytes} bytes: too much dropped");
        server.shutdown().await;
        Ok(())
    })
    .await;
}
