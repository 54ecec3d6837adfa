//! SockJS over WebSocket: the framed `/{server}/{session}/websocket`
//! endpoint and the raw `/websocket` one, as the protocol test suite
//! (sockjs-protocol-0.3.3.py) checks them.

use std::time::Duration;

use switchboard_testkit::sockjs::{self, TextSocket};
use switchboard_testkit::{bounded, HttpRequest, TestServer};

async fn server() -> TestServer {
    sockjs::start(Duration::from_millis(300), Duration::from_secs(5)).await
}

#[tokio::test]
async fn framed_websocket_opens_echoes_and_ignores_empty_messages() {
    bounded(async {
        let server = server().await;
        let mut ws = TextSocket::connect(server.addr(), "/echo/000/s1/websocket").await?;
        assert_eq!(ws.recv().await?.as_deref(), Some("o"));
        ws.send("").await?;
        ws.send(r#"["a"]"#).await?;
        assert_eq!(ws.recv().await?.as_deref(), Some(r#"a["a"]"#));
        ws.send(r#""single""#).await?;
        assert_eq!(ws.recv().await?.as_deref(), Some(r#"a["single"]"#));
        // Idle: heartbeats.
        assert_eq!(ws.recv().await?.as_deref(), Some("h"));
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn framed_websocket_close_service_sends_close_frame_then_closes() {
    bounded(async {
        let server = server().await;
        let mut ws = TextSocket::connect(server.addr(), "/close/000/s1/websocket").await?;
        assert_eq!(ws.recv().await?.as_deref(), Some("o"));
        assert_eq!(ws.recv().await?.as_deref(), Some(r#"c[3000,"Go away!"]"#));
        assert_eq!(ws.recv().await?, None);
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn framed_websocket_broken_json_ends_the_connection() {
    bounded(async {
        let server = server().await;
        let mut ws = TextSocket::connect(server.addr(), "/echo/000/s1/websocket").await?;
        assert_eq!(ws.recv().await?.as_deref(), Some("o"));
        ws.send(r#"["a"#).await?;
        assert_eq!(ws.recv().await?, None);
        Ok(())
    })
    .await;
}

/// A WebSocket session lives as long as its connection: two sockets may
/// share a session name, and a name may be reused after a close.
#[tokio::test]
async fn framed_websockets_may_reuse_a_session_id() {
    bounded(async {
        let server = server().await;
        let path = "/echo/000/shared/websocket";
        let mut ws1 = TextSocket::connect(server.addr(), path).await?;
        assert_eq!(ws1.recv().await?.as_deref(), Some("o"));
        let mut ws2 = TextSocket::connect(server.addr(), path).await?;
        assert_eq!(ws2.recv().await?.as_deref(), Some("o"));
        ws1.send(r#"["a"]"#).await?;
        assert_eq!(ws1.recv().await?.as_deref(), Some(r#"a["a"]"#));
        ws2.send(r#"["b"]"#).await?;
        assert_eq!(ws2.recv().await?.as_deref(), Some(r#"a["b"]"#));
        drop((ws1, ws2));
        let mut again = TextSocket::connect(server.addr(), path).await?;
        assert_eq!(again.recv().await?.as_deref(), Some("o"));
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn websocket_upgrade_errors_and_versions() {
    bounded(async {
        let server = server().await;
        let addr = server.addr();
        let plain = HttpRequest::get("/echo/0/0/websocket").send(addr).await?;
        assert_eq!(plain.status, 400);
        assert!(plain.text().await?.contains("Can \"Upgrade\" only to \"WebSocket\"."));
        let closing = HttpRequest::get("/echo/0/0/websocket")
            .header("upgrade", "WebSocket")
            .header("connection", "close")
            .send(addr)
            .await?;
        assert_eq!(closing.status, 400);
        assert!(closing.text().await?.contains("\"Connection\" must be \"Upgrade\"."));
        for version in ["7", "8", "13"] {
            let upgrade = HttpRequest::get("/echo/000/v/websocket")
                .header("upgrade", "websocket")
                .header("connection", "keep-alive, Upgrade")
                .header("sec-websocket-version", version)
                .header("sec-websocket-key", "x3JJHMbDL1EzLkh9GBhXDw==")
                .send(addr)
                .await?;
            assert_eq!(upgrade.status, 101, "version {version}");
            assert_eq!(upgrade.header("sec-websocket-accept").as_deref(), Some("HSmrc0sMlYUkAGmm5OPpG2HaGWk="));
            assert!(upgrade.header("content-length").is_none());
        }
        let disabled = HttpRequest::get("/disabled_websocket_echo/000/s/websocket").send(addr).await?;
        assert_eq!(disabled.status, 404);
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn raw_websocket_has_no_framing() {
    bounded(async {
        let server = server().await;
        let mut ws = TextSocket::connect(server.addr(), "/echo/websocket").await?;
        ws.send("Hello world!\u{ffff}").await?;
        assert_eq!(ws.recv().await?.as_deref(), Some("Hello world!\u{ffff}"));
        let mut closed = TextSocket::connect(server.addr(), "/close/websocket").await?;
        assert_eq!(closed.recv().await?, None);
        assert_eq!(closed.close_code(), Some(3000));
        assert_eq!(closed.close_reason(), Some("Go away!"));
        Ok(())
    })
    .await;
}
