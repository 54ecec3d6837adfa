//! The mounted services and what each does with its sessions' messages.
//!
//! - `echo` sends every message back to its sender.
//! - `close` closes every session as soon as it opens (`c[3000,"Go away!"]`).
//! - `rooms` maps SockJS onto core rooms: every message is the JSON text of
//!   a native upstream frame (or an array of them), applied by the core
//!   exactly as if a native client had sent it; answers and room messages
//!   come back as messages holding the native frame's JSON without `seq`.
//!   `docs/sockjs.md` documents the convention.

use std::sync::Arc;

use switchboard_core::frame as native;
use switchboard_core::session::Session;
use switchboard_core::Core;

use crate::config::{ServiceConfig, ServiceKind, SockJsConfig};
use crate::encoder::SockJsEncoder;
use crate::frame::{self, close_of, quoted};
use crate::session::{Sessions, SockJsSession};

/// Bounds on what a client sends, from the transport edge's settings.
#[derive(Debug, Clone, Copy)]
pub(crate) struct UpstreamLimits {
    /// Largest upstream body (`xhr_send`, `jsonp_send`) or WebSocket message.
    pub(crate) max_body_bytes: usize,
    /// Largest `data` of one native frame (rooms service).
    pub(crate) max_frame_bytes: usize,
    /// Most native frames in one message (rooms service).
    pub(crate) max_batch: usize,
}

/// One mounted service.
#[derive(Debug)]
pub(crate) struct Service {
    pub(crate) prefix: String,
    pub(crate) kind: ServiceKind,
    pub(crate) websocket: bool,
    pub(crate) jsessionid: bool,
    pub(crate) sessions: Sessions,
}

impl Service {
    pub(crate) fn new(config: &ServiceConfig, defaults: &SockJsConfig) -> Self {
        Self {
            prefix: config.prefix.clone(),
            kind: config.kind,
            websocket: config.websocket.unwrap_or(defaults.websocket),
            jsessionid: config.jsessionid.unwrap_or(defaults.jsessionid),
            sessions: Sessions::default(),
        }
    }

    /// Whether `path` is under this service's prefix; the rest of it.
    pub(crate) fn rest<'a>(&self, path: &'a str) -> Option<&'a str> {
        let rest = path.strip_prefix(self.prefix.as_str())?;
        (rest.is_empty() || rest.starts_with('/')).then_some(rest)
    }

    /// A new core session for a client of this service.
    pub(crate) fn create_session(&self, core: &Core) -> Arc<Session> {
        core.create_session(Arc::new(SockJsEncoder))
    }

    /// Called once, right after the session's `o` frame is written.
    pub(crate) fn on_open(&self, session: &SockJsSession) {
        match self.kind {
            ServiceKind::Echo => {}
            ServiceKind::Close => session.close(close_of(frame::GO_AWAY)),
            ServiceKind::Rooms => {
                let core = session.core();
                let identity = core.identity();
                let welcome = serde_json::json!({
                    "type": "welcome",
                    "id": core.public_id(),
                    "user": identity.user,
                    "name": identity.name,
                    "version": 1,
                });
                core.push(quoted(&welcome.to_string()));
            }
        }
    }

    /// One message from the client of an open session.
    pub(crate) async fn on_message(&self, core: &Core, limits: &UpstreamLimits, session: &Arc<Session>, text: &str) {
        match self.kind {
            ServiceKind::Echo => {
                session.push(quoted(text));
            }
            ServiceKind::Close => {}
            ServiceKind::Rooms => {
                match native::parse_batch(text.as_bytes(), limits.max_batch, limits.max_frame_bytes) {
                    Ok(frames) => {
                        // SockJS messages carry no seq: an `ack` would drop
                        // the session's own undelivered messages.
                        let frames =
                            frames.into_iter().filter(|f| !matches!(f, Ok(native::Upstream::Ack { .. }))).collect();
                        core.apply(session, frames).await
                    }
                    Err(e) => {
                        session.push(native::error_body(e.cid.as_deref(), e.code, &e.message));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use switchboard_core::publication::Publication;
    use switchboard_core::SessionLimits;

    use super::*;
    use crate::session::Registration;

    fn service(kind: ServiceKind) -> Service {
        let config = ServiceConfig { prefix: "/s".into(), kind, jsessionid: None, websocket: None };
        Service::new(&config, &SockJsConfig::default())
    }

    fn texts(session: &Arc<Session>) -> Vec<String> {
        let Ok(mut attachment) = session.attach(0) else {
            return Vec::new();
        };
        let Some(Ok(frames)) = attachment.try_batch(100) else {
            return Vec::new();
        };
        frames.iter().map(|f| String::from_utf8(frame::message_text(f).into_owned()).unwrap()).collect()
    }

    #[test]
    fn prefixes_match_whole_segments() {
        let s = service(ServiceKind::Echo);
        assert_eq!(s.rest("/s"), Some(""));
        assert_eq!(s.rest("/s/info"), Some("/info"));
        assert_eq!(s.rest("/sx"), None);
        assert_eq!(s.rest("/"), None);
    }

    #[tokio::test]
    async fn rooms_service_applies_native_frames_and_answers_in_sockjs_messages() {
        let core = Core::new(SessionLimits::default());
        let rooms = service(ServiceKind::Rooms);
        let limits = UpstreamLimits { max_body_bytes: 1 << 20, max_frame_bytes: 1 << 16, max_batch: 16 };
        let session = rooms.create_session(&core);
        rooms.on_message(&core, &limits, &session, r#"{"type":"join","room":"lobby","cid":"1"}"#).await;
        rooms.on_message(&core, &limits, &session, "not json").await;
        let raw = serde_json::value::RawValue::from_string(r#""hello""#.into()).unwrap();
        core.publish(Publication::new("lobby", "someone", raw));
        // Presence events aside, the answers and the message in order.
        let got: Vec<String> = texts(&session).into_iter().filter(|t| !t.contains(r#""type":"presence""#)).collect();
        assert_eq!(got.len(), 3, "{got:?}");
        assert!(got[0].starts_with(r#"{"type":"ack","cid":"1""#), "{got:?}");
        assert!(got[1].starts_with(r#"{"type":"error""#), "{got:?}");
        let msg: serde_json::Value = serde_json::from_str(&got[2]).unwrap();
        assert_eq!((msg["type"].as_str(), msg["data"].as_str()), (Some("msg"), Some("hello")));
    }

    #[tokio::test]
    async fn close_service_closes_on_open() {
        let core = Core::new(SessionLimits::default());
        let close = service(ServiceKind::Close);
        let session = close.sessions.get_or_create("x", || close.create_session(&core));
        let Registration::Receiving(receiver) = session.register(&core) else { panic!() };
        close.on_open(&session);
        assert!(!session.is_open());
        receiver.finish();
        assert!(matches!(session.register(&core), Registration::Closing { .. }));
    }
}
