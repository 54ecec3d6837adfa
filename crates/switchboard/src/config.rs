//! The server's one configuration struct.
//!
//! Layered, later layers winning: built-in defaults, a TOML file
//! (`--config`), `SWITCHBOARD_*` environment variables (e.g.
//! `SWITCHBOARD_GRACE=10s`, `SWITCHBOARD_ALLOWED_ORIGINS='["https://a.example"]'`),
//! then command-line flags. Durations are written like `30s`, `250ms`, `2m`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use switchboard_core::retention::{Retention, RetentionPolicy, RoomRetention};
use switchboard_core::SessionLimits;
use switchboard_transports::TransportConfig;

/// Every setting of a Switchboard node. See `docs/configuration.md`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address and port to listen on.
    pub listen: SocketAddr,
    /// Origins allowed for CORS and WebSocket upgrades; `*` allows any.
    pub allowed_origins: Vec<String>,
    /// How long a session outlives its last transport.
    #[serde(with = "humantime_serde")]
    pub grace: Duration,
    /// Most frames a session's outbox holds.
    pub outbox_max_frames: usize,
    /// Most bytes a session's outbox holds.
    pub outbox_max_bytes: usize,
    /// Longest a long poll is held.
    #[serde(with = "humantime_serde")]
    pub poll_timeout: Duration,
    /// Heartbeat interval on idle streams and WebSockets.
    #[serde(with = "humantime_serde")]
    pub heartbeat: Duration,
    /// Bytes after which stream and htmlfile responses end themselves.
    pub stream_budget: usize,
    /// Bytes after which SSE responses end themselves; 0: never.
    pub sse_budget: usize,
    /// Largest single frame (WebSocket message, or a frame's data).
    pub max_frame_bytes: usize,
    /// Largest `POST /v1/send` body.
    pub max_body_bytes: usize,
    /// Most frames in one POST body or WebSocket message.
    pub max_batch: usize,
    /// Most frames the server writes in one poll response, stream chunk or
    /// WebSocket message; smaller answers suit networks that cut long
    /// responses.
    pub max_frames_per_write: usize,
    /// How long shutdown waits for connections to finish.
    #[serde(with = "humantime_serde")]
    pub shutdown_timeout: Duration,
    /// Longest time a client may take to send its request headers.
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// Largest request head (431 over it).
    pub max_header_bytes: usize,
    /// Most open connections from one IP address (429 over it).
    pub max_connections_per_ip: usize,
    /// Longest a write to a client may make no progress before the
    /// connection is closed (a client that stopped reading); `0s`: never.
    #[serde(with = "humantime_serde")]
    pub write_timeout: Duration,
    /// Most live sessions on this node (new ones get close 4503 over it).
    pub max_sessions: usize,
    /// Most rooms one session may be in (error 4413 over it).
    pub max_rooms_per_session: usize,
    /// Rooms with more members than this announce no presence join/leave
    /// events (`who` still answers).
    pub presence_events_max_members: usize,
    /// A connection receiving frames less than a quarter of this apart,
    /// on a node that is behind (a frame waited a sixteenth of this for its
    /// connection), writes once per window, several frames each; `0s`:
    /// never paced.
    #[serde(with = "humantime_serde")]
    pub write_window: Duration,
    /// Folder served at `/` instead of the built-in demo chat.
    pub static_dir: Option<PathBuf>,
    /// Log filter (`tracing` env-filter syntax), e.g. `info,switchboard=debug`.
    pub log: String,
    /// Where the embedded history database lives.
    pub data_dir: PathBuf,
    /// History store: `sqlite` (a file under `data_dir`) or `memory`.
    pub store: StoreKind,
    /// HS256 secret for client JWTs. Without any key the server runs in
    /// development mode (nicknames, no tokens).
    pub jwt_secret: Option<String>,
    /// PEM file of the RS256 or ES256 public key for client JWTs.
    pub jwt_public_key: Option<PathBuf>,
    /// Algorithm of `jwt_public_key`: `RS256` or `ES256`.
    pub jwt_algorithm: String,
    /// Key of the server HTTP API (`Authorization: Bearer`); without it the
    /// API answers 403.
    pub api_key: Option<String>,
    /// Most messages kept per room.
    pub history_max_messages: usize,
    /// Oldest message kept.
    #[serde(with = "humantime_serde")]
    pub history_max_age: Duration,
    /// How often history retention runs (the first time at start).
    #[serde(with = "humantime_serde")]
    pub retention_interval: Duration,
    /// Per-room retention (`[retention."ROOM"]`, or `[retention."PREFIX*"]`
    /// for every room whose name starts with PREFIX): an exact name beats
    /// a prefix, a longer prefix a shorter one; what an entry leaves out
    /// comes from `history_max_messages` and `history_max_age`.
    pub retention: BTreeMap<String, RoomRetentionConfig>,
    /// Chat messages per second per session (burst: 4×).
    pub rate_messages: f64,
    /// Typing events per second per session (burst: 2×).
    pub rate_typing: f64,
    /// Joins per second per session (burst: 5×).
    pub rate_joins: f64,
    /// The socket.io endpoint (`[socketio]`); see `docs/socketio.md`.
    #[serde(default)]
    pub socketio: switchboard_socketio::SocketIoConfig,
    /// The SockJS endpoints (`[sockjs]`); see `docs/sockjs.md`.
    #[serde(default)]
    pub sockjs: switchboard_sockjs::SockJsConfig,
    /// Cross-node fan-out: `local` (one node) or `redis` (many nodes; the
    /// history store, presence and session directory then live in Redis
    /// too, and `store` is ignored).
    pub broker: BrokerKind,
    /// Redis to use with `broker = "redis"`.
    pub redis_url: String,
    /// Prefix of every Redis key (several clusters can share one Redis).
    pub redis_key_prefix: String,
    /// Address other nodes reach this node at, to forward requests for its
    /// sessions (default: the listen address).
    pub advertise: Option<SocketAddr>,
    /// A node without a heartbeat for this long is dead: its users leave
    /// presence and its sessions are given up.
    #[serde(with = "humantime_serde")]
    pub node_ttl: Duration,
    /// Most entries kept in the cluster-wide events stream (every room's
    /// messages and events, read by every node). A node cut off from Redis
    /// for longer than this many events takes to arrive misses the older
    /// ones (its clients recover from history).
    pub redis_events_max: usize,
}

