//! §5 cross-origin: allowed origins get their origin echoed with
//! credentials (never `*`); any other origin gets 403 on every endpoint,
//! preflight and WebSocket upgrade included.

use switchboard_testkit::downstream::{Refused, WsDownstream};
use switchboard_testkit::http::{HttpRequest, HttpResponse};
use switchboard_testkit::room::create_session;
use switchboard_testkit::{bounded, json, Attach, TestServer};

const GOOD: &str = "https://app.example";
const EVIL: &str = "https://evil.example";

async fn server() -> TestServer {
    TestServer::start_with(|c| c.allowed_origins = vec![GOOD.to_owned()]).await
}

/// The CORS headers of an answer to an origin the allowlist names.
fn assert_allowed(response: &HttpResponse, origin: &str, what: &str) {
    assert_echoed(response, origin, what);
    assert_eq!(response.header("access-control-allow-credentials").as_deref(), Some("true"), "{what}: ACAC");
}

/// The CORS headers of an answer to an origin let in by `*`: echoed, but
/// never with credentials.
fn assert_allowed_without_credentials(response: &HttpResponse, origin: &str, what: &str) {
    assert_echoed(response, origin, what);
    assert_eq!(response.header("access-control-allow-credentials"), None, "{what}: ACAC under *");
}

fn assert_echoed(response: &HttpResponse, origin: &str, what: &str) {
    assert_eq!(response.header("access-control-allow-origin").as_deref(), Some(origin), "{what}: ACAO");
    let vary = response.header("vary").unwrap_or_default().to_ascii_lowercase();
    assert!(vary.contains("origin"), "{what}: Vary {vary:?}");
}

async fn assert_forbidden(response: HttpResponse, what: &str) -> anyhow::Result<()> {
    assert_eq!(response.status, 403, "{what}");
    assert_ne!(response.header("access-control-allow-origin").as_deref(), Some("*"), "{what}");
    assert_ne!(response.header("access-control-allow-origin").as_deref(), Some(EVIL), "{what}");
    let body = response.json().await?;
    assert_eq!(body["code"], 4403, "{what}: {body}");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "{what}: {body}");
    Ok(())
}

