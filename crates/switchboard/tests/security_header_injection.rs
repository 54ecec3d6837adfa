//! Header injection and response splitting: every value the server
//! reflects into a response header — the `Origin` (CORS), SockJS's
//! requested headers and `JSESSIONID` cookie — and every value a client can
//! put in a query, path or header (callback names, `sid`, `name`,
//! `Last-Event-ID`) is tried with CR/LF: raw, percent-encoded, obs-folded.
//! No response head ever carries a CR or LF inside a line, an injected
//! header, or a second response.

use std::time::Duration;

use switchboard_testkit::hardening::{raw_exchange, response_head};
use switchboard_testkit::{bounded, sockjs, TestServer};

const INJECTED: &str = "x-injected";

/// The head is well formed: a status line, then `name: value` lines whose
/// names are tokens, no stray CR or LF, no injected header; and the bytes
/// after it are one response body at most.
fn assert_clean(raw: &[u8], what: &str) {
    let text = String::from_utf8_lossy(raw);
    let Some((status, head)) = response_head(raw) else {
        // The server may also just close a connection it cannot parse.
        assert!(!text.to_ascii_lowercase().contains(INJECTED), "{what}: {text:?}");
        return;
    };
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    assert!(status_line.starts_with("HTTP/1.1 "), "{what}: {status_line:?}");
    for line in lines {
        assert!(!line.contains('\r') && !line.contains('\n'), "{what}: CR/LF inside {line:?}");
        let (name, _value) = line.split_once(": ").unwrap_or_else(|| panic!("{what}: not a header line {line:?}"));
        assert!(
            !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)),
            "{what}: bad header name {name:?}"
        );
        assert!(!name.eq_ignore_ascii_case(INJECTED), "{what}: injected header in {head}");
    }
    let cookies = head.to_ascii_lowercase().matches("\r\nset-cookie:").count();
    assert!(cookies <= 1, "{what}: {cookies} Set-Cookie headers in {head}");
    let rest = &text[head.len()..];
    assert_eq!(rest.matches("HTTP/1.1 ").count(), 0, "{what} (status {status}): a second response follows: {rest:?}");
}

async fn send(addr: std::net::SocketAddr, request: &str) -> anyhow::Result<Vec<u8>> {
    Ok(raw_exchange(addr, request.as_bytes(), Duration::from_millis(500)).await?.0)
}

#[tokio::test]
async fn no_reflected_value_splits_a_native_or_socketio_response() {
    bounded(async {
        let server = TestServer::start().await; // allowlist `*`: every origin is echoed
        let addr = server.addr();
        let crlf = format!("%0d%0a{INJECTED}:%20yes");
        let targets = [
            format!("/v1/poll?wait=0&callback=cb{crlf}"),
            format!("/v1/jsonp?wait=0&callback=cb{crlf}"),
            format!("/v1/htmlfile?callback=cb{crlf}"),
            format!("/v1/poll?wait=0&sid=abc{crlf}"),
            format!("/v1/poll?wait=0&name=bob{crlf}"),
            format!("/v1/send?sid={crlf}"),
            format!("/v1/{crlf}"),
            format!("/socket.io/?EIO=4&transport=polling&sid={crlf}"),
            format!("/socket.io/?EIO=4&transport=polling&j={crlf}"),
            format!("/static{crlf}.html"),
            format!("/api/v1/rooms/{crlf}/messages"),
        ];
        for target in &targets {
            let raw = send(addr, &format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")).await?;
            assert_clean(&raw, target);
        }
        let origins = [
            format!("https://a.example%0d%0a{INJECTED}: yes"),
            format!("https://a.example\r\n {INJECTED}: yes"),
            format!("https://a.example\r\n\t{INJECTED}: yes"),
            format!("https://a.example\r{INJECTED}: yes"),
            format!("https://a.example\n{INJECTED}: yes"),
        ];
        for origin in &origins {
            for path in ["/v1/poll?wait=0", "/v1/sse", "/socket.io/?EIO=4&transport=polling"] {
                let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nOrigin: {origin}\r\nConnection: close\r\n\r\n");
                assert_clean(&send(addr, &request).await?, &format!("{path} with Origin {origin:?}"));
                let preflight = format!(
                    "OPTIONS {path} HTTP/1.1\r\nHost: x\r\nOrigin: {origin}\r\nAccess-Control-Request-Method: POST\r\nConnection: close\r\n\r\n"
                );
                assert_clean(&send(addr, &preflight).await?, &format!("preflight {path} with Origin {origin:?}"));
            }
        }
        for id in ["1\r\n x-injected: yes", "1\rx-injected: yes", "1%0d%0ax-injected:%20yes"] {
            let request = format!("GET /v1/sse HTTP/1.1\r\nHost: x\r\nLast-Event-ID: {id}\r\nConnection: close\r\n\r\n");
            assert_clean(&send(addr, &request).await?, &format!("Last-Event-ID {id:?}"));
        }
        server.shutdown().await;
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn no_reflected_value_splits_a_sockjs_response() {
    bounded(async {
        let server = sockjs::start(Duration::from_secs(25), Duration::from_secs(5)).await;
        let addr = server.addr();
        let crlf = format!("%0d%0a{INJECTED}:%20yes");
        for path in [
            format!("/cookie_needed_echo/000/s{crlf}/xhr"),
            format!("/echo/000/s1/jsonp?c=cb{crlf}"),
            format!("/echo/000/s1/htmlfile?c=cb{crlf}"),
            format!("/echo/info?t={crlf}"),
        ] {
            let method = if path.ends_with("/xhr") { "POST" } else { "GET" };
            let raw = send(addr, &format!("{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")).await?;
            assert_clean(&raw, &path);
        }
        // Reflected headers: the JSESSIONID cookie and the requested
        // headers of a preflight.
        for cookie in [
            format!("JSESSIONID=abc{crlf}"),
            format!("JSESSIONID=abc\r\n {INJECTED}: yes"),
            format!("JSESSIONID=abc\r{INJECTED}: yes"),
            "JSESSIONID=a;b\"c,d\\e".to_owned(),
        ] {
            let request = format!(
                "POST /cookie_needed_echo/000/c1/xhr HTTP/1.1\r\nHost: x\r\nCookie: {cookie}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            let raw = send(addr, &request).await?;
            assert_clean(&raw, &format!("Cookie {cookie:?}"));
            if let Some((200, head)) = response_head(&raw) {
                let set = head.lines().find(|l| l.to_ascii_lowercase().starts_with("set-cookie:")).unwrap_or_default();
                assert!(!set.contains('"') && !set.contains('\\') && !set.contains(','), "{set:?}");
            }
        }
        for requested in [format!("x-a{crlf}"), format!("x-a\r\n {INJECTED}: yes"), format!("x-a\r{INJECTED}: yes")] {
            let request = format!(
                "OPTIONS /echo/000/p1/xhr HTTP/1.1\r\nHost: x\r\nOrigin: https://a.example\r\n\
                 Access-Control-Request-Headers: {requested}\r\nConnection: close\r\n\r\n"
            );
            assert_clean(&send(addr, &request).await?, &format!("requested headers {requested:?}"));
        }
        server.shutdown().await;
        Ok(())
    })
    .await;
}
