//! NDJSON stream (`/v1/stream`): ordered delivery and resume after a cut.

use switchboard_testkit::{bounded, scenario, Transport};

#[tokio::test]
async fn stream_delivers_published_frames_in_order() {
    bounded(scenario::delivers_in_order(Transport::Stream)).await;
}

#[tokio::test]
async fn stream_resumes_after_cut_without_loss_or_duplicate() {
    bounded(scenario::resumes_after_cut(Transport::Stream)).await;
}

/// Resumes after every TCP drop of a proxy that cuts each connection within
/// milliseconds, mid-response included: 600 messages, once each, in order.
#[tokio::test]
async fn stream_resumes_through_tcp_cuts_without_loss_or_duplicate() {
    bounded(scenario::resumes_through_tcp_cuts(Transport::Stream)).await;
}
