//! Settings of the transport edge.

use std::time::Duration;

/// How the HTTP and WebSocket edges behave; the server binary fills it from
/// its configuration.
#[derive(Debug, Clone)]
pub struct TransportConfig {
    /// Origins allowed to make cross-origin requests and WebSocket upgrades.
    /// `*` allows any origin (it is still echoed, never sent as `*`).
    pub allowed_origins: Vec<String>,
    /// Longest a long poll is held before it answers `[]`.
    pub poll_timeout: Duration,
    /// Interval of heartbeats on idle streams and WebSockets.
    pub heartbeat: Duration,
    /// Bytes after which a stream or htmlfile response ends itself with
    /// `close` 4001: the page keeps everything such a response brought (the
    /// XHR's `responseText`, the iframe's document) until it ends.
    pub stream_budget: usize,
    /// The same for SSE responses; 0: none. `EventSource` keeps nothing of
    /// what it parsed, so an SSE response may go on for ever; the default is
    /// still the other streams' 256 KiB, the behaviour every client and
    /// benchmark of this server was measured with (`bench/NOTES.md`).
    pub sse_budget: usize,
    /// Largest single frame (WebSocket message or `data` of one frame).
    pub max_frame_bytes: usize,
    /// Largest `POST /v1/send` body.
    pub max_body_bytes: usize,
    /// Most frames in one POST body or WebSocket message.
    pub max_batch: usize,
    /// Most frames written in one chunk or poll response.
    pub max_frames_per_write: usize,
}

impl Default for TransportConfig {
    fn default() -> Self {
        Self {
            allowed_origins: vec!["*".into()],
            poll_timeout: Duration::from_secs(25),
            heartbeat: Duration::from_secs(25),
            stream_budget: 256 * 1024,
            sse_budget: 256 * 1024,
            max_frame_bytes: 64 * 1024,
            max_body_bytes: 1024 * 1024,
            max_batch: 256,
            max_frames_per_write: 256,
        }
    }
}
