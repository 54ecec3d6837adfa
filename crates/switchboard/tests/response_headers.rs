//! §4: every downstream response carries `Cache-Control: no-store` and the
//! documented content type; `/healthz` answers `ok`.

use switchboard_testkit::http::HttpRequest;
use switchboard_testkit::room::create_session;
use switchboard_testkit::{bounded, json, TestServer};

#[tokio::test]
async fn downstream_responses_have_their_content_type_and_no_store() {
    bounded(async {
        let server = TestServer::start().await;
        let addr = server.addr();
        for (path, content_type) in [
            ("/v1/poll?wait=0", "application/json"),
            ("/v1/jsonp?wait=0&callback=cb", "application/javascript"),
            ("/v1/sse", "text/event-stream"),
            ("/v1/stream", "application/x-ndjson"),
            ("/v1/htmlfile?callback=cb", "text/html"),
        ] {
            let response = HttpRequest::get(path).send(addr).await?;
            assert_eq!(response.status, 200, "GET {path}");
            let got = response.header("content-type").unwrap_or_default();
            assert!(got.starts_with(content_type), "GET {path}: content-type {got:?}");
            let cache = response.header("cache-control").unwrap_or_default();
            assert!(cache.contains("no-store"), "GET {path}: cache-control {cache:?}");
        }
        let response = HttpRequest::get("/v1/stream").send(addr).await?;
        assert_eq!(response.header("transfer-encoding").as_deref(), Some("chunked"), "the NDJSON stream is chunked");

        let (sid, _) = create_session(addr).await?;
        let response = HttpRequest::post(format!("/v1/send?sid={sid}"), json!({"type":"echo","data":1}).to_string())
            .send(addr)
            .await?;
        assert_eq!(response.status, 200);
        let cache = response.header("cache-control").unwrap_or_default();
        assert!(cache.contains("no-store"), "POST /v1/send: cache-control {cache:?}");
        assert_eq!(response.json().await?, json!({"accepted":1}));
        server.shutdown().await;
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn healthz_answers_ok() {
    bounded(async {
        let server = TestServer::start().await;
        let response = HttpRequest::get("/healthz").send(server.addr()).await?;
        assert_eq!(response.status, 200);
        assert_eq!(response.text().await?.trim(), "ok");
        server.shutdown().await;
        Ok(())
    })
    .await;
}
