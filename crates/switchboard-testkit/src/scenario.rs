//! The flows every transport must pass, written once and run by each
//! `<transport>_resume.rs` test file.

use std::time::Duration;

use crate::chaos::{ChaosProxy, Cuts};
use crate::downstream::Transport;
use crate::resuming::ResumingClient;
use crate::room::{Publisher, Subscriber};
use crate::server::TestServer;

/// The room the scenarios use.
pub const ROOM: &str = "lobby";

/// A subscriber on `transport` receives every message another session
/// publishes, in order, each with the next `seq`.
pub async fn delivers_in_order(transport: Transport) -> anyhow::Result<()> {
    let server = TestServer::start().await;
    let publisher = Publisher::join(server.addr(), ROOM).await?;
    let mut subscriber = Subscriber::join(server.addr(), transport, ROOM).await?;
    publisher.publish_numbered(ROOM, 0..300).await?;
    subscriber.expect_msgs(publisher.id(), 0..300).await?;
    server.shutdown().await;
    Ok(())
}

/// A subscriber on `transport` reads part of what was published, loses its
/// connection with frames in flight, resumes with `sid` + `last` and gets
/// every remaining frame once, including those published while it was away.
pub async fn resumes_after_cut(transport: Transport) -> anyhow::Result<()> {
    let server = TestServer::start().await;
    let publisher = Publisher::join(server.addr(), ROOM).await?;
    let mut subscriber = Subscriber::join(server.addr(), transport, ROOM).await?;

    publisher.publish_numbered(ROOM, 0..100).await?;
    subscriber.expect_msgs(publisher.id(), 0..40).await?;
    // Frames 41.. are on the wire or in the client's buffers: lost with it.
    subscriber.cut();
    publisher.publish_numbered(ROOM, 100..150).await?;

    subscriber.resume(transport).await?;
    subscriber.expect_msgs(publisher.id(), 40..150).await?;
    // A message published now must be the very next frame: nothing from
    // before the cut may come again.
    publisher.publish_numbered(ROOM, 150..151).await?;
    subscriber.expect_msgs(publisher.id(), 150..151).await?;

    // And once more, this time cutting right after the resume.
    subscriber.cut();
    subscriber.resume(transport).await?;
    subscriber.cut();
    publisher.publish_numbered(ROOM, 151..160).await?;
    subscriber.resume(transport).await?;
    subscriber.expect_msgs(publisher.id(), 151..160).await?;
    server.shutdown().await;
    Ok(())
}

/// Messages [`resumes_through_tcp_cuts`] publishes.
const THROUGH_CUTS: u64 = 600;

