//! JSONP (`/v1/jsonp`): ordered delivery, resume after a lost response, and
//! the `/**/NAME([...]);` wrapper.

use switchboard_testkit::http::HttpRequest;
use switchboard_testkit::room::check_new_welcome;
use switchboard_testkit::{bounded, scenario, Frame, TestServer, Transport};

#[tokio::test]
async fn jsonp_delivers_published_frames_in_order() {
    bounded(scenario::delivers_in_order(Transport::Jsonp)).await;
}

#[tokio::test]
async fn jsonp_resumes_after_cut_without_loss_or_duplicate() {
    bounded(scenario::resumes_after_cut(Transport::Jsonp)).await;
}

/// Resumes after every TCP drop of a proxy that cuts each connection within
/// milliseconds, mid-response included: 600 messages, once each, in order.
#[tokio::test]
async fn jsonp_resumes_through_tcp_cuts_without_loss_or_duplicate() {
    bounded(scenario::resumes_through_tcp_cuts(Transport::Jsonp)).await;
}

/// The answer is `application/javascript`: `/**/NAME([frames]);`.
#[tokio::test]
async fn jsonp_wraps_the_frames_in_the_callback() {
    bounded(async {
        let server = TestServer::start().await;
        let response = HttpRequest::get("/v1/jsonp?callback=app.on_frames$").send(server.addr()).await?;
        assert_eq!(response.status, 200);
        let content_type = response.header("content-type").unwrap_or_default();
        assert!(content_type.starts_with("application/javascript"), "content-type {content_type:?}");
        let body = response.text().await?;
        let inner = body
            .trim_end()
            .strip_prefix("/**/app.on_frames$(")
            .and_then(|rest| rest.strip_suffix(");"))
            .unwrap_or_else(|| panic!("not a JSONP call: {body:?}"));
        let frames: Vec<switchboard_testkit::serde_json::Value> = switchboard_testkit::serde_json::from_str(inner)?;
        assert_eq!(frames.len(), 1, "{body}");
        check_new_welcome(&Frame::from_value(frames[0].clone())?)?;
        server.shutdown().await;
        Ok(())
    })
    .await;
}
