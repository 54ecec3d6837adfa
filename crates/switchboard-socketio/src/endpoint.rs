//! The socket.io endpoint: [`SocketIo`] checks the origin and the engine.io
//! query, then hands the request to the handshake, long polling or the
//! WebSocket. It also holds the registry of live engine.io connections and
//! of namespaces.

use std::collections::HashMap;
use std::sync::Arc;

use http::{header, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use parking_lot::RwLock;
use switchboard_core::id::SessionId;
use switchboard_core::publication::Encoder;
use switchboard_core::Core;
use switchboard_transports::cors::{self, OriginCheck};
use switchboard_transports::forward;
use switchboard_transports::response::{self, Body};
use tracing::Instrument;

use crate::body::SocketIoEncoder;
use crate::config::SocketIoConfig;
use crate::connection::{Connection, Mode};
use crate::namespace::Namespace;
use crate::{driver, polling, websocket};

/// The engine.io error codes and messages (HTTP 400, or 403 for code 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineError {
    /// `transport` is missing or not `polling` / `websocket`.
    UnknownTransport,
    /// `sid` names no live connection.
    UnknownSid,
    /// A handshake that is not a GET.
    BadHandshakeMethod,
    /// Anything else the request got wrong.
    BadRequest,
    /// The origin is not allowed.
    Forbidden,
    /// `EIO` is not `4`.
    UnsupportedProtocolVersion,
}

impl EngineError {
    /// The numeric code.
    pub fn code(self) -> u8 {
        match self {
            EngineError::UnknownTransport => 0,
            EngineError::UnknownSid => 1,
            EngineError::BadHandshakeMethod => 2,
            EngineError::BadRequest => 3,
            EngineError::Forbidden => 4,
            EngineError::UnsupportedProtocolVersion => 5,
        }
    }

    /// The message, as engine.io words it.
    pub fn message(self) -> &'static str {
        match self {
            EngineError::UnknownTransport => "Transport unknown",
            EngineError::UnknownSid => "Session ID unknown",
            EngineError::BadHandshakeMethod => "Bad handshake method",
            EngineError::BadRequest => "Bad request",
            EngineError::Forbidden => "Forbidden",
            EngineError::UnsupportedProtocolVersion => "Unsupported protocol version",
        }
    }

    /// The response: `{"code":N,"message":"..."}`.
    pub fn response(self) -> Response<Body> {
        let status = if self == EngineError::Forbidden { StatusCode::FORBIDDEN } else { StatusCode::BAD_REQUEST };
        let body = serde_json::json!({ "code": self.code(), "message": self.message() }).to_string();
        response::complete(status, "application/json", body)
    }
}

/// A namespace name that cannot be registered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a namespace name starts with '/', has no '#' and no control character, and is at most 128 bytes")]
pub struct InvalidNamespace;

/// The socket.io endpoint over a core: cheap to clone, one per server.
#[derive(Debug, Clone)]
pub struct SocketIo {
    pub(crate) inner: Arc<Inner>,
}

/// State shared by the endpoint, the transports and the drivers.
#[derive(Debug)]
pub struct Inner {
    pub(crate) core: Arc<Core>,
    pub(crate) config: SocketIoConfig,
    pub(crate) allowed_origins: Vec<String>,
    pub(crate) encoder: Arc<dyn Encoder>,
    namespaces: RwLock<HashMap<String, Arc<Namespace>>>,
    /// Keyed by the id, not its text: no string kept per connection.
    pub(crate) connections: RwLock<HashMap<SessionId, Arc<Connection>>>,
}

impl Inner {
    pub(crate) fn namespace(&self, name: &str) -> Option<Arc<Namespace>> {
        self.namespaces.read().get(name).cloned()
    }

    /// A new connection, registered here and in the broker's session
    /// directory (so requests for it landing on other nodes are relayed
    /// here), with its driver running.
    pub(crate) async fn open(self: &Arc<Self>, mode: Mode) -> Arc<Connection> {
        let (conn, opened) = self.register(mode).await;
        let span = tracing::debug_span!("socketio", sid = %&conn.sid()[..8]);
        tokio::spawn(driver::run(Arc::clone(self), Arc::clone(&conn), opened).instrument(span));
        conn
    }

