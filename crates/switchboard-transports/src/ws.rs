//! The WebSocket transport: both directions on one connection.
//!
//! The upgrade is answered by hand (so the origin check and routing stay in
//! one place) and the upgraded connection is handed to `tokio-websockets`,
//! chosen for its small per-connection cost. One task per connection
//! selects between the session's next frames, the client's next message and
//! the heartbeat timer; frames of one batch are fed and flushed together.

use std::sync::Arc;

use base64::Engine;
use futures_util::{FutureExt, SinkExt, StreamExt};
use http::{header, HeaderMap, HeaderValue, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use switchboard_core::frame::{self, Downstream};
use switchboard_core::session::Attachment;
use switchboard_core::{codes, Core};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_websockets::{CloseCode, Limits, Message, WebSocketStream};
use tracing::Instrument;

use crate::config::TransportConfig;
use crate::query::Params;
use crate::response::{self, Body};

const ACCEPT_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Most client messages applied one after another, while more are already
/// read, before the answers queued meanwhile are written.
const MAX_MESSAGES_PER_WRITE: usize = 64;

/// Answers an upgrade request and starts the connection's task.
pub fn upgrade(
    core: Arc<Core>,
    config: Arc<TransportConfig>,
    params: Params,
    request: http::Request<Incoming>,
) -> Response<Body> {
    let Some(accept) = accept_key(request.headers()) else {
        return response::error(
            StatusCode::BAD_REQUEST,
            codes::BAD_REQUEST,
            "not a WebSocket upgrade: needs Upgrade: websocket, Sec-WebSocket-Key and version 13",
        );
    };
    // Only what the connection needs for its whole life is captured: the
    // request and the parameters (used once, to attach) stay out of the
    // task's state, which every idle connection keeps.
    let on_upgrade = hyper::upgrade::on(request);
    let params = Box::new(params);
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                let limits = Limits::default().max_payload_len(Some(config.max_frame_bytes));
                let ws = tokio_websockets::ServerBuilder::new().limits(limits).serve(TokioIo::new(upgraded));
                serve(core, config, params, ws).await;
            }
            Err(e) => tracing::debug!(error = %e, "websocket upgrade failed"),
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

/// The `Sec-WebSocket-Accept` value, when the request is a valid upgrade
/// (`Upgrade: websocket`, `Connection: upgrade`, version 13, a key). Public
/// so protocol adapters with their own WebSocket endpoints (socket.io,
/// SockJS) answer upgrades the same way.
pub fn accept_key(headers: &HeaderMap) -> Option<HeaderValue> {
    let has_token = |name: header::HeaderName, token: &str| {
        headers
            .get_all(name)
            .iter()
            .any(|v| v.to_str().map(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token))).unwrap_or(false))
    };
    if !has_token(header::UPGRADE, "websocket") || !has_token(header::CONNECTION, "upgrade") {
        return None;
    }
    if headers.get(header::SEC_WEBSOCKET_VERSION)?.as_bytes() != b"13" {
        return None;
    }
    accept_value(headers.get(header::SEC_WEBSOCKET_KEY)?)
}

/// The `Sec-WebSocket-Accept` value answering the client's
/// `Sec-WebSocket-Key` (RFC 6455 §4.2.2). Public so that protocol adapters
/// with their own upgrade rules (SockJS also accepts hybi-07/08 clients)
/// compute it the same way.
pub fn accept_value(key: &HeaderValue) -> Option<HeaderValue> {
    let mut sha = sha1_smol::Sha1::new();
    sha.update(key.as_bytes());
    sha.update(ACCEPT_GUID.as_bytes());
    let encoded = base64::engine::general_purpose::STANDARD.encode(sha.digest().bytes());
    HeaderValue::from_str(&encoded).ok()
}

async fn serve<S>(core: Arc<Core>, config: Arc<TransportConfig>, params: Box<Params>, mut ws: WebSocketStream<S>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    // Attaching and the welcome happen once, in a boxed future that is
    // freed when they are done: the state every idle connection keeps for
    // its whole life holds only what the loop needs (measured: 3,112 bytes
    // per connection before, when everything lived in one future).
    let Some(mut attachment) = Box::pin(attach(&core, params, &mut ws)).await else {
        return;
    };
    let _gauge = crate::response::ConnectionGauge::open("ws");
    let span = tracing::debug_span!("session", sid = ?attachment.session().id(), transport = "ws");
    run(&core, &config, &mut attachment, &mut ws).instrument(span).await;
}

