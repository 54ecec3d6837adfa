//! Long poll (`/v1/poll`): ordered delivery, resume after a lost response or
//! a dropped held poll, the hold and its timeout.

use std::time::{Duration, Instant};

use switchboard_testkit::downstream::{PollDownstream, PollKind};
use switchboard_testkit::room::{check_new_welcome, create_session, Publisher, Subscriber};
use switchboard_testkit::scenario::ROOM;
use switchboard_testkit::{bounded, scenario, Attach, TestServer, Transport, Upstream};

#[tokio::test]
async fn longpoll_delivers_published_frames_in_order() {
    bounded(scenario::delivers_in_order(Transport::LongPoll)).await;
}

#[tokio::test]
async fn longpoll_resumes_after_cut_without_loss_or_duplicate() {
    bounded(scenario::resumes_after_cut(Transport::LongPoll)).await;
}

/// Resumes after every TCP drop of a proxy that cuts each connection within
/// milliseconds, mid-response included: 600 messages, once each, in order.
#[tokio::test]
async fn longpoll_resumes_through_tcp_cuts_without_loss_or_duplicate() {
    bounded(scenario::resumes_through_tcp_cuts(Transport::LongPoll)).await;
}

/// A poll without `sid` answers `[welcome]` at once, not after the hold.
#[tokio::test]
async fn longpoll_new_session_answers_welcome_at_once() {
    bounded(async {
        let server = TestServer::start().await;
        let mut poll = PollDownstream::new(server.addr(), PollKind::Long, &Attach::new(None, 0));
        let started = Instant::now();
        let frames = poll.poll_once().await?;
        assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
        assert_eq!(frames.len(), 1, "{frames:?}");
        check_new_welcome(&frames[0])?;
        server.shutdown().await;
        Ok(())
    })
    .await;
}

/// A held poll returns as soon as a frame is queued.
#[tokio::test]
async fn longpoll_held_poll_returns_when_a_frame_is_queued() {
    bounded(async {
        let server = TestServer::start().await;
        let (sid, _) = create_session(server.addr()).await?;
        let mut poll = PollDownstream::new(server.addr(), PollKind::Long, &Attach::new(Some(&sid), 0));
        let held = tokio::spawn(async move {
            let started = Instant::now();
            let frames = poll.poll_once().await;
            (started.elapsed(), frames)
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        let cid =
            Upstream::new(server.addr(), &sid).send_one(switchboard_testkit::json!({"type":"echo","data":1})).await?;
        let (elapsed, frames) = held.await?;
        let frames = frames?;
        assert!(
            elapsed >= Duration::from_millis(150) && elapsed < Duration::from_secs(3),
            "held poll answered after {elapsed:?}"
        );
        assert_eq!(frames.len(), 1, "{frames:?}");
        assert_eq!(frames[0].typ(), "echo");
        assert_eq!(frames[0].cid(), Some(cid.as_str()));
        assert_eq!(frames[0].seq(), Some(1));
        server.shutdown().await;
        Ok(())
    })
    .await;
}

/// With nothing queued, `wait=MS` ends the hold with an empty array.
#[tokio::test]
async fn longpoll_times_out_with_an_empty_array() {
    bounded(async {
        let server = TestServer::start().await;
        let (sid, _) = create_session(server.addr()).await?;
        let attach = Attach { wait_ms: Some(300), ..Attach::new(Some(&sid), 0) };
        let mut poll = PollDownstream::new(server.addr(), PollKind::Long, &attach);
        let started = Instant::now();
        let frames = poll.poll_once().await?;
        let elapsed = started.elapsed();
        assert!(frames.is_empty(), "{frames:?}");
        assert!(
            elapsed >= Duration::from_millis(250) && elapsed < Duration::from_secs(3),
            "wait=300 answered after {elapsed:?}"
        );
        server.shutdown().await;
        Ok(())
    })
    .await;
}

/// A held poll whose connection is dropped takes no frame with it.
#[tokio::test]
async fn longpoll_dropped_while_held_loses_nothing() {
    bounded(async {
        let server = TestServer::start().await;
        let publisher = Publisher::join(server.addr(), ROOM).await?;
        let mut subscriber = Subscriber::join(server.addr(), Transport::LongPoll, ROOM).await?;
        for round in 0..3 {
            // Hold a poll, then give up on it (its connection closes).
            let held = tokio::time::timeout(Duration::from_millis(100), subscriber.next_sequenced()).await;
            assert!(held.is_err(), "nothing was published yet, got {held:?}");
            publisher.publish_numbered(ROOM, round * 10..round * 10 + 10).await?;
            subscriber.expect_msgs(publisher.id(), round * 10..round * 10 + 10).await?;
        }
        server.shutdown().await;
        Ok(())
    })
    .await;
}
