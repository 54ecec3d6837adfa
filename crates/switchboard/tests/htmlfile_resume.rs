//! htmlfile (`/v1/htmlfile`): ordered delivery, resume after a cut, the padded preamble.

use switchboard_testkit::downstream::HtmlFileDownstream;
use switchboard_testkit::room::check_new_welcome;
use switchboard_testkit::{bounded, scenario, Attach, TestServer, Transport};

#[tokio::test]
async fn htmlfile_delivers_published_frames_in_order() {
    bounded(scenario::delivers_in_order(Transport::HtmlFile)).await;
}

#[tokio::test]
async fn htmlfile_resumes_after_cut_without_loss_or_duplicate() {
    bounded(scenario::resumes_after_cut(Transport::HtmlFile)).await;
}

/// Resumes after every TCP drop of a proxy that cuts each connection within
/// milliseconds, mid-response included: 600 messages, once each, in order.
#[tokio::test]
async fn htmlfile_resumes_through_tcp_cuts_without_loss_or_duplicate() {
    bounded(scenario::resumes_through_tcp_cuts(Transport::HtmlFile)).await;
}

/// The preamble binds `c` to `parent.NAME` and is padded past 1 KiB before
/// the first frame, so browsers render the chunks as they arrive.
#[tokio::test]
async fn htmlfile_preamble_is_padded_past_1kib_and_names_the_callback() {
    bounded(async {
        let server = TestServer::start().await;
        let attach = Attach { callback: "app.$onFrame_1".to_owned(), ..Attach::new(None, 0) };
        let mut html = HtmlFileDownstream::connect(server.addr(), &attach).await?;
        let content_type = html.response().header("content-type").unwrap_or_default();
        assert!(content_type.starts_with("text/html"), "content-type {content_type:?}");
        let welcome = html.next().await?;
        check_new_welcome(&welcome)?;
        let preamble = String::from_utf8_lossy(html.preamble().unwrap_or_default()).into_owned();
        assert!(preamble.len() >= 1024, "preamble is {} bytes: {preamble:?}", preamble.len());
        assert!(preamble.contains("parent.app.$onFrame_1"), "preamble does not bind the callback: {preamble:?}");
        server.shutdown().await;
        Ok(())
    })
    .await;
}
