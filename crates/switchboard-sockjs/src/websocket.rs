//! The WebSocket transports: `/{server}/{session}/websocket` with SockJS
//! framing, and `{prefix}/websocket`, raw (each WebSocket message is one
//! message, no `o`, `h`, `a` or `c` frames).
//!
//! A WebSocket session lives as long as its connection: it is not in the
//! service's session table (the protocol lets two WebSockets share one
//! session name) and its core session ends when the connection closes.
//! One task per connection selects between the core session's next
//! messages, the client's next message and the heartbeat timer.

use std::pin::pin;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{header, HeaderMap, HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use switchboard_core::frame::Downstream;
use switchboard_core::session::Attachment;
use switchboard_transports::response::Body;
use switchboard_transports::ws::accept_value;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_websockets::{CloseCode, Limits, Message, WebSocketStream};
use tracing::Instrument;

use crate::decode::ws_messages;
use crate::frame;
use crate::responses::{response, text};
use crate::router::Shared;
use crate::session::{ack, end_core_session, end_frame, SockJsSession};

/// Which WebSocket endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flavor {
    /// SockJS framing.
    Framed,
    /// No framing.
    Raw,
}

/// Answers an upgrade request and starts the connection's task.
pub(crate) fn upgrade(
    shared: Arc<Shared>,
    service: usize,
    flavor: Flavor,
    request: Request<Incoming>,
) -> Response<Body> {
    let accept = match check_upgrade(request.headers()) {
        Ok(accept) => accept,
        Err(message) => return text(StatusCode::BAD_REQUEST, message),
    };
    tokio::spawn(async move {
        match hyper::upgrade::on(request).await {
            Ok(upgraded) => {
                let limits = Limits::default().max_payload_len(Some(shared.upstream.max_body_bytes));
                let ws = tokio_websockets::ServerBuilder::new().limits(limits).serve(TokioIo::new(upgraded));
                let span =
                    tracing::debug_span!("sockjs", prefix = %shared.services[service].prefix, transport = ?flavor);
                run(&shared, service, flavor, ws).instrument(span).await;
            }
            Err(e) => tracing::debug!(error = %e, "sockjs websocket upgrade failed"),
        }
    });
    let mut response = response(StatusCode::SWITCHING_PROTOCOLS, None, Bytes::new());
    let headers = response.headers_mut();
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    response
}

/// The `Sec-WebSocket-Accept` value, or why the request is no upgrade.
/// RFC 6455 and its drafts hybi-07/08 (versions 7, 8, 13) share framing.
fn check_upgrade(headers: &HeaderMap) -> Result<HeaderValue, &'static str> {
    let has_token = |name: header::HeaderName, token: &str| {
        headers
            .get_all(name)
            .iter()
            .any(|v| v.to_str().map(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token))).unwrap_or(false))
    };
    if !has_token(header::UPGRADE, "websocket") {
        return Err("Can \"Upgrade\" only to \"WebSocket\".");
    }
    if !has_token(header::CONNECTION, "upgrade") {
        return Err("\"Connection\" must be \"Upgrade\".");
    }
    let version = headers.get(header::SEC_WEBSOCKET_VERSION).map(HeaderValue::as_bytes);
    if !matches!(version, Some(b"7" | b"8" | b"13")) {
        return Err("Only supported WebSocket protocol is RFC 6455.");
    }
    headers.get(header::SEC_WEBSOCKET_KEY).and_then(accept_value).ok_or("Not a valid websocket request")
}

async fn run<S>(shared: &Shared, service_index: usize, flavor: Flavor, mut ws: WebSocketStream<S>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let service = &shared.services[service_index];
    if shared.core.check_capacity().is_err() {
        let message = match flavor {
            Flavor::Framed => {
                let _ = send(&mut ws, Bytes::from_static(frame::OPEN)).await;
                let _ = send(&mut ws, frame::close_of(frame::SERVER_FULL)).await;
                Message::close(Some(CloseCode::NORMAL_CLOSURE), "Normal closure")
            }
            Flavor::Raw => Message::close(CloseCode::try_from(frame::SERVER_FULL.0).ok(), frame::SERVER_FULL.1),
        };
        let _ = ws.send(message).await;
        let _ = ws.close().await;
        return;
    }
    let core_session = service.create_session(&shared.core);
    let id = core_session.id();
    let session = SockJsSession::new(core_session);
    let Ok(mut attachment) = session.core().attach(0) else {
        end_core_session(&shared.core, id);
        return;
    };
    tracing::debug!(sid = ?id, "sockjs websocket session opened");
    session.mark_open();
    let opened = match flavor {
        Flavor::Framed => send(&mut ws, Bytes::from_static(frame::OPEN)).await.is_ok(),
        Flavor::Raw => true,
    };
    if opened {
        service.on_open(&session);
        let connection = Connection { shared, service_index, flavor, session: &session };
        connection.serve(&mut attachment, &mut ws).await;
    }
    drop(attachment);
    end_core_session(&shared.core, id);
    tracing::debug!(sid = ?id, "sockjs websocket session closed");
}

struct Connection<'a> {
    shared: &'a Shared,
    service_index: usize,
    flavor: Flavor,
    session: &'a Arc<SockJsSession>,
}

