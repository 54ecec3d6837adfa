//! The server's one configuration struct.
//!
//! Layered, later layers winning: built-in defaults, a TOML file
//! (`--config`), `SWITCHBOARD_*` environment variables (e.g.
//! `SWITCHBOARD_GRACE=10s`, `SWITCHBOARD_ALLOWED_ORIGINS='["https://a.example"]'`),
//! then command-line flags. Durations are written like `30s`, `250ms`, `2m`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
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
    /// Bytes after which SSE, stream and htmlfile responses end themselves.
    pub stream_budget: usize,
    /// Largest single frame (WebSocket message, or a frame's data).
    pub max_frame_bytes: usize,
    /// Largest `POST /v1/send` body.
    pub max_body_bytes: usize,
    /// Most frames in one POST body or WebSocket message.
    pub max_batch: usize,
    /// How long shutdown waits for connections to finish.
    #[serde(with = "humantime_serde")]
    pub shutdown_timeout: Duration,
    /// Folder served at `/` instead of the built-in demo chat.
    pub static_dir: Option<PathBuf>,
    /// Log filter (`tracing` env-filter syntax), e.g. `info,switchboard=debug`.
    pub log: String,
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
            max_frame_bytes: transport.max_frame_bytes,
            max_body_bytes: transport.max_body_bytes,
            max_batch: transport.max_batch,
            shutdown_timeout: Duration::from_secs(5),
            static_dir: None,
            log: "info".into(),
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
            ..SessionLimits::default()
        }
    }

    /// The settings of the transport edge.
    pub fn transport(&self) -> TransportConfig {
        TransportConfig {
            allowed_origins: self.allowed_origins.clone(),
            poll_timeout: self.poll_timeout,
            heartbeat: self.heartbeat,
            stream_budget: self.stream_budget,
            max_frame_bytes: self.max_frame_bytes,
            max_body_bytes: self.max_body_bytes,
            max_batch: self.max_batch,
            ..TransportConfig::default()
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