    /// A new connection, registered as [`Inner::open`] does, without a
    /// driver task: the caller runs its [`driver::Driver`] (from the
    /// returned opening time).
    pub(crate) async fn register(&self, mode: Mode) -> (Arc<Connection>, tokio::time::Instant) {
        let opened = tokio::time::Instant::now();
        let id = SessionId::random();
        let conn = Connection::new(id, mode);
        self.connections.write().insert(id, Arc::clone(&conn));
        self.core.broker().session_created(id).await;
        (conn, opened)
    }

    /// The live connection whose engine.io id is `sid`.
    pub(crate) fn connection(&self, sid: &str) -> Option<Arc<Connection>> {
        let id = SessionId::parse(sid)?;
        self.connections.read().get(&id).cloned()
    }

    /// Forgets a closed connection.
    pub(crate) fn forget(&self, sid: &str) {
        if let Some(id) = SessionId::parse(sid) {
            self.connections.write().remove(&id);
            self.core.broker().session_ended(id);
        }
    }

    /// The `open` packet's JSON.
    pub(crate) fn handshake(&self, sid: &str, upgrades: bool) -> String {
        // Written by hand to keep the order of the protocol document.
        format!(
            "{{\"sid\":{},\"upgrades\":{},\"pingInterval\":{},\"pingTimeout\":{},\"maxPayload\":{}}}",
            serde_json::Value::from(sid),
            if upgrades { "[\"websocket\"]" } else { "[]" },
            self.config.ping_interval.as_millis(),
            self.config.ping_timeout.as_millis(),
            self.config.max_payload,
        )
    }
}

/// The query parameters engine.io uses.
#[derive(Debug, Default)]
struct Query {
    eio: Option<String>,
    transport: Option<String>,
    sid: Option<String>,
    jsonp: bool,
}

fn parse_query(query: Option<&str>) -> Query {
    let mut q = Query::default();
    for (key, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match &*key {
            "EIO" => q.eio = Some(value.into_owned()),
            "transport" => q.transport = Some(value.into_owned()),
            "sid" if !value.is_empty() => q.sid = Some(value.into_owned()),
            "j" => q.jsonp = true,
            _ => {}
        }
    }
    q
}

impl SocketIo {
    /// An endpoint over `core`; `allowed_origins` is the server's origin
    /// allowlist (`*` allows any).
    pub fn new(core: Arc<Core>, config: SocketIoConfig, allowed_origins: Vec<String>) -> Self {
        let recovery = config.recovery;
        let inner = Arc::new(Inner {
            core: Arc::clone(&core),
            config,
            allowed_origins,
            encoder: Arc::new(SocketIoEncoder),
            namespaces: RwLock::default(),
            connections: RwLock::default(),
        });
        let io = Self { inner };
        // The default namespace always exists, as in socket.io.
        io.inner.namespaces.write().insert("/".into(), Namespace::new("/".into(), core, recovery));
        io
    }

    /// The namespace `name`, created on first use (`/` always exists).
    pub fn of(&self, name: &str) -> Result<Arc<Namespace>, InvalidNamespace> {
        let valid = name.starts_with('/')
            && name.len() <= crate::protocol::packet::MAX_NAMESPACE_BYTES
            && !name.contains(['#', ','])
            && !name.chars().any(char::is_control);
        if !valid {
            return Err(InvalidNamespace);
        }
        let mut namespaces = self.inner.namespaces.write();
        let ns = namespaces.entry(name.to_owned()).or_insert_with(|| {
            Namespace::new(name.to_owned(), Arc::clone(&self.inner.core), self.inner.config.recovery)
        });
        Ok(Arc::clone(ns))
    }

    /// The settings.
    pub fn config(&self) -> &SocketIoConfig {
        &self.inner.config
    }

    /// The core.
    pub fn core(&self) -> &Arc<Core> {
        &self.inner.core
    }

    /// Live engine.io connections.
    pub fn connection_count(&self) -> usize {
        self.inner.connections.read().len()
    }