/// A subscriber on `transport` reaches the server through a [`ChaosProxy`]
/// that drops every TCP connection after a few milliseconds or kilobytes,
/// wherever the bytes are: mid-frame, mid-response, mid-head. It resumes
/// after each drop and must receive exactly `0..600`, once each, in order.
pub async fn resumes_through_tcp_cuts(transport: Transport) -> anyhow::Result<()> {
    let server = TestServer::start_with(|c| {
        // Room for every frame, so that a gap can only mean a bug; poll
        // answers small enough that most fit in one connection's budget.
        c.outbox_max_frames = 1 << 12;
        c.max_frames_per_write = 32;
    })
    .await;
    let cuts = Cuts { lifetime: Duration::from_millis(5)..Duration::from_millis(40), bytes: 1024..8 * 1024 };
    let proxy = ChaosProxy::start(server.addr(), cuts).await?;
    let publisher = Publisher::join(server.addr(), ROOM).await?;
    let mut client = ResumingClient::connect(proxy.addr(), transport).await?.resume_when_superseded(true);
    let cid = client.upstream().join(ROOM).await?;
    loop {
        let frame = client.recv().await?;
        anyhow::ensure!(frame.typ() == "ack", "before the join's ack: {frame}");
        if frame.cid() == Some(cid.as_str()) {
            break;
        }
    }
    let publishing = tokio::spawn(async move {
        for start in (0..THROUGH_CUTS).step_by(50) {
            publisher.publish_numbered(ROOM, start..start + 50).await?;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        anyhow::Ok(publisher)
    });
    let mut received = Vec::new();
    while (received.len() as u64) < THROUGH_CUTS {
        let frame = client.recv().await?;
        anyhow::ensure!(frame.typ() == "msg", "{transport}: unexpected {frame} ({})", client.report());
        received.push(frame.data().and_then(|d| d["n"].as_u64()).unwrap_or(u64::MAX));
    }
    let publisher = publishing.await??;
    let expected: Vec<u64> = (0..THROUGH_CUTS).collect();
    anyhow::ensure!(received == expected, "{transport}: received {received:?} ({})", client.report());
    anyhow::ensure!(client.report().is_clean(), "{transport}: {}", client.report());
    anyhow::ensure!(proxy.cuts() >= 3, "{transport}: the proxy cut only {} connections", proxy.cuts());
    eprintln!("{transport}: {} connections, {} cut; {}", proxy.accepted(), proxy.cuts(), client.report());
    drop((publisher, proxy));
    server.shutdown().await;
    Ok(())
}

/// The server still works: `/healthz` answers `ok`, and a new session can
/// echo a frame over a WebSocket. Tests call it after feeding bad input.
pub async fn assert_serving(addr: std::net::SocketAddr) -> anyhow::Result<()> {
    let response = crate::http::HttpRequest::get("/healthz").send(addr).await?;
    anyhow::ensure!(response.status == 200, "/healthz answered {}", response.status);
    let body = response.text().await?;
    anyhow::ensure!(body.trim() == "ok", "/healthz body {body:?}");

    let attach = crate::downstream::Attach::new(None, 0);
    let mut ws = crate::downstream::WsDownstream::connect(addr, &attach).await?;
    let welcome = ws.next().await?;
    crate::room::check_new_welcome(&welcome)?;
    ws.send_text(r#"{"type":"echo","data":"still here","cid":"alive"}"#).await?;
    let echo = crate::downstream::next_non_ping(&mut ws).await?;
    anyhow::ensure!(
        echo.typ() == "echo" && echo.cid() == Some("alive") && echo.data() == Some(&"still here".into()),
        "echo answered {echo}"
    );
    Ok(())
}

/// Attaching to `sid` over `transport` must produce `close` 4004 (a poll
/// answers it in its array); returns that frame. Its `reconnect` flag is
/// checked by [`assert_sessions_unknown`].
pub async fn assert_session_unknown(
    addr: std::net::SocketAddr,
    transport: Transport,
    sid: &str,
) -> anyhow::Result<crate::frame::Frame> {
    let context = || format!("{transport} attach to unknown sid {sid}");
    let mut downstream = transport.attach(addr, Some(sid), 0).await.map_err(|e| e.context(context()))?;
    let frame = crate::downstream::next_non_ping(downstream.as_mut()).await.map_err(|e| e.context(context()))?;
    anyhow::ensure!(frame.is_close(4004), "{}: expected close 4004, got {frame}", context());
    Ok(frame)
}

/// [`assert_session_unknown`] on every transport, then: every one of those
/// `close` frames says `reconnect: false` (§1.2: resuming an ended session
/// is pointless; §6: start a new one).
pub async fn assert_sessions_unknown(addr: std::net::SocketAddr, sid: &str) -> anyhow::Result<()> {
    let mut wrong = Vec::new();
    for transport in Transport::ALL {
        let close = assert_session_unknown(addr, transport, sid).await?;
        if close.bool("reconnect") != Some(false) {
            wrong.push(format!("{transport}: {close}"));
        }
    }
    anyhow::ensure!(wrong.is_empty(), "close 4004 must say reconnect:false, got:\n{}", wrong.join("\n"));
    Ok(())
}
