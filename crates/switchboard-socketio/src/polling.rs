//! HTTP long polling: a GET held until packets are queued (the server's
//! pings guarantee one within the ping interval), a POST carrying the
//! client's packets. One GET and one POST at a time: a second concurrent one
//! closes the connection, as engine.io does.

use std::sync::Arc;

use http::{Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use switchboard_transports::response::{self, Body};

use crate::connection::{CloseReason, Connection, Mode};
use crate::endpoint::{EngineError, Inner, TEXT_PLAIN};
use crate::protocol::engine;
use crate::upstream;

/// A 200 answer with an engine.io text payload.
pub fn text(body: impl Into<bytes::Bytes>) -> Response<Body> {
    response::complete(StatusCode::OK, TEXT_PLAIN, body)
}

struct Held<'a>(&'a Connection, fn(&Connection));

impl Drop for Held<'_> {
    fn drop(&mut self) {
        (self.1)(self.0);
    }
}

/// Answers a long-poll GET.
pub async fn poll(conn: &Arc<Connection>) -> Response<Body> {
    if conn.heartbeat_lapsed() || conn.closed().is_some() {
        return EngineError::UnknownSid.response();
    }
    if conn.mode() == Mode::WebSocket {
        return EngineError::BadRequest.response();
    }
    if !conn.begin_poll() {
        conn.close(CloseReason::TransportError);
        return EngineError::BadRequest.response();
    }
    let _held = Held(conn, Connection::end_poll);
    loop {
        let woken = conn.woken();
        tokio::pin!(woken);
        woken.as_mut().enable();
        if let Some(reason) = conn.closed() {
            // What was queued before the close goes first, as engine.io
            // drains its buffer before closing.
            let mut packets = conn.take_queue();
            let answer = engine::Outgoing::Text(bytes::Bytes::from_static(reason.poll_answer()));
            packets.push(answer);
            return text(engine::encode_payload(&packets));
        }
        if conn.mode() == Mode::WebSocket {
            // Upgraded, before this poll or while it was held: everything
            // goes over the WebSocket now. (A client that upgrades waits
            // for its held poll's `noop` before it sends `upgrade`.)
            return EngineError::BadRequest.response();
        }
        let packets = conn.take_queue();
        if !packets.is_empty() {
            return text(engine::encode_payload(&packets));
        }
        if conn.mode() == Mode::Upgrading {
            // End this poll so the client can finish the upgrade.
            return text(&b"6"[..]);
        }
        woken.await;
    }
}

/// Answers a POST of packets.
pub async fn post(inner: &Arc<Inner>, conn: &Arc<Connection>, body: Incoming) -> Response<Body> {
    if conn.heartbeat_lapsed() || conn.closed().is_some() {
        return EngineError::UnknownSid.response();
    }
    if conn.mode() == Mode::WebSocket {
        return EngineError::BadRequest.response();
    }
    if !conn.begin_post() {
        conn.close(CloseReason::TransportError);
        return EngineError::BadRequest.response();
    }
    let _running = Held(conn, Connection::end_post);
    let max = inner.config.max_payload;
    let bytes = match Limited::new(body, max).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            conn.close(CloseReason::TransportError);
            let message = format!("payload over maxPayload ({max} bytes); the connection is closed");
            let body = serde_json::json!({ "code": EngineError::BadRequest.code(), "message": message });
            return response::complete(StatusCode::PAYLOAD_TOO_LARGE, "application/json", body.to_string());
        }
        Err(_) => return EngineError::BadRequest.response(),
    };
    let packets = match engine::decode_payload(&bytes) {
        Ok(packets) => packets,
        Err(e) => {
            tracing::debug!(sid = %conn.sid(), error = %e, "bad polling payload");
            conn.close(CloseReason::TransportError);
            return EngineError::BadRequest.response();
        }
    };
    for packet in packets {
        if let Err(e) = upstream::handle(inner, conn, packet) {
            tracing::debug!(sid = %conn.sid(), error = %e, "bad socket.io packet");
            conn.close(CloseReason::TransportError);
            return EngineError::BadRequest.response();
        }
    }
    response::complete(StatusCode::OK, TEXT_PLAIN, "ok")
}
