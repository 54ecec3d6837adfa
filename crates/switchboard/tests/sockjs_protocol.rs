//! SockJS protocol 0.3 over HTTP, checked the way its test suite
//! (sockjs-protocol-0.3.3.py) does: static URLs, `/info`, preflights,
//! session URLs, xhr-polling, the session rules (one receiving connection,
//! closing, timeout, broken connections), cookies, origins, and the
//! protocol's JSON string escaping. Each transport's framing is in
//! `sockjs_transports.rs`.

use std::net::SocketAddr;
use std::time::Duration;

use switchboard_testkit::sockjs::{
    self, assert_cors, assert_not_cached, chunk, content_type, get_text, post, post_text,
};
use switchboard_testkit::{bounded, serde_json, HttpRequest, HttpResponse, TestServer};

async fn server() -> TestServer {
    sockjs::start(Duration::from_secs(25), Duration::from_secs(5)).await
}

async fn server_with(heartbeat: Duration, disconnect_delay: Duration) -> TestServer {
    sockjs::start(heartbeat, disconnect_delay).await
}

#[tokio::test]
async fn greeting_at_the_prefix_and_404_below_it() {
    bounded(async {
        let server = server().await;
        for path in ["/echo", "/echo/"] {
            let response = HttpRequest::get(path).send(server.addr()).await?;
            assert_eq!(content_type(&response), "text/plain;charset=UTF-8");
            assert!(response.header("set-cookie").is_none());
            assert_eq!(response.text().await?, "Welcome to SockJS!\n");
        }
        for suffix in ["/a", "/a.html", "//", "///", "/a/a", "/a/a/", "/a/"] {
            assert_eq!(get_text(server.addr(), &format!("/echo{suffix}")).await?.0, 404, "{suffix}");
        }
        Ok(())
    })
    .await;
}
#[tokio::test]
async fn iframe_page_is_strongly_cacheable_with_etag_and_304() {
    bounded(async {
        let server = server().await;
        let mut etags = Vec::new();
        for suffix in ["/iframe.html", "/iframe-a.html", "/iframe-0.1.2.html", "/iframe-0.1.2abc-dirty.2144.html?t=1"] {
            let response = HttpRequest::get(format!("/echo{suffix}")).send(server.addr()).await?;
            assert_eq!(response.status, 200, "{suffix}");
            assert_eq!(content_type(&response), "text/html;charset=UTF-8");
            let cache = response.header("cache-control").unwrap_or_default();
            assert!(cache.contains("public") && cache.contains("max-age=31536000"), "{cache}");
            assert!(response.header("expires").is_some() && response.header("last-modified").is_none());
            etags.push(response.header("etag").expect("ETag"));
            let body = response.text().await?;
            assert!(body.starts_with("<!DOCTYPE html>\n<html>\n<head>\n"), "{body}");
            assert!(body.contains("_sockjs_onload = function(){SockJS.bootstrap_iframe();};"), "{body}");
            assert!(body.contains("<script src=\"/sockjs.min.js\"></script>"), "{body}");
        }
        assert!(etags.windows(2).all(|w| w[0] == w[1]));
        let cached =
            HttpRequest::get("/echo/iframe.html").header("if-none-match", &etags[0]).send(server.addr()).await?;
        assert_eq!(cached.status, 304);
        assert!(cached.header("content-type").is_none());
        assert!(cached.bytes().await?.is_empty());
        for suffix in ["/iframe.htm", "/iframe", "/IFRAME.HTML", "/iframe.HTML", "/iframe.xml", "/iframe-/.html"] {
            assert_eq!(get_text(server.addr(), &format!("/echo{suffix}")).await?.0, 404, "{suffix}");
        }
        Ok(())
    })
    .await;
}
#[tokio::test]
async fn info_reports_capabilities_with_fresh_entropy() {
    bounded(async {
        let server = server().await;
        let response = HttpRequest::get("/echo/info").send(server.addr()).await?;
        assert_eq!(content_type(&response), "application/json;charset=UTF-8");
        assert_not_cached(&response);
        assert_cors(&response, "*");
        assert!(response.header("set-cookie").is_none());
        let first = response.json().await?;
        assert_eq!(first["websocket"], true);
        assert_eq!(first["cookie_needed"], false);
        assert_eq!(first["origins"], serde_json::json!(["*:*"]));
        let second = HttpRequest::get("/echo/info").send(server.addr()).await?.json().await?;
        assert!(first["entropy"].is_u64() && first["entropy"] != second["entropy"]);

        let off = HttpRequest::get("/disabled_websocket_echo/info").send(server.addr()).await?.json().await?;
        assert_eq!(off["websocket"], false);
        let cookie = HttpRequest::get("/cookie_needed_echo/info").send(server.addr()).await?;
        assert!(cookie.header("set-cookie").is_none());
        assert_eq!(cookie.json().await?["cookie_needed"], true);
        Ok(())
    })
    .await;
}
#[tokio::test]
async fn preflights_are_cacheable_and_answer_cors() {
    bounded(async {
        let server = server().await;
        let cases = [
            ("/echo/info", "OPTIONS, GET"),
            ("/echo/abc/abc/xhr", "OPTIONS, POST"),
            ("/echo/abc/abc/xhr_send", "OPTIONS, POST"),
            ("/echo/abc/abc/xhr_streaming", "OPTIONS, POST"),
        ];
        for (path, methods) in cases {
            for origin in [None, Some("test"), Some("null")] {
                let mut request = HttpRequest::options(path);
                if let Some(origin) = origin {
                    request = request.origin(origin);
                }
                let response = request.send(server.addr()).await?;
                assert_eq!(response.status, 204, "{path}");
                let cache = response.header("cache-control").unwrap_or_default();
                assert!(cache.contains("public") && cache.contains("max-age=31536000"), "{cache}");
                assert!(response.header("expires").is_some());
                let max_age: u64 = response.header("access-control-max-age").unwrap_or_default().parse()?;
                assert!(max_age > 1_000_000);
                assert_eq!(response.header("access-control-allow-methods").as_deref(), Some(methods));
                assert_cors(&response, origin.filter(|o| *o != "null").unwrap_or("*"));
                assert!(response.bytes().await?.is_empty());
            }
        }
        Ok(())
    })
    .await;
}
#[tokio::test]
async fn session_urls_take_any_ids_and_ignore_the_server_id() {
    bounded(async {
        let server = server().await;
        let addr = server.addr();
        for part in ["/a/a", "/_/_", "/1/1", "/abcdefgh_i-j%20/abcdefg_i-j%20"] {
            assert_eq!(post_text(addr, &format!("/echo{part}/xhr"), "").await?, (200, "o\n".into()), "{part}");
        }
        for part in ["//", "/a./a", "/a/a.", "/./.", "/", "///"] {
            assert_eq!(get_text(addr, &format!("/echo{part}/xhr")).await?.0, 404, "{part}");
            assert_eq!(post_text(addr, &format!("/echo{part}/xhr"), "").await?.0, 404, "{part}");
        }
        assert_eq!(post_text(addr, "/echo/000/s1/xhr", "").await?, (200, "o\n".into()));
        assert_eq!(post_text(addr, "/echo/000/s1/xhr_send", r#"["a"]"#).await?, (204, String::new()));
        assert_eq!(post_text(addr, "/echo/999/s1/xhr", "").await?, (200, "a[\"a\"]\n".into()));
        Ok(())
    })
    .await;
}
#[tokio::test]
async fn xhr_polling_opens_echoes_and_refuses_unknown_sessions() {
    bounded(async {
        let server = server().await;
        let addr = server.addr();
        let response = post(addr, "/echo/000/s1/xhr", "").await?;
        assert_eq!(content_type(&response), "application/javascript;charset=UTF-8");
        assert_cors(&response, "*");
        assert_not_cached(&response);
        assert_eq!(response.text().await?, "o\n");

        let sent = post(addr, "/echo/000/s1/xhr_send", r#"["x"]"#).await?;
        assert_eq!(sent.status, 204);
        assert_eq!(content_type(&sent), "text/plain;charset=UTF-8");
        assert_cors(&sent, "*");
        assert_not_cached(&sent);
        assert!(sent.bytes().await?.is_empty());
        assert_eq!(post_text(addr, "/echo/000/s1/xhr", "").await?, (200, "a[\"x\"]\n".into()));

        assert_eq!(post_text(addr, "/echo/000/other/xhr_send", r#"["x"]"#).await?.0, 404);

        let with_headers = HttpRequest::post("/echo/000/s2/xhr", "")
            .header("access-control-request-headers", "a, b, c")
            .send(addr)
            .await?;
        assert_eq!(with_headers.header("access-control-allow-headers").as_deref(), Some("a, b, c"));
        let without = post(addr, "/echo/000/s3/xhr", "").await?;
        assert!(without.header("access-control-allow-headers").is_none());
        Ok(())
    })
    .await;
}
#[tokio::test]
async fn xhr_send_refuses_broken_json_and_missing_payload_and_takes_any_content_type() {
    bounded(async {
        let server = server().await;
        let addr = server.addr();
        post_text(addr, "/echo/000/s1/xhr", "").await?;
        let (status, body) = post_text(addr, "/echo/000/s1/xhr_send", r#"["x"#).await?;
        assert_eq!(status, 500);
        assert!(body.contains("Broken JSON encoding."), "{body}");
        let (status, body) = post_text(addr, "/echo/000/s1/xhr_send", "").await?;
        assert_eq!(status, 500);
        assert!(body.contains("Payload expected."), "{body}");
        let types = ["text/plain", "T", "application/json", "application/xml", "", "text/xml; charset=utf-8"];
        for ct in types {
            let request = HttpRequest::new(http::Method::POST, "/echo/000/s1/xhr_send").body(r#"["a"]"#);
            let request = if ct.is_empty() { request } else { request.header("content-type", ct) };
            assert_eq!(request.send(addr).await?.status, 204, "{ct}");
        }
        let expected = format!("a[{}]\n", vec!["\"a\""; types.len()].join(","));
        assert_eq!(post_text(addr, "/echo/000/s1/xhr", "").await?, (200, expected));
        Ok(())
    })
    .await;
}
#[tokio::test]
async fn a_second_receiving_connection_gets_2010_and_the_first_keeps_going() {
    bounded(async {
        let server = server().await;
        let addr = server.addr();
        post_text(addr, "/echo/000/s1/xhr", "").await?;
        let held = tokio::spawn(post_text(addr, "/echo/000/s1/xhr", ""));
        tokio::time::sleep(Duration::from_millis(200)).await;
        let second = post_text(addr, "/echo/000/s1/xhr", "").await?;
        assert_eq!(second, (200, "c[2010,\"Another connection still open\"]\n".into()));
        post_text(addr, "/echo/000/s1/xhr_send", r#"["still here"]"#).await?;
        assert_eq!(held.await??, (200, "a[\"still here\"]\n".into()));

        let mut first = post(addr, "/echo/000/s2/xhr_streaming", "").await?;
        chunk(&mut first).await?;
        assert_eq!(chunk(&mut first).await?.as_deref(), Some("o\n"));
        let mut second = post(addr, "/echo/000/s2/xhr_streaming", "").await?;
        chunk(&mut second).await?;
        assert_eq!(chunk(&mut second).await?.as_deref(), Some("c[2010,\"Another connection still open\"]\n"));
        assert_eq!(chunk(&mut second).await?, None);
        Ok(())
    })
    .await;
}
#[tokio::test]
async fn closed_session_answers_its_close_frame_until_it_times_out() {
    bounded(async {
        let server = server_with(Duration::from_secs(25), Duration::from_millis(300)).await;
        let addr = server.addr();
        assert_eq!(post_text(addr, "/close/000/s1/xhr", "").await?, (200, "o\n".into()));
        for _ in 0..2 {
            assert_eq!(post_text(addr, "/close/000/s1/xhr", "").await?, (200, "c[3000,\"Go away!\"]\n".into()));
        }
        let mut r1 = post(addr, "/close/000/s2/xhr_streaming", "").await?;
        chunk(&mut r1).await?;
        assert_eq!(chunk(&mut r1).await?.as_deref(), Some("o\n"));
        assert_eq!(chunk(&mut r1).await?.as_deref(), Some("c[3000,\"Go away!\"]\n"));
        assert_eq!(chunk(&mut r1).await?, None);
        let mut r2 = post(addr, "/close/000/s2/xhr_streaming", "").await?;
        chunk(&mut r2).await?;
        assert_eq!(chunk(&mut r2).await?.as_deref(), Some("c[3000,\"Go away!\"]\n"));
        assert_eq!(chunk(&mut r2).await?, None);
        // After the disconnect delay the session is gone: a new one opens.
        tokio::time::sleep(Duration::from_millis(1200)).await;
        assert_eq!(post_text(addr, "/close/000/s1/xhr", "").await?, (200, "o\n".into()));
        Ok(())
    })
    .await;
}
#[tokio::test]
async fn session_without_receiving_connection_times_out() {
    bounded(async {
        let server = server_with(Duration::from_secs(25), Duration::from_millis(300)).await;
        let addr = server.addr();
        post_text(addr, "/echo/000/s1/xhr", "").await?;
        assert_eq!(post_text(addr, "/echo/000/s1/xhr_send", r#"["a"]"#).await?.0, 204);
        tokio::time::sleep(Duration::from_millis(1200)).await;
        assert_eq!(post_text(addr, "/echo/000/s1/xhr_send", r#"["a"]"#).await?.0, 404);
        Ok(())
    })
    .await;
}
/// The answer of a poll once the server noticed the previous receiving
/// connection broke (until then it is the 2010 "another connection").
async fn after_the_break(addr: SocketAddr, path: &str) -> anyhow::Result<String> {
    for _ in 0..50 {
        let (_, body) = post_text(addr, path, "").await?;
        if !body.starts_with("c[2010,") {
            return Ok(body);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    anyhow::bail!("the server never noticed the broken connection")
}
#[tokio::test]
async fn broken_receiving_connection_interrupts_the_session() {
    bounded(async {
        let server = server().await;
        let addr = server.addr();
        let interrupted = "c[1002,\"Connection interrupted\"]\n";
        let mut r1 = post(addr, "/echo/000/s1/xhr_streaming", "").await?;
        chunk(&mut r1).await?;
        assert_eq!(chunk(&mut r1).await?.as_deref(), Some("o\n"));
        drop(r1);
        assert_eq!(after_the_break(addr, "/echo/000/s1/xhr").await?, interrupted);

        post_text(addr, "/echo/000/s2/xhr", "").await?;
        let held = post(addr, "/echo/000/s2/xhr", "");
        assert!(tokio::time::timeout(Duration::from_millis(300), held).await.is_err());
        assert_eq!(after_the_break(addr, "/echo/000/s2/xhr").await?, interrupted);
        Ok(())
    })
    .await;
}
#[tokio::test]
async fn jsessionid_cookie_is_set_on_session_urls_when_configured() {
    bounded(async {
        let server = server().await;
        let addr = server.addr();
        let cookie = |r: &HttpResponse| r.header("set-cookie").unwrap_or_default();
        let r = post(addr, "/cookie_needed_echo/000/s1/xhr", "").await?;
        assert_eq!(cookie(&r), "JSESSIONID=dummy; path=/");
        let r = HttpRequest::post("/cookie_needed_echo/000/s2/xhr", "")
            .header("cookie", "JSESSIONID=abcdef")
            .send(addr)
            .await?;
        assert_eq!(cookie(&r), "JSESSIONID=abcdef; path=/");
        let r = post(addr, "/cookie_needed_echo/000/s3/xhr_streaming", "").await?;
        assert_eq!(cookie(&r), "JSESSIONID=dummy; path=/");
        let r = HttpRequest::get("/cookie_needed_echo/000/s4/eventsource").send(addr).await?;
        assert_eq!(cookie(&r), "JSESSIONID=dummy; path=/");
        let r = HttpRequest::get("/cookie_needed_echo/000/s5/htmlfile?c=cb").send(addr).await?;
        assert_eq!(cookie(&r), "JSESSIONID=dummy; path=/");
        let r = HttpRequest::get("/cookie_needed_echo/000/s6/jsonp?c=cb").send(addr).await?;
        assert_eq!(cookie(&r), "JSESSIONID=dummy; path=/");
        let r = HttpRequest::new(http::Method::POST, "/cookie_needed_echo/000/s6/jsonp_send")
            .header("content-type", "application/x-www-form-urlencoded")
            .body("d=%5B%22x%22%5D")
            .send(addr)
            .await?;
        assert_eq!(cookie(&r), "JSESSIONID=dummy; path=/");
        let plain = post(addr, "/echo/000/s7/xhr", "").await?;
        assert!(plain.header("set-cookie").is_none());
        Ok(())
    })
    .await;
}
/// Characters the protocol wants escaped by the server (U+200C–U+200F,
/// U+2028–U+202F, U+2060–U+206F, U+FFF0–U+FFFF) come back as `\uXXXX`.
#[tokio::test]
async fn server_escapes_the_listed_unicode_ranges_and_decodes_client_escapes() {
    bounded(async {
        let server = server().await;
        let addr = server.addr();
        post_text(addr, "/echo/000/s1/xhr", "").await?;
        let ranges = [0x200c..=0x200f, 0x2028..=0x202f, 0x2060..=0x206f, 0xfff0..=0xffff];
        let codes: Vec<u32> = ranges.into_iter().flatten().collect();
        let raw: String = codes.iter().filter_map(|&c| char::from_u32(c)).collect();
        let escaped: String = codes.iter().map(|c| format!("\\u{c:04x}")).collect();
        let payload = serde_json::to_string(&vec![raw])?;
        assert_eq!(post_text(addr, "/echo/000/s1/xhr_send", &payload).await?.0, 204);
        let (_, body) = post_text(addr, "/echo/000/s1/xhr", "").await?;
        assert_eq!(body, format!("a[\"{escaped}\"]\n"));

        // What the client escapes is decoded: the same string comes back.
        let client: String = (0u32..0x10000)
            .filter(|&c| {
                c < 0x20 || (0x7f..=0x9f).contains(&c) || (0x300..=0x333).contains(&c) || (0x2000..=0x20ff).contains(&c)
            })
            .map(|c| format!("\\u{c:04x}"))
            .collect();
        let sent = format!("[\"{client}\"]");
        assert_eq!(post_text(addr, "/echo/000/s1/xhr_send", &sent).await?.0, 204);
        let (_, body) = post_text(addr, "/echo/000/s1/xhr", "").await?;
        let back: Vec<String> = serde_json::from_str(body.trim_end().strip_prefix('a').unwrap_or_default())?;
        let expected: Vec<String> = serde_json::from_str(&sent)?;
        assert_eq!(back, expected);
        Ok(())
    })
    .await;
}
#[tokio::test]
async fn wrong_methods_get_405_with_allow() {
    bounded(async {
        let server = server().await;
        let addr = server.addr();
        let cases = [
            (http::Method::GET, "/echo/a/a/xhr", "POST, OPTIONS"),
            (http::Method::GET, "/echo/a/a/xhr_send", "POST, OPTIONS"),
            (http::Method::POST, "/echo/a/a/eventsource", "GET"),
            (http::Method::POST, "/echo/a/a/websocket", "GET"),
            (http::Method::POST, "/echo/info", "OPTIONS, GET"),
            (http::Method::GET, "/echo/a/a/jsonp_send", "POST"),
        ];
        for (method, path, allow) in cases {
            let r = HttpRequest::new(method, path).send(addr).await?;
            assert_eq!(r.status, 405, "{path}");
            assert_eq!(r.header("allow").as_deref(), Some(allow), "{path}");
            assert!(r.header("content-type").is_none());
            assert!(r.bytes().await?.is_empty());
        }
        Ok(())
    })
    .await;
}
#[tokio::test]
async fn origins_outside_the_allowlist_are_refused() {
    bounded(async {
        let server = TestServer::start_with(|c| {
            sockjs::configure(c, Duration::from_secs(25), Duration::from_secs(5));
            c.allowed_origins = vec!["https://app.example".into()];
        })
        .await;
        let addr = server.addr();
        let refused = HttpRequest::post("/echo/000/s1/xhr", "").origin("https://evil.example").send(addr).await?;
        assert_eq!(refused.status, 403);
        let allowed = HttpRequest::post("/echo/000/s1/xhr", "").origin("https://app.example").send(addr).await?;
        assert_cors(&allowed, "https://app.example");
        assert_eq!(allowed.text().await?, "o\n");
        Ok(())
    })
    .await;
}