/// The retention of the rooms one `[retention."PATTERN"]` entry names.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RoomRetentionConfig {
    /// Most messages kept in each of these rooms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_messages: Option<usize>,
    /// Oldest message kept in each of these rooms.
    #[serde(default, with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub max_age: Option<Duration>,
}

/// How publications reach other nodes.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum BrokerKind {
    /// One node, everything in process.
    Local,
    /// Many nodes through Redis.
    Redis,
}

/// Which history store a node uses.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    /// One SQLite file under `data_dir`; survives restarts.
    Sqlite,
    /// In memory; lost on restart.
    Memory,
}

impl Default for Config {
    fn default() -> Self {
        let session = SessionLimits::default();
        let transport = TransportConfig::default();
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 7070)),
            allowed_origins: transport.allowed_origins,
            grace: session.grace,
            outbox_max_frames: session.outbox_max_frames,
            outbox_max_bytes: session.outbox_max_bytes,
            poll_timeout: transport.poll_timeout,
            heartbeat: transport.heartbeat,
            stream_budget: transport.stream_budget,
            sse_budget: transport.sse_budget,
            max_frame_bytes: transport.max_frame_bytes,
            max_body_bytes: transport.max_body_bytes,
            max_batch: transport.max_batch,
            max_frames_per_write: transport.max_frames_per_write,
            shutdown_timeout: Duration::from_secs(5),
            header_read_timeout: Duration::from_secs(10),
            max_header_bytes: 64 * 1024,
            max_connections_per_ip: 10_000,
            write_timeout: Duration::from_secs(30),
            max_sessions: session.max_sessions,
            max_rooms_per_session: session.max_rooms,
            presence_events_max_members: session.presence_events_max_members,
            write_window: session.write_window,
            static_dir: None,
            log: "info".into(),
            data_dir: PathBuf::from("data"),
            store: StoreKind::Sqlite,
            jwt_secret: None,
            jwt_public_key: None,
            jwt_algorithm: "RS256".into(),
            api_key: None,
            history_max_messages: 10_000,
            history_max_age: Duration::from_secs(30 * 24 * 3600),
            retention_interval: switchboard_core::retention::DEFAULT_RETENTION_INTERVAL,
            retention: BTreeMap::new(),
            rate_messages: session.rate_messages.0,
            rate_typing: session.rate_typing.0,
            rate_joins: session.rate_joins.0,
            socketio: switchboard_socketio::SocketIoConfig::default(),
            sockjs: switchboard_sockjs::SockJsConfig::default(),
            broker: BrokerKind::Local,
            redis_url: "redis://127.0.0.1:6379".into(),
            redis_key_prefix: "sb:".into(),
            advertise: None,
            node_ttl: Duration::from_secs(5),
            redis_events_max: 100_000,
        }
    }
}

