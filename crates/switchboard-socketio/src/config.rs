//! Settings of the socket.io adapter. The server binary nests this struct
//! in its configuration as `[socketio]`; an embedding application fills it
//! itself.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How the socket.io endpoint behaves. See `docs/socketio.md`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SocketIoConfig {
    /// Whether the endpoint is served at all.
    pub enabled: bool,
    /// Path prefix of the endpoint (the client's `path` option), with the
    /// trailing slash.
    pub path: String,
    /// Interval of the server's engine.io pings.
    #[serde(with = "humantime_serde")]
    pub ping_interval: Duration,
    /// How long the server waits for the pong before it closes the
    /// connection.
    #[serde(with = "humantime_serde")]
    pub ping_timeout: Duration,
    /// Largest polling POST body and WebSocket message, in bytes
    /// (`maxPayload` of the handshake).
    pub max_payload: usize,
    /// How long a new connection may take to join a namespace before it is
    /// closed.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Connection state recovery: a `pid` in the CONNECT answer and an
    /// offset as the last argument of each event, so a client that comes
    /// back within the session grace period resumes its socket.
    pub recovery: bool,
    /// Namespaces clients may connect to (`/` always exists); others get
    /// CONNECT_ERROR `Invalid namespace`. Each gets the built-in events
    /// when `builtin_events` is on.
    pub namespaces: Vec<String>,
    /// Install the built-in event handlers on every configured namespace.
    pub builtin_events: bool,
}

impl Default for SocketIoConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            path: "/socket.io/".into(),
            ping_interval: Duration::from_millis(25_000),
            ping_timeout: Duration::from_millis(20_000),
            max_payload: 1_000_000,
            connect_timeout: Duration::from_millis(45_000),
            recovery: true,
            namespaces: vec!["/".into()],
            builtin_events: true,
        }
    }
}