#[tokio::test]
async fn preflight_from_allowed_origin_is_answered_with_credentials() {
    bounded(async {
        let server = server().await;
        let response = HttpRequest::options("/v1/send?sid=x")
            .origin(GOOD)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .send(server.addr())
            .await?;
        assert_eq!(response.status, 204);
        assert_allowed(&response, GOOD, "preflight");
        let methods = response.header("access-control-allow-methods").unwrap_or_default();
        assert!(methods.contains("POST") && methods.contains("GET"), "allow-methods {methods:?}");
        let headers = response.header("access-control-allow-headers").unwrap_or_default().to_ascii_lowercase();
        assert!(headers.contains("content-type") || headers == "*", "allow-headers {headers:?}");
        server.shutdown().await;
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn preflight_from_foreign_origin_is_refused() {
    bounded(async {
        let server = server().await;
        let response = HttpRequest::options("/v1/send?sid=x")
            .origin(EVIL)
            .header("access-control-request-method", "POST")
            .send(server.addr())
            .await?;
        assert_forbidden(response, "preflight from a foreign origin").await?;
        server.shutdown().await;
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn every_endpoint_refuses_a_foreign_origin_and_serves_an_allowed_one() {
    bounded(async {
        let server = server().await;
        let addr = server.addr();
        let (sid, _) = create_session(addr).await?;
        let gets = [
            "/v1/poll?wait=0".to_owned(),
            "/v1/jsonp?wait=0&callback=cb".to_owned(),
            "/v1/sse".to_owned(),
            "/v1/stream".to_owned(),
            "/v1/htmlfile?callback=cb".to_owned(),
            format!("/v1/poll?sid={sid}&wait=0"),
            // Held polls are answered by a deferred response: the CORS
            // headers set on its placeholder must reach the real answer.
            format!("/v1/poll?sid={sid}&wait=200"),
            format!("/v1/jsonp?sid={sid}&wait=200&callback=cb"),
        ];
        for path in &gets {
            let response = HttpRequest::get(path.as_str()).origin(EVIL).send(addr).await?;
            assert_forbidden(response, &format!("GET {path} from {EVIL}")).await?;

            let response = HttpRequest::get(path.as_str()).origin(GOOD).send(addr).await?;
            assert_eq!(response.status, 200, "GET {path} from {GOOD}");
            assert_allowed(&response, GOOD, &format!("GET {path}"));
            drop(response); // streaming responses: the head is enough

            let response = HttpRequest::get(path.as_str()).send(addr).await?;
            assert_eq!(response.status, 200, "GET {path} without Origin");
        }

        let send = format!("/v1/send?sid={sid}");
        let echo = json!({"type":"echo","data":1}).to_string();
        let response = HttpRequest::post(send.as_str(), echo.clone()).origin(EVIL).send(addr).await?;
        assert_forbidden(response, "POST /v1/send from a foreign origin").await?;
        let response = HttpRequest::post(send.as_str(), echo).origin(GOOD).send(addr).await?;
        assert_eq!(response.status, 200);
        assert_allowed(&response, GOOD, "POST /v1/send");

        // "every HTTP endpoint" includes the health check.
        let response = HttpRequest::get("/healthz").origin(EVIL).send(addr).await?;
        assert_forbidden(response, "GET /healthz from a foreign origin").await?;
        server.shutdown().await;
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn websocket_upgrade_from_foreign_origin_is_refused_with_403() {
    bounded(async {
        let server = server().await;
        let evil = Attach { origin: Some(EVIL.to_owned()), ..Attach::new(None, 0) };
        let refused = WsDownstream::connect(server.addr(), &evil).await;
        let status = refused.as_ref().err().and_then(|e| e.downcast_ref::<Refused>()).map(|r| r.status);
        assert_eq!(status, Some(403), "upgrade from {EVIL}: {:?}", refused.err());

        let good = Attach { origin: Some(GOOD.to_owned()), ..Attach::new(None, 0) };
        let mut ws = WsDownstream::connect(server.addr(), &good).await?;
        assert_eq!(ws.next().await?.typ(), "welcome");
        server.shutdown().await;
        Ok(())
    })
    .await;
}

/// JSONP script tags and htmlfile iframes send no `Origin`: the page is
/// judged by `Referer`, and without one a request marked
/// `Sec-Fetch-Site: cross-site` is refused.
#[tokio::test]
async fn jsonp_and_htmlfile_judge_the_page_by_referer() {
    bounded(async {
        let server = server().await;
        let addr = server.addr();
        for path in ["/v1/jsonp?callback=cb&wait=0", "/v1/htmlfile?callback=cb"] {
            let evil_page = HttpRequest::get(path).header("referer", &format!("{EVIL}/page.html")).send(addr).await?;
            assert_forbidden(evil_page, &format!("GET {path} from an {EVIL} page")).await?;

            let cross_site = HttpRequest::get(path).header("sec-fetch-site", "cross-site").send(addr).await?;
            assert_forbidden(cross_site, &format!("GET {path} cross-site without Referer")).await?;

            for (name, value) in
                [("referer", format!("{GOOD}/chat?room=lobby")), ("sec-fetch-site", "same-origin".to_owned())]
            {
                let response = HttpRequest::get(path).header(name, &value).send(addr).await?;
                assert_eq!(response.status, 200, "GET {path} with {name}: {value}");
            }
        }
        server.shutdown().await;

        // With `*` allowed, any page may use them.
        let server = TestServer::start().await;
        for path in ["/v1/jsonp?callback=cb&wait=0", "/v1/htmlfile?callback=cb"] {
            for (name, value) in [("referer", format!("{EVIL}/page.html")), ("sec-fetch-site", "cross-site".to_owned())]
            {
                let response = HttpRequest::get(path).header(name, &value).send(server.addr()).await?;
                assert_eq!(response.status, 200, "GET {path} with {name}: {value}, allowlist *");
            }
        }
        server.shutdown().await;
        Ok(())
    })
    .await;
}

/// With the default allowlist (`*`), any origin is allowed, and the answer
/// names that origin rather than `*`, without allowing credentials: only an
/// origin listed by name may see credentialed answers.
#[tokio::test]
async fn wildcard_allowlist_echoes_the_origin_without_credentials() {
    bounded(async {
        let server = TestServer::start().await;
        let origin = "https://anywhere.example";
        let response = HttpRequest::get("/v1/poll").origin(origin).send(server.addr()).await?;
        assert_eq!(response.status, 200);
        assert_allowed_without_credentials(&response, origin, "GET /v1/poll with allowlist *");

        let response = HttpRequest::options("/v1/send?sid=x")
            .origin(origin)
            .header("access-control-request-method", "POST")
            .send(server.addr())
            .await?;
        assert_eq!(response.status, 204);
        assert_allowed_without_credentials(&response, origin, "preflight with allowlist *");
        server.shutdown().await;
        Ok(())
    })
    .await;
}

/// With an explicit allowlist, the server's own pages (the demo chat) are
/// same-origin: their `Origin` names the host they were sent to, and they
/// get no 403 and need no CORS headers.
#[tokio::test]
async fn the_servers_own_origin_needs_no_entry_in_the_allowlist() {
    bounded(async {
        let server = server().await;
        let own = format!("http://{}", server.addr());
        let response = HttpRequest::get("/v1/poll").origin(&own).send(server.addr()).await?;
        assert_eq!(response.status, 200, "a same-origin poll");
        assert_eq!(response.header("access-control-allow-origin"), None);
        let other_port = format!("http://127.0.0.1:{}", server.addr().port() + 1);
        assert_forbidden(HttpRequest::get("/v1/poll").origin(&other_port).send(server.addr()).await?, "another port")
            .await?;
        server.shutdown().await;
        Ok(())
    })
    .await;
}

/// The htmlfile bridge page is loaded by an iframe (no `Origin`), and the
/// stream it opens comes from the server's own origin: so the page that
/// embeds it is judged, by `Referer` or `Sec-Fetch-Site`.
#[tokio::test]
async fn the_htmlfile_bridge_is_served_only_to_allowed_pages() {
    bounded(async {
        let server = server().await;
        let addr = server.addr();
        let page = |referer: &str| HttpRequest::get("/htmlfile-bridge.html").header("referer", referer);
        let response = page(&format!("{GOOD}/chat")).send(addr).await?;
        assert_eq!(response.status, 200, "embedded by an allowed page");
        assert_forbidden(page(&format!("{EVIL}/chat")).send(addr).await?, "embedded by a foreign page").await?;
        let hidden = HttpRequest::get("/htmlfile-bridge.html").header("sec-fetch-site", "cross-site");
        assert_forbidden(hidden.send(addr).await?, "cross-site without a Referer").await?;
        server.shutdown().await;
        Ok(())
    })
    .await;
}