    /// Whether this endpoint answers `path`.
    pub fn owns(&self, path: &str) -> bool {
        let prefix = &self.inner.config.path;
        self.inner.config.enabled && (path.starts_with(prefix.as_str()) || path == prefix.trim_end_matches('/'))
    }

    /// Answers one request to the endpoint's path.
    pub async fn handle(&self, mut request: Request<Incoming>) -> Response<Body> {
        let origin = match cors::check(&self.inner.allowed_origins, request.headers()) {
            OriginCheck::Refused => return EngineError::Forbidden.response(),
            OriginCheck::Allowed(origin) => Some(origin),
            OriginCheck::Absent => None,
        };
        if request.method() == Method::OPTIONS {
            return match origin {
                Some(origin) => cors::preflight(&origin),
                None => EngineError::BadRequest.response(),
            };
        }
        let home = match self.home_elsewhere(&request).await {
            Ok(home) => home,
            // The connection may well live on another node: not "unknown
            // sid" (that would end it), but "try again".
            Err(_) => {
                let mut response = response::complete(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "text/plain",
                    "the cluster's shared store is unreachable; try again",
                );
                if let Some(origin) = origin {
                    cors::allow(&mut response, &origin);
                }
                return response;
            }
        };
        if let Some(home) = home {
            // The home node answers, CORS headers included.
            match forward::relay(request, home).await {
                Ok(response) => return response,
                // The home node is gone: the connection is unknown here too.
                Err(unsent) => request = unsent,
            }
        }
        let mut response = self.route(request).await;
        if let Some(origin) = origin {
            cors::allow(&mut response, &origin);
        }
        response
    }

    /// The node where the request's engine.io connection lives, when that
    /// is another live node.
    async fn home_elsewhere(
        &self,
        request: &Request<Incoming>,
    ) -> Result<Option<std::net::SocketAddr>, switchboard_core::broker::BrokerError> {
        if forward::is_forwarded(request) {
            return Ok(None);
        }
        let Some(sid) = parse_query(request.uri().query()).sid else { return Ok(None) };
        if self.inner.connection(&sid).is_some() {
            return Ok(None);
        }
        self.inner.core.broker().locate(&sid).await
    }

    async fn route(&self, request: Request<Incoming>) -> Response<Body> {
        let inner = &self.inner;
        let query = parse_query(request.uri().query());
        let websocket = match query.transport.as_deref() {
            Some("polling") => false,
            Some("websocket") => true,
            _ => return EngineError::UnknownTransport.response(),
        };
        if query.eio.as_deref() != Some("4") {
            return EngineError::UnsupportedProtocolVersion.response();
        }
        if query.jsonp {
            // JSONP polling was dropped by the v4 clients; not served.
            return EngineError::BadRequest.response();
        }
        let is_upgrade = request.headers().get(header::UPGRADE).is_some();
        let Some(sid) = query.sid else {
            if request.method() != Method::GET {
                return EngineError::BadHandshakeMethod.response();
            }
            if websocket {
                return if is_upgrade {
                    websocket::upgrade(Arc::clone(inner), request, None)
                } else {
                    EngineError::BadRequest.response()
                };
            }
            if inner.core.is_shutting_down() {
                return response::complete(StatusCode::SERVICE_UNAVAILABLE, "text/plain", "shutting down");
            }
            let conn = inner.open(Mode::Polling).await;
            let mut open = Vec::from(b"0".as_slice());
            open.extend_from_slice(inner.handshake(conn.sid(), true).as_bytes());
            return polling::text(open);
        };
        let Some(conn) = inner.connection(&sid) else {
            return EngineError::UnknownSid.response();
        };
        if websocket {
            return if is_upgrade {
                websocket::upgrade(Arc::clone(inner), request, Some(conn))
            } else {
                EngineError::BadRequest.response()
            };
        }
        match *request.method() {
            Method::GET => polling::poll(&conn).await,
            Method::POST => polling::post(inner, &conn, request.into_body()).await,
            _ => EngineError::BadRequest.response(),
        }
    }
}

/// `Content-Type` of engine.io text payloads.
pub const TEXT_PLAIN: &str = "text/plain; charset=UTF-8";
