//! The WebSocket transport: a connection opened directly over WebSocket,
//! or the upgrade of a polling connection (`2probe` → `3probe`, the held
//! poll answered with `noop`, then `5`), after which the WebSocket carries
//! everything. One task per WebSocket writes the connection's queue, reads
//! the client's messages and runs the connection's driver (an upgraded
//! connection's polling task hands its driver over and stops).

use std::sync::Arc;
use std::time::Duration;

use futures_util::{FutureExt, SinkExt, StreamExt};
use http::{header, HeaderValue, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use switchboard_transports::response::{self, Body};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_websockets::{CloseCode, Limits, Message, WebSocketStream};

use crate::connection::{CloseReason, Connection, Mode};
use crate::driver::{end_socket, Command, Driver};
use crate::endpoint::{EngineError, Inner};
use crate::protocol::engine::{self, kind, Incoming as Packet, Outgoing};
use crate::upstream;

/// How long a probe WebSocket may take to complete the upgrade.
pub const UPGRADE_TIMEOUT: Duration = Duration::from_secs(10);

/// Answers an upgrade request: a new connection (`conn` is `None`) or the
/// upgrade of a polling one.
pub fn upgrade(inner: Arc<Inner>, request: http::Request<Incoming>, conn: Option<Arc<Connection>>) -> Response<Body> {
    let Some(accept) = switchboard_transports::ws::accept_key(request.headers()) else {
        return EngineError::BadRequest.response();
    };
    if let Some(conn) = &conn {
        if !conn.begin_probe() {
            return EngineError::BadRequest.response();
        }
    }
    if conn.is_none() && inner.core.is_shutting_down() {
        return response::complete(StatusCode::SERVICE_UNAVAILABLE, "text/plain", "shutting down");
    }
    // The request stays out of the task's state (which an idle connection
    // keeps for its whole life); the opening and the probe are boxed for
    // the same reason.
    let on_upgrade = hyper::upgrade::on(request);
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                // Both ways end in the one call below: the task's state,
                // kept for the connection's life, has room for one
                // running connection, not one per way in.
                let (conn, ws, mut driver) = match conn {
                    Some(conn) => match Box::pin(take_over(&inner, conn, upgraded)).await {
                        Some(running) => running,
                        None => return,
                    },
                    None => {
                        let (conn, opened) = Box::pin(inner.register(Mode::WebSocket)).await;
                        conn.send([Outgoing::text(kind::OPEN, &inner.handshake(conn.sid(), false))]);
                        // Made here, after the await above: the task's
                        // state then keeps one WebSocket, not room for two.
                        let ws = serve(&inner, upgraded);
                        let driver = Driver::new(&inner, opened);
                        (conn, ws, driver)
                    }
                };
                run_driven(&inner, &conn, ws, &mut driver).await;
                driver.finish(&inner, &conn);
            }
            Err(e) => {
                tracing::debug!(error = %e, "socket.io websocket upgrade failed");
                if let Some(conn) = conn {
                    conn.abort_probe();
                }
            }
        }
    });
    let mut response = Response::new(response::full(""));
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    response
}

/// The WebSocket over an upgraded connection.
fn serve(inner: &Inner, upgraded: hyper::upgrade::Upgraded) -> WebSocketStream<TokioIo<hyper::upgrade::Upgraded>> {
    let limits = Limits::default().max_payload_len(Some(inner.config.max_payload));
    tokio_websockets::ServerBuilder::new().limits(limits).serve(TokioIo::new(upgraded))
}

/// A polling connection's upgrade: the probe, then the driver the polling
/// task hands over. `None` when the upgrade failed or the connection ended
/// meanwhile.
async fn take_over(
    inner: &Inner,
    conn: Arc<Connection>,
    upgraded: hyper::upgrade::Upgraded,
) -> Option<(Arc<Connection>, WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>, Driver)> {
    let ws = serve(inner, upgraded);
    let mut ws = probe(&conn, ws).await?;
    let Some(driver) = handed_over(&conn).await else {
        // The polling task ended first and cleaned up.
        let _ = close(&mut ws).await;
        return None;
    };
    Some((conn, ws, driver))
}

/// The probe phase of an upgrade; the WebSocket when it succeeded (the
/// WebSocket then carries the connection).
async fn probe<S>(conn: &Connection, mut ws: WebSocketStream<S>) -> Option<WebSocketStream<S>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let upgraded = tokio::time::timeout(UPGRADE_TIMEOUT, async {
        let mut probed = false;
        let mut read_ahead: Option<Message> = None;
        loop {
            let message = match read_ahead.take() {
                Some(message) => message,
                None => match ws.next().await {
                    Some(Ok(message)) => message,
                    _ => return false,
                },
            };
            let Some(text) = message.as_text() else {
                return false;
            };
            match engine::decode_text(text) {
                Ok(Packet::Ping(data)) if data == "probe" && !probed => {
                    if ws.send(Message::text(String::from("3probe"))).await.is_err() {
                        return false;
                    }
                    probed = true;
                    // An `upgrade` already sent behind the probe completes
                    // it at once: no Upgrading state in between, so a poll
                    // the client sent after its `upgrade` cannot be
                    // answered `noop` as if it came before.
                    match ws.next().now_or_never() {
                        Some(Some(Ok(next))) => read_ahead = Some(next),
                        Some(_) => return false,
                        None => {}
                    }
                    let upgrade_next = read_ahead
                        .as_ref()
                        .and_then(Message::as_text)
                        .is_some_and(|t| matches!(engine::decode_text(t), Ok(Packet::Upgrade)));
                    if !upgrade_next {
                        conn.set_mode(Mode::Upgrading);
                    }
                }
                Ok(Packet::Upgrade) if probed => return true,
                _ => return false,
            }
        }
    })
    .await
    .unwrap_or(false);
    if !upgraded || conn.closed().is_some() {
        conn.abort_probe();
        let _ = close(&mut ws).await;
        return None;
    }
    conn.set_mode(Mode::WebSocket);
    Some(ws)
}

