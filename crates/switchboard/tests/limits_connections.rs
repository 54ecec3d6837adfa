//! `docs/limits.md`, Connections: connections per IP (WebSockets
//! included), request head size and head read time. Over each bound the
//! documented answer arrives, `switchboard_errors_total{code}` grows, and a
//! client connected before (on another connection) chats on unaffected.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use switchboard_testkit::downstream::WsDownstream;
use switchboard_testkit::hardening::{errors_series, raw_exchange, response_head, Bystander, Metrics};
use switchboard_testkit::http::HttpRequest;
use switchboard_testkit::{bounded, Attach, TestServer};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpSocket, TcpStream};

/// `GET /healthz` from source address `source` on a raw socket; the status.
async fn healthz_from(source: [u8; 4], addr: SocketAddr) -> anyhow::Result<u16> {
    let socket = TcpSocket::new_v4()?;
    socket.bind((source, 0).into())?;
    let mut stream = socket.connect(addr).await?;
    stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await?;
    let (raw, _) = switchboard_testkit::hardening::read_until_closed(&mut stream, Duration::from_secs(5)).await?;
    response_head(&raw).map(|(status, _)| status).ok_or_else(|| anyhow::anyhow!("no response: {raw:?}"))
}

#[tokio::test]
async fn connections_over_the_per_ip_limit_get_429_and_websockets_count() {
    bounded(async {
        const MAX: usize = 6;
        let server = TestServer::start_with(|c| c.max_connections_per_ip = MAX).await;
        let addr = server.addr();
        let before = Metrics::scrape(addr).await?;
        // One connection: the bystander's WebSocket.
        let mut bystander = Bystander::join(addr, "bystander", "calm").await?;
        // Five more WebSockets fill the address's quota (the scrape's
        // connection may take a moment to be released: retry briefly).
        let mut sockets = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(5);
        while sockets.len() < MAX - 1 {
            match WsDownstream::connect(addr, &Attach::new(None, 0)).await {
                Ok(mut ws) => {
                    assert_eq!(ws.next().await?.typ(), "welcome");
                    sockets.push(ws);
                }
                Err(e) => {
                    anyhow::ensure!(Instant::now() < deadline, "WebSocket {} refused: {e:#}", sockets.len() + 2);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
        // The next connection, of any kind, is refused with 429.
        let (raw, closed) =
            raw_exchange(addr, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", Duration::from_secs(5)).await?;
        let (status, head) = response_head(&raw).ok_or_else(|| anyhow::anyhow!("no answer: {raw:?}"))?;
        assert_eq!(status, 429, "{head}");
        assert!(closed, "the refused connection must be closed");
        let body = String::from_utf8_lossy(&raw[head.len() + 4..]).into_owned();
        let body: serde_json::Value = serde_json::from_str(&body)?;
        assert_eq!(body["code"], 4429, "{body}");
        assert!(body["message"].as_str().is_some_and(|m| m.contains("connections")), "{body}");
        let refused = WsDownstream::connect(addr, &Attach::new(None, 0)).await;
        assert!(refused.is_err(), "a WebSocket over the limit was accepted");

        // Another address is not affected by this one's quota.
        assert_eq!(healthz_from([127, 0, 0, 2], addr).await?, 200, "127.0.0.2 was refused");
        // Neither are the connections already open.
        bystander.check().await?;
        for ws in &mut sockets {
            ws.send_text(r#"{"type":"echo","data":1,"cid":"e"}"#).await?;
            assert_eq!(switchboard_testkit::next_non_ping(ws).await?.typ(), "echo");
        }

        // Closing WebSockets frees their slots.
        sockets.truncate(2);
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match HttpRequest::get("/healthz").send(addr).await {
                Ok(response) if response.status == 200 => break,
                _ => {}
            }
            anyhow::ensure!(Instant::now() < deadline, "slots of closed WebSockets were not freed");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        before.wait_grown(addr, &errors_series(429), 2.0).await?;
        bystander.check().await?;
        server.shutdown().await;
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn a_request_head_over_the_size_limit_gets_431() {
    bounded(async {
        let server = TestServer::start_with(|c| c.max_header_bytes = 8192).await;
        let addr = server.addr();
        let before = Metrics::scrape(addr).await?;
        let mut bystander = Bystander::join(addr, "bystander", "calm").await?;

        let big = format!("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n", "a".repeat(32 * 1024));
        let (raw, closed) = raw_exchange(addr, big.as_bytes(), Duration::from_secs(5)).await?;
        let (status, head) = response_head(&raw).ok_or_else(|| anyhow::anyhow!("no answer: {raw:?}"))?;
        assert_eq!(status, 431, "{head}");
        assert!(closed, "the connection must be closed after 431");

        // Too many header lines count the same.
        let many: String = (0..200).map(|i| format!("X-H{i}: v\r\n")).collect();
        let request = format!("GET /healthz HTTP/1.1\r\nHost: x\r\n{many}\r\n");
        let (raw, _) = raw_exchange(addr, request.as_bytes(), Duration::from_secs(5)).await?;
        assert_eq!(response_head(&raw).map(|(s, _)| s), Some(431), "{:?}", String::from_utf8_lossy(&raw));

        // Just under the limit is fine.
        let fits =
            format!("GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Fits: {}\r\n\r\n", "a".repeat(6000));
        let (raw, _) = raw_exchange(addr, fits.as_bytes(), Duration::from_secs(5)).await?;
        assert_eq!(response_head(&raw).map(|(s, _)| s), Some(200));

        before.wait_grown(addr, &errors_series(431), 2.0).await?;
        bystander.check().await?;
        server.shutdown().await;
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn a_head_not_sent_within_the_read_timeout_is_cut() {
    bounded(async {
        let timeout = Duration::from_millis(800);
        let server = TestServer::start_with(|c| c.header_read_timeout = timeout).await;
        let addr = server.addr();
        let before = Metrics::scrape(addr).await?;
        let mut bystander = Bystander::join(addr, "bystander", "calm").await?;

        // Slowloris: half a head, then a byte now and then, never the end.
        let mut slow = TcpStream::connect(addr).await?;
        let started = Instant::now();
        slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await?;
        let dripping = async {
            for _ in 0..40 {
                tokio::time::sleep(Duration::from_millis(100)).await;
                if slow.write_all(b"X").await.is_err() {
                    break;
                }
            }
        };
        dripping.await;
        let (raw, closed) =
            switchboard_testkit::hardening::read_until_closed(&mut slow, Duration::from_secs(3)).await?;
        assert!(closed, "a slow head was still open after {:?}", started.elapsed());
        assert!(response_head(&raw).is_none_or(|(s, _)| s != 200), "{raw:?}");
        // A connection that sends nothing at all is cut too.
        let mut silent = TcpStream::connect(addr).await?;
        let started = Instant::now();
        let (_, closed) =
            switchboard_testkit::hardening::read_until_closed(&mut silent, Duration::from_secs(5)).await?;
        assert!(closed, "a silent connection was never cut");
        assert!(started.elapsed() >= timeout / 2, "cut too early: {:?}", started.elapsed());

        before.wait_grown(addr, &errors_series(408), 1.0).await?;
        // The bystander's WebSocket is past its head: no timeout applies.
        tokio::time::sleep(timeout).await;
        bystander.check().await?;
        server.shutdown().await;
        Ok(())
    })
    .await;
}