/// Attaches the session and sends the welcome; `None` when the connection
/// is over (refused, with its close frame sent, or gone).
async fn attach<S>(core: &Core, params: Box<Params>, ws: &mut WebSocketStream<S>) -> Option<Attachment>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    match core.attach(params.sid.as_deref(), params.last, &params.credentials).await {
        Ok(attached) => {
            send_frames(ws, &[attached.welcome()]).await.ok()?;
            Some(attached.attachment)
        }
        Err(e) => {
            let _ = close_with(ws, &e.close_frame(), e.code(), &e.to_string()).await;
            None
        }
    }
}

async fn run<S>(core: &Core, config: &TransportConfig, attachment: &mut Attachment, ws: &mut WebSocketStream<S>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    // One timer for the connection's life. A send only notes the time; when
    // the timer fires early (something was sent since), it is re-armed
    // instead of pinging: no timer work per batch in a busy fan-out.
    let heartbeat = tokio::time::sleep(config.heartbeat);
    tokio::pin!(heartbeat);
    let mut last_sent = tokio::time::Instant::now();
    loop {
        tokio::select! {
            batch = attachment.next_batch(config.max_frames_per_write) => match batch {
                Ok(frames) => {
                    if send_frames(ws, &frames).await.is_err() {
                        return;
                    }
                    last_sent = tokio::time::Instant::now();
                }
                Err(reason) => {
                    let _ = close_with(ws, &reason.close_frame(), reason.code(), "attachment ended").await;
                    return;
                }
            },
            message = ws.next() => match message {
                Some(Ok(mut message)) => {
                    // Every message already read is applied before the
                    // answers are written, so a burst of requests is
                    // answered in one write, not one write each.
                    for _ in 0..MAX_MESSAGES_PER_WRITE {
                        if message.is_close() {
                            return;
                        }
                        if let Some(text) = message.as_text() {
                            upstream(core, config, attachment, ws, text.as_bytes()).await;
                        } else if message.is_binary() {
                            let error = frame::attachment_error(codes::BAD_REQUEST, "binary messages are not part of the protocol; send JSON text");
                            if send_frames(ws, &[error]).await.is_err() {
                                return;
                            }
                        }
                        match ws.next().now_or_never() {
                            Some(Some(Ok(next))) => message = next,
                            Some(Some(Err(e))) => return read_failed(ws, e).await,
                            Some(None) => return,
                            None => break,
                        }
                    }
                }
                Some(Err(e)) => return read_failed(ws, e).await,
                None => return,
            },
            () = &mut heartbeat => {
                let due = last_sent + config.heartbeat;
                if due > tokio::time::Instant::now() {
                    heartbeat.as_mut().reset(due);
                    continue;
                }
                if send_frames(ws, &[frame::ping()]).await.is_err() {
                    return;
                }
                last_sent = tokio::time::Instant::now();
                heartbeat.as_mut().reset(last_sent + config.heartbeat);
            }
        }
    }
}

/// Ends a connection whose read failed (a protocol error, an oversized
/// message, a broken socket).
async fn read_failed<S>(ws: &mut WebSocketStream<S>, e: tokio_websockets::Error)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    tracing::debug!(error = %e, "websocket read failed");
    if let tokio_websockets::Error::PayloadTooLong { .. } = e {
        codes::count_error(1009);
    }
    // tokio-websockets has queued the right close frame (1009 for an
    // oversized message); push it out.
    let _ = ws.flush().await;
}

async fn upstream<S>(
    core: &Core,
    config: &TransportConfig,
    attachment: &Attachment,
    ws: &mut WebSocketStream<S>,
    text: &[u8],
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    match frame::parse_batch(text, config.max_batch, config.max_frame_bytes) {
        Ok(frames) => {
            if let Err(frames) = core.apply_now(attachment.session(), frames) {
                // Boxed: waiting for the store is rare next to the idle wait.
                Box::pin(core.apply(attachment.session(), frames)).await;
            }
        }
        Err(e) => {
            codes::count_error(e.code);
            let _ = send_frames(ws, &[frame::attachment_error(e.code, &e.message)]).await;
        }
    }
}

async fn send_frames<S>(ws: &mut WebSocketStream<S>, frames: &[Downstream]) -> Result<(), tokio_websockets::Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    // One allocation for the whole batch; each message is a slice of it.
    let mut buffer = bytes::BytesMut::with_capacity(frames.iter().map(Downstream::json_len_hint).sum());
    for frame in frames {
        frame.write_json(&mut buffer);
        let message = buffer.split().freeze();
        ws.feed(Message::text(message)).await?;
    }
    ws.flush().await
}

async fn close_with<S>(
    ws: &mut WebSocketStream<S>,
    frame: &Downstream,
    code: u16,
    reason: &str,
) -> Result<(), tokio_websockets::Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    send_frames(ws, std::slice::from_ref(frame)).await?;
    let code = CloseCode::try_from(code).unwrap_or(CloseCode::NORMAL_CLOSURE);
    ws.send(Message::close(Some(code), reason)).await?;
    ws.close().await
}