impl Connection<'_> {
    async fn serve<S>(&self, attachment: &mut Attachment, ws: &mut WebSocketStream<S>)
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let max = self.shared.receive.max_messages;
        loop {
            let mut closing = pin!(self.session.closing_notified());
            closing.as_mut().enable();
            if let Some(close) = self.session.close_frame() {
                if let Some(Ok(frames)) = attachment.try_batch(max) {
                    let _ = self.deliver(ws, &frames).await;
                }
                let _ = self.close(ws, close).await;
                return;
            }
            tokio::select! {
                batch = attachment.next_batch(max) => match batch {
                    Ok(frames) => {
                        if self.deliver(ws, &frames).await.is_err() {
                            return;
                        }
                    }
                    Err(reason) => self.session.close(end_frame(reason)),
                },
                () = &mut closing => {}
                message = ws.next() => match message {
                    Some(Ok(message)) if message.is_close() => return,
                    Some(Ok(message)) => {
                        if let Some(text) = message.as_text() {
                            if !self.upstream(ws, text).await {
                                return;
                            }
                        }
                    }
                    Some(Err(e)) => {
                        tracing::debug!(error = %e, "sockjs websocket read failed");
                        // tokio-websockets queued the right close frame.
                        let _ = ws.flush().await;
                        return;
                    }
                    None => return,
                },
                () = tokio::time::sleep(self.shared.receive.heartbeat) => {
                    let beat = match self.flavor {
                        Flavor::Framed => send(ws, Bytes::from_static(frame::HEARTBEAT)).await,
                        Flavor::Raw => ws.send(Message::ping(Bytes::new())).await,
                    };
                    if beat.is_err() {
                        return;
                    }
                }
            }
        }
    }

    /// Applies one client message; false when the connection must end.
    async fn upstream<S>(&self, ws: &mut WebSocketStream<S>, text: &str) -> bool
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let messages = match self.flavor {
            Flavor::Raw => vec![text.to_owned()],
            Flavor::Framed => match ws_messages(text) {
                Ok(messages) => messages,
                Err(_) => {
                    // Broken framing: the protocol ends the connection.
                    let close = Message::close(CloseCode::try_from(3000).ok(), "Broken framing.");
                    let _ = ws.send(close).await;
                    let _ = ws.close().await;
                    return false;
                }
            },
        };
        let service = &self.shared.services[self.service_index];
        for message in messages {
            if self.session.is_open() {
                service.on_message(&self.shared.core, &self.shared.upstream, self.session.core(), &message).await;
            }
        }
        true
    }

    /// Writes queued messages and acknowledges them.
    async fn deliver<S>(
        &self,
        ws: &mut WebSocketStream<S>,
        frames: &[Downstream],
    ) -> Result<(), tokio_websockets::Error>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        match self.flavor {
            Flavor::Framed => {
                if let Some(messages) = frame::messages(frames) {
                    send(ws, messages).await?;
                }
            }
            Flavor::Raw => {
                for frame in frames {
                    let text = Bytes::from(frame::message_text(frame).into_owned());
                    ws.feed(Message::text(text)).await?;
                }
                ws.flush().await?;
            }
        }
        ack(self.session.core(), frames);
        Ok(())
    }

    /// Sends the close frame (framed) and closes the WebSocket.
    async fn close<S>(&self, ws: &mut WebSocketStream<S>, close: Bytes) -> Result<(), tokio_websockets::Error>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let message = match self.flavor {
            Flavor::Framed => {
                send(ws, close).await?;
                Message::close(Some(CloseCode::NORMAL_CLOSURE), "Normal closure")
            }
            Flavor::Raw => {
                let (code, reason) = close_parts(&close);
                Message::close(CloseCode::try_from(code).ok(), &reason)
            }
        };
        ws.send(message).await?;
        ws.close().await
    }
}

/// The code and reason of a `c[code,"reason"]` frame.
fn close_parts(close: &[u8]) -> (u16, String) {
    let parsed = close.strip_prefix(b"c").and_then(|json| serde_json::from_slice::<(u16, String)>(json).ok());
    parsed.unwrap_or((1000, "Normal closure".into()))
}

async fn send<S>(ws: &mut WebSocketStream<S>, frame: Bytes) -> Result<(), tokio_websockets::Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    ws.send(Message::text(frame)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn upgrade_checks_say_what_is_wrong() {
        assert_eq!(check_upgrade(&headers(&[])), Err("Can \"Upgrade\" only to \"WebSocket\"."));
        let no_connection = headers(&[("upgrade", "WebSocket"), ("connection", "close")]);
        assert_eq!(check_upgrade(&no_connection), Err("\"Connection\" must be \"Upgrade\"."));
        for version in ["7", "8", "13"] {
            let ok = headers(&[
                ("upgrade", "websocket"),
                ("connection", "keep-alive, Upgrade"),
                ("sec-websocket-version", version),
                ("sec-websocket-key", "x3JJHMbDL1EzLkh9GBhXDw=="),
            ]);
            assert_eq!(check_upgrade(&ok).unwrap(), "HSmrc0sMlYUkAGmm5OPpG2HaGWk=");
        }
    }

    #[test]
    fn close_frames_split_into_code_and_reason() {
        assert_eq!(close_parts(br#"c[3000,"Go away!"]"#), (3000, "Go away!".to_owned()));
        assert_eq!(close_parts(b"garbage").0, 1000);
    }
}
