//! Cross-site WebSocket hijacking (DESIGN §5): a page on a foreign origin
//! cannot open a WebSocket to any endpoint — native `/v1/ws`, socket.io's
//! `/socket.io/`, SockJS's framed and raw websockets — nor use SockJS's XHR
//! transports. Look-alike origins (another scheme, port, a suffix, `null`)
//! are foreign. The allowed origin gets its upgrade. (`cors.rs` covers
//! the native HTTP endpoints and CORS headers.)

use std::time::Duration;

use switchboard_testkit::hardening::{errors_series, response_head, Metrics};
use switchboard_testkit::http::HttpRequest;
use switchboard_testkit::{bounded, TestServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const GOOD: &str = "https://app.example";
const FOREIGN: [&str; 7] = [
    "https://evil.example",
    "http://app.example",
    "https://app.example:8443",
    "https://app.example.evil.example",
    "https://evilapp.example",
    "null",
    "https://app.example/",
];

/// Every WebSocket endpoint: (path, what).
const WEBSOCKETS: [(&str, &str); 4] = [
    ("/v1/ws", "native"),
    ("/socket.io/?EIO=4&transport=websocket", "socket.io"),
    ("/sockjs/echo/000/hijack/websocket", "SockJS framed"),
    ("/sockjs/echo/websocket", "SockJS raw"),
];

/// The status a WebSocket upgrade of `path` from `origin` is answered with.
async fn upgrade_status(addr: std::net::SocketAddr, path: &str, origin: Option<&str>) -> anyhow::Result<u16> {
    let mut stream = TcpStream::connect(addr).await?;
    let origin = origin.map(|o| format!("Origin: {o}\r\n")).unwrap_or_default();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{origin}\r\n"
    );
    stream.write_all(request.as_bytes()).await?;
    // Only the head matters; read until it is complete.
    let mut raw = Vec::new();
    let mut buf = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while response_head(&raw).is_none() {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => raw.extend_from_slice(&buf[..n]),
            _ => anyhow::bail!("no answer to the upgrade of {path}: {:?}", String::from_utf8_lossy(&raw)),
        }
    }
    Ok(response_head(&raw).map_or(0, |(status, _)| status))
}

#[tokio::test]
async fn foreign_origins_cannot_open_a_websocket_on_any_endpoint() {
    bounded(async {
        let server = TestServer::start_with(|c| c.allowed_origins = vec![GOOD.to_owned()]).await;
        let addr = server.addr();
        let before = Metrics::scrape(addr).await?;
        for (path, what) in WEBSOCKETS {
            for origin in FOREIGN {
                let status = upgrade_status(addr, path, Some(origin)).await?;
                assert_eq!(status, 403, "{what} WebSocket from {origin:?}");
            }
            assert_eq!(upgrade_status(addr, path, Some(GOOD)).await?, 101, "{what} WebSocket from {GOOD}");
            // Case does not make an origin foreign (scheme and host are
            // case-insensitive).
            assert_eq!(upgrade_status(addr, path, Some("HTTPS://APP.EXAMPLE")).await?, 101, "{what}");
            // Non-browser clients send no Origin at all.
            assert_eq!(upgrade_status(addr, path, None).await?, 101, "{what} without Origin");
        }
        // The native and SockJS refusals are counted.
        before.wait_grown(addr, &errors_series(4403), (2 * FOREIGN.len()) as f64).await?;
        server.shutdown().await;
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn foreign_origins_cannot_use_sockjs_or_socketio_polling() {
    bounded(async {
        let server = TestServer::start_with(|c| c.allowed_origins = vec![GOOD.to_owned()]).await;
        let addr = server.addr();
        for origin in FOREIGN {
            for request in [
                HttpRequest::post("/sockjs/echo/000/x1/xhr", ""),
                HttpRequest::post("/sockjs/echo/000/x1/xhr_send", r#"["hi"]"#),
                HttpRequest::get("/sockjs/echo/000/x1/eventsource"),
                HttpRequest::get("/sockjs/echo/info"),
                HttpRequest::get("/socket.io/?EIO=4&transport=polling"),
            ] {
                let response = request.clone().origin(origin).send(addr).await?;
                assert_eq!(response.status, 403, "{request:?} from {origin}");
                let allowed = response.header("access-control-allow-origin");
                assert!(allowed.is_none(), "{request:?} from {origin}: ACAO {allowed:?}");
            }
        }
        let response = HttpRequest::get("/socket.io/?EIO=4&transport=polling").origin(GOOD).send(addr).await?;
        assert_eq!(response.status, 200);
        assert_eq!(response.header("access-control-allow-origin").as_deref(), Some(GOOD));
        server.shutdown().await;
        Ok(())
    })
    .await;
}
