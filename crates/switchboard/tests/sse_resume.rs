//! Server-sent events (`/v1/sse`): ordered delivery, resume after a cut,
//! `retry: 2000`, and resume by `Last-Event-ID` (the larger of header and
//! `last` wins).

use switchboard_testkit::downstream::SseDownstream;
use switchboard_testkit::room::{check_new_welcome, Publisher};
use switchboard_testkit::scenario::ROOM;
use switchboard_testkit::{bounded, scenario, Attach, Frame, TestServer, Transport, Upstream};

#[tokio::test]
async fn sse_delivers_published_frames_in_order() {
    bounded(scenario::delivers_in_order(Transport::Sse)).await;
}

#[tokio::test]
async fn sse_resumes_after_cut_without_loss_or_duplicate() {
    bounded(scenario::resumes_after_cut(Transport::Sse)).await;
}

/// Resumes after every TCP drop of a proxy that cuts each connection within
/// milliseconds, mid-response included: 600 messages, once each, in order.
#[tokio::test]
async fn sse_resumes_through_tcp_cuts_without_loss_or_duplicate() {
    bounded(scenario::resumes_through_tcp_cuts(Transport::Sse)).await;
}

/// The stream opens with `retry: 2000` and a welcome without `id:`.
#[tokio::test]
async fn sse_starts_with_retry_and_an_unnumbered_welcome() {
    bounded(async {
        let server = TestServer::start().await;
        let mut sse = SseDownstream::connect(server.addr(), &Attach::new(None, 0)).await?;
        let content_type = sse.response().header("content-type").unwrap_or_default();
        assert!(content_type.starts_with("text/event-stream"), "content-type {content_type:?}");
        let welcome = sse.next().await?; // the client checks there is no `id:`
        check_new_welcome(&welcome)?;
        assert_eq!(sse.retry(), Some(2000));
        let raw = String::from_utf8_lossy(sse.raw()).into_owned();
        assert!(raw.starts_with("retry: 2000"), "stream starts {raw:?}");
        server.shutdown().await;
        Ok(())
    })
    .await;
}

/// Resuming with `Last-Event-ID` and `last` starts after the larger one.
#[tokio::test]
async fn sse_resume_takes_the_larger_of_last_event_id_and_last() {
    bounded(async {
        let server = TestServer::start().await;
        let addr = server.addr();
        let publisher = Publisher::join(addr, ROOM).await?;
        let mut sse = SseDownstream::connect(addr, &Attach::new(None, 0)).await?;
        let sid = sse.next().await?.str("sid").unwrap_or_default().to_owned();
        Upstream::new(addr, &sid).join(ROOM).await?;
        publisher.publish_numbered(ROOM, 0..20).await?; // seq 2..=21
        assert_eq!(first_sequenced(&mut sse).await?.seq(), Some(1));
        drop(sse);

        // Header only (as a browser's EventSource resumes): after 6.
        let attach = Attach { last_event_id: Some(6), ..Attach::new(Some(&sid), 0) };
        let mut sse = SseDownstream::connect(addr, &attach).await?;
        let frame = first_sequenced(&mut sse).await?;
        assert_eq!(frame.seq(), Some(7), "after Last-Event-ID 6: {frame}");
        drop(sse);

        // Parameter larger than header: after the parameter.
        let attach = Attach { last_event_id: Some(8), ..Attach::new(Some(&sid), 12) };
        let mut sse = SseDownstream::connect(addr, &attach).await?;
        let frame = first_sequenced(&mut sse).await?;
        assert_eq!(frame.seq(), Some(13), "after last=12, Last-Event-ID 8: {frame}");
        drop(sse);

        // Header larger than parameter: after the header.
        let attach = Attach { last_event_id: Some(15), ..Attach::new(Some(&sid), 13) };
        let mut sse = SseDownstream::connect(addr, &attach).await?;
        let frame = first_sequenced(&mut sse).await?;
        assert_eq!(frame.seq(), Some(16), "after last=13, Last-Event-ID 15: {frame}");
        for seq in 17..=21 {
            assert_eq!(first_sequenced(&mut sse).await?.seq(), Some(seq));
        }
        server.shutdown().await;
        Ok(())
    })
    .await;
}

/// The next sequenced frame, after the resume's welcome and any ping.
async fn first_sequenced(sse: &mut SseDownstream) -> anyhow::Result<Frame> {
    loop {
        let frame = sse.next().await?;
        if frame.seq().is_some() {
            return Ok(frame);
        }
        anyhow::ensure!(matches!(frame.typ(), "welcome" | "ping"), "unexpected {frame}");
    }
}
