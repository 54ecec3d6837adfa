//! Bounds of one session, set by the server's configuration.

use std::time::Duration;

/// How much one session may hold and how long it outlives its transports.
#[derive(Debug, Clone)]
pub struct SessionLimits {
    /// How long a session with no downstream attached is kept before it ends.
    pub grace: Duration,
    /// Most frames the outbox holds before it drops the oldest.
    pub outbox_max_frames: usize,
    /// Most bytes (frame bodies) the outbox holds before it drops the oldest.
    pub outbox_max_bytes: usize,
    /// How many applied `cid`s a session remembers to de-duplicate retries.
    pub cid_window: usize,
    /// Interval of heartbeats announced in the `welcome` frame.
    pub heartbeat: Duration,
}

impl Default for SessionLimits {
    fn default() -> Self {
        Self {
            grace: Duration::from_secs(30),
            outbox_max_frames: 1024,
            outbox_max_bytes: 1024 * 1024,
            cid_window: 1024,
            heartbeat: Duration::from_secs(25),
        }
    }
}