impl Config {
    /// The session limits for the core.
    pub fn session_limits(&self) -> SessionLimits {
        SessionLimits {
            grace: self.grace,
            outbox_max_frames: self.outbox_max_frames,
            outbox_max_bytes: self.outbox_max_bytes,
            heartbeat: self.heartbeat,
            rate_messages: (self.rate_messages, self.rate_messages * 4.0),
            rate_typing: (self.rate_typing, self.rate_typing * 2.0),
            rate_joins: (self.rate_joins, self.rate_joins * 5.0),
            max_sessions: self.max_sessions,
            max_rooms: self.max_rooms_per_session,
            presence_events_max_members: self.presence_events_max_members,
            write_window: self.write_window,
            ..SessionLimits::default()
        }
    }

    /// How much history each room keeps, and how often that is applied.
    pub fn retention_policy(&self) -> RetentionPolicy {
        RetentionPolicy {
            default: Retention { max_messages: self.history_max_messages, max_age: self.history_max_age },
            rooms: self
                .retention
                .iter()
                .map(|(pattern, r)| RoomRetention {
                    pattern: pattern.clone(),
                    max_messages: r.max_messages,
                    max_age: r.max_age,
                })
                .collect(),
            every: self.retention_interval,
        }
    }

    /// The settings of the transport edge.
    pub fn transport(&self) -> TransportConfig {
        TransportConfig {
            allowed_origins: self.allowed_origins.clone(),
            poll_timeout: self.poll_timeout,
            heartbeat: self.heartbeat,
            stream_budget: self.stream_budget,
            sse_budget: self.sse_budget,
            max_frame_bytes: self.max_frame_bytes,
            max_body_bytes: self.max_body_bytes,
            max_batch: self.max_batch,
            max_frames_per_write: self.max_frames_per_write,
        }
    }

    /// Defaults, then the TOML file (if any), then `SWITCHBOARD_*`
    /// variables, then `overrides` (the command line).
    pub fn load(file: Option<&std::path::Path>, overrides: &impl Serialize) -> Result<Self, Box<figment::Error>> {
        use figment::providers::{Env, Format, Serialized, Toml};
        let mut figment = figment::Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = file {
            figment = figment.merge(Toml::file_exact(file));
        }
        figment
            .merge(Env::prefixed("SWITCHBOARD_").ignore(&["config"]))
            .merge(Serialized::defaults(overrides))
            .extract()
            .map_err(Box::new)
    }
}
