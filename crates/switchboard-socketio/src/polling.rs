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
            // goes over the WebSocket now. (socket.io-client waits for its
            // held poll's `noop` before it sends `upgrade`; a client that
            // does not is met below.)
            return EngineError::BadRequest.response();
        }
        let packets = conn.take_queue();
        if !packets.is_empty() {
            return text(engine::encode_payload(&packets));
        }
        if conn.mode() == Mode::Upgrading {
            // End this poll so the client can finish the upgrade; first a
            // moment for an `upgrade` the client already sent on the
            // WebSocket (a client that does not wait for this answer): it
            // is read by another task, and once it is, this poll is
            // refused like any after the upgrade.
            if upgrade_settled(conn).await == Mode::WebSocket {
                return EngineError::BadRequest.response();
            }
            return text(&b"6"[..]);
        }
        woken.await;
    }
}

/// How long a poll held when the probe succeeded waits for an `upgrade`
/// already on its way before it answers `noop`. A client that waits for
/// the `noop` before it sends `upgrade` (socket.io-client) gets it this
/// much later, once per connection.
const UPGRADE_SETTLE: std::time::Duration = std::time::Duration::from_millis(20);

/// The mode once it leaves `Upgrading` or [`UPGRADE_SETTLE`] has passed.
async fn upgrade_settled(conn: &Connection) -> Mode {
    let settled = conn.wait_for(|conn| Some(conn.mode()).filter(|&mode| mode != Mode::Upgrading));
    tokio::time::timeout(UPGRADE_SETTLE, settled).await.unwrap_or(Mode::Upgrading)
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::time::Instant;

    use super::*;
    use crate::testing::setup;

    #[tokio::test]
    async fn a_poll_after_the_pong_deadline_is_refused_before_the_timer_fires() {
        let (_io, conn) = setup().await;
        conn.set_pong_due(Some(Instant::now() + Duration::from_millis(20)));
        tokio::time::sleep(Duration::from_millis(30)).await;
        // The driver's timer is far off (the default ping interval); the
        // deadline alone decides.
        let response = poll(&conn).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(conn.closed(), Some(CloseReason::PingTimeout));
    }

    /// A poll held on `conn`, after it had time to start waiting.
    async fn held_poll(conn: &Arc<Connection>) -> tokio::task::JoinHandle<Response<Body>> {
        let conn = Arc::clone(conn);
        let held = tokio::spawn(async move { poll(&conn).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!held.is_finished(), "nothing queued: the poll is held");
        held
    }

    #[tokio::test]
    async fn a_held_poll_gets_noop_when_the_upgrade_begins() {
        let (_io, conn) = setup().await;
        let held = held_poll(&conn).await;
        assert!(conn.begin_probe());
        conn.set_mode(Mode::Upgrading);
        let noop = held.await.unwrap();
        assert_eq!(noop.status(), StatusCode::OK);
        assert_eq!(noop.into_body().collect().await.unwrap().to_bytes().as_ref(), b"6");
    }

    #[tokio::test]
    async fn a_held_poll_is_refused_when_the_upgrade_completes_at_once() {
        // `2probe` and `5` read together: the connection goes straight to
        // WebSocket, and a poll sent after `5` must not pass for the one
        // the client waited on.
        let (_io, conn) = setup().await;
        let held = held_poll(&conn).await;
        assert!(conn.begin_probe());
        conn.set_mode(Mode::WebSocket);
        assert_eq!(held.await.unwrap().status(), StatusCode::BAD_REQUEST);
        assert_eq!(poll(&conn).await.status(), StatusCode::BAD_REQUEST);
        assert_eq!(conn.closed(), None, "refused, not closed: the WebSocket carries on");
    }
}
