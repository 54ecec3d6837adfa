//! Short poll (`/v1/poll?wait=0`): ordered delivery, resume after a lost
//! response, and an answer at once when nothing is queued.

use std::time::{Duration, Instant};

use switchboard_testkit::downstream::{PollDownstream, PollKind};
use switchboard_testkit::room::create_session;
use switchboard_testkit::{bounded, scenario, Attach, TestServer, Transport};

#[tokio::test]
async fn shortpoll_delivers_published_frames_in_order() {
    bounded(scenario::delivers_in_order(Transport::ShortPoll)).await;
}

#[tokio::test]
async fn shortpoll_resumes_after_cut_without_loss_or_duplicate() {
    bounded(scenario::resumes_after_cut(Transport::ShortPoll)).await;
}

/// Resumes after every TCP drop of a proxy that cuts each connection within
/// milliseconds, mid-response included: 600 messages, once each, in order.
#[tokio::test]
async fn shortpoll_resumes_through_tcp_cuts_without_loss_or_duplicate() {
    bounded(scenario::resumes_through_tcp_cuts(Transport::ShortPoll)).await;
}

/// `wait=0` answers an empty array at once instead of holding.
#[tokio::test]
async fn shortpoll_answers_at_once_when_nothing_is_queued() {
    bounded(async {
        let server = TestServer::start().await;
        let (sid, _) = create_session(server.addr()).await?;
        let mut poll = PollDownstream::new(server.addr(), PollKind::Short, &Attach::new(Some(&sid), 0));
        let started = Instant::now();
        let frames = poll.poll_once().await?;
        assert!(frames.is_empty(), "{frames:?}");
        assert!(started.elapsed() < Duration::from_secs(1), "took {:?}", started.elapsed());
        server.shutdown().await;
        Ok(())
    })
    .await;
}
