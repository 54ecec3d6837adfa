//! The WebSocket transport: a connection opened directly over WebSocket,
//! or the upgrade of a polling connection (`2probe` → `3probe`, the held
//! poll answered with `noop`, then `5`), after which the WebSocket carries
//! everything. One task per WebSocket writes the connection's queue and
//! reads the client's messages.

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
                let limits = Limits::default().max_payload_len(Some(inner.config.max_payload));
                let ws = tokio_websockets::ServerBuilder::new().limits(limits).serve(TokioIo::new(upgraded));
                match conn {
                    Some(conn) => Box::pin(probe(inner, conn, ws)).await,
                    None => {
                        let conn = Box::pin(inner.open(Mode::WebSocket)).await;
                        conn.send([Outgoing::text(kind::OPEN, &inner.handshake(conn.sid(), false))]);
                        run(&inner, &conn, ws).await;
                    }
                }
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

/// The probe phase of an upgrade; on success the WebSocket takes over.
async fn probe<S>(inner: Arc<Inner>, conn: Arc<Connection>, mut ws: WebSocketStream<S>)
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
        return;
    }
    conn.set_mode(Mode::WebSocket);
    run(&inner, &conn, ws).await;
}

/// Writes the queue and reads the client until the connection closes.
async fn run<S>(inner: &Arc<Inner>, conn: &Arc<Connection>, mut ws: WebSocketStream<S>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    loop {
        let woken = conn.woken();
        tokio::pin!(woken);
        woken.as_mut().enable();
        let packets = conn.take_queue();
        if !packets.is_empty() && write(&mut ws, packets).await.is_err() {
            conn.close(CloseReason::TransportClose);
            return;
        }
        if conn.closed().is_some() {
            let _ = close(&mut ws).await;
            return;
        }
        tokio::select! {
            () = &mut woken => {}
            mut message = ws.next() => {
                // Every message already read is handled before the loop
                // writes again, so a burst is answered in one write.
                for _ in 0..MAX_MESSAGES_PER_WRITE {
                    if !read(inner, conn, &mut ws, message).await {
                        return;
                    }
                    match ws.next().now_or_never() {
                        Some(next) => message = next,
                        None => break,
                    }
                }
            }
        }
    }
}

/// Most client messages handled one after another, while more are already
/// read, before the queue is written.
const MAX_MESSAGES_PER_WRITE: usize = 64;

/// Handles what the WebSocket read; false when the connection is over.
async fn read<S>(
    inner: &Arc<Inner>,
    conn: &Arc<Connection>,
    ws: &mut WebSocketStream<S>,
    message: Option<Result<Message, tokio_websockets::Error>>,
) -> bool
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    match message {
        Some(Ok(message)) if message.is_close() => {
            conn.close(CloseReason::TransportClose);
            let _ = ws.flush().await;
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
            // tokio-websockets queued the right close frame (1009 for a
            // message over maxPayload); push it out.
            let _ = ws.flush().await;
            false
        }
        None => {
            conn.close(CloseReason::TransportClose);
            false
        }
    }
}

async fn write<S>(ws: &mut WebSocketStream<S>, packets: Vec<Outgoing>) -> Result<(), tokio_websockets::Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    for packet in packets {
        let message = match packet {
            Outgoing::Text(text) => Message::text(text),
            Outgoing::Binary(bytes) => Message::binary(bytes),
        };
        ws.feed(message).await?;
    }
    ws.flush().await
}

async fn close<S>(ws: &mut WebSocketStream<S>) -> Result<(), tokio_websockets::Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    ws.send(Message::close(Some(CloseCode::NORMAL_CLOSURE), "")).await?;
    ws.close().await
}