/// The driver of an upgraded connection, taken over from the polling task
/// (which stops once it has handed it over); `None` when that task ended
/// first (the connection closed). Until the driver arrives, the frames wait
/// in their sessions' outboxes and what the client sends waits in the
/// socket.
async fn handed_over(conn: &Connection) -> Option<Driver> {
    conn.command(Command::HandOver);
    conn.wait_for(|conn| match conn.take_driver() {
        Some(driver) => Some(Some(driver)),
        None => conn.closed().map(|_| None),
    })
    .await
}

/// Writes the queue and reads the client until the connection closes, and
/// runs the connection's `driver` in the same task: one task, not two (a
/// task and its state are about a kilobyte per idle connection). The
/// driver's commands come from the messages this task reads, so they are
/// applied right after reading.
async fn run_driven<S>(inner: &Arc<Inner>, conn: &Arc<Connection>, mut ws: WebSocketStream<S>, driver: &mut Driver)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let timer = tokio::time::sleep_until(driver.deadline());
    tokio::pin!(timer);
    loop {
        let woken = conn.woken();
        tokio::pin!(woken);
        woken.as_mut().enable();
        driver.commands(inner, conn).await;
        if !write_queue(conn, &mut ws).await {
            return;
        }
        driver.rearm(timer.as_mut());
        // The queue was just written: it is never full here.
        tokio::select! {
            () = &mut woken => {}
            (index, result) = driver.next_batch() => {
                if let Some(link) = driver.batch(inner, conn, index, result) {
                    end_socket(inner, conn, link, "server namespace disconnect").await;
                }
            }
            () = &mut timer => driver.deadline_reached(inner, conn),
            message = ws.next() => if !read_burst(inner, conn, &mut ws, message).await {
                return;
            },
        }
    }
}

/// Writes what is queued; false when the connection is over (closed, or
/// the write failed).
async fn write_queue<S>(conn: &Connection, ws: &mut WebSocketStream<S>) -> bool
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let packets = conn.take_queue();
    if !packets.is_empty() && write(ws, packets).await.is_err() {
        conn.close(CloseReason::TransportClose);
        return false;
    }
    if conn.closed().is_some() {
        let _ = close(ws).await;
        return false;
    }
    true
}

/// Handles `message` and every message already read behind it, so a burst
/// is answered in one write; false when the connection is over.
async fn read_burst<S>(
    inner: &Arc<Inner>,
    conn: &Arc<Connection>,
    ws: &mut WebSocketStream<S>,
    mut message: Option<Result<Message, tokio_websockets::Error>>,
) -> bool
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    for _ in 0..MAX_MESSAGES_PER_WRITE {
        if !read(inner, conn, message) {
            let _ = ws.flush().await;
            return false;
        }
        match ws.next().now_or_never() {
            Some(next) => message = next,
            None => break,
        }
    }
    true
}

/// Most client messages handled one after another, while more are already
/// read, before the queue is written.
const MAX_MESSAGES_PER_WRITE: usize = 64;

/// Handles what the WebSocket read; false when the connection is over (the
/// caller then flushes what tokio-websockets queued: the answer to a close,
/// or the close frame of a read error, 1009 for a message over maxPayload).
/// Not async, so the task's state keeps no room for it while idle.
fn read(inner: &Arc<Inner>, conn: &Arc<Connection>, message: Option<Result<Message, tokio_websockets::Error>>) -> bool {
    match message {
        Some(Ok(message)) if message.is_close() => {
            conn.close(CloseReason::TransportClose);
            false
        }
        Some(Ok(message)) => {
            let packet = if let Some(text) = message.as_text() {
                engine::decode_text(text).map_err(|e| e.to_string())
            } else if message.is_binary() {
                Ok(Packet::Binary(message.into_payload().into()))
            } else {
                return true; // WebSocket-level ping or pong
            };
            let handled = packet.and_then(|p| upstream::handle(inner, conn, p).map_err(|e| e.to_string()));
            if let Err(e) = handled {
                tracing::debug!(sid = %conn.sid(), error = %e, "protocol error on websocket");
                conn.close(CloseReason::TransportError);
            }
            true
        }
        Some(Err(e)) => {
            tracing::debug!(sid = %conn.sid(), error = %e, "websocket read failed");
            conn.close(CloseReason::TransportError);
            false
        }
        None => {
            conn.close(CloseReason::TransportClose);
            false
        }
    }
}

/// Writes `packets` in one flush. A hand-written poll rather than a loop of
/// `feed`s: the task's state then keeps no room for a message in flight.
async fn write<S>(ws: &mut WebSocketStream<S>, packets: Vec<Outgoing>) -> Result<(), tokio_websockets::Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut packets = packets.into_iter();
    std::future::poll_fn(|cx| {
        loop {
            std::task::ready!(ws.poll_ready_unpin(cx))?;
            let Some(packet) = packets.next() else { break };
            ws.start_send_unpin(match packet {
                Outgoing::Text(text) => Message::text(text),
                Outgoing::Binary(bytes) => Message::binary(bytes),
            })?;
        }
        ws.poll_flush_unpin(cx)
    })
    .await
}

async fn close<S>(ws: &mut WebSocketStream<S>) -> Result<(), tokio_websockets::Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    ws.send(Message::close(Some(CloseCode::NORMAL_CLOSURE), "")).await?;
    ws.close().await
}
