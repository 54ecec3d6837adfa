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
    /// Chat messages per second per session, and the burst allowed.
    pub rate_messages: (f64, f64),
    /// Typing indicators per second per session, and the burst.
    pub rate_typing: (f64, f64),
    /// Joins per second per session, and the burst.
    pub rate_joins: (f64, f64),
    /// Most live sessions on this node.
    pub max_sessions: usize,
    /// Most rooms one session may be in.
    pub max_rooms: usize,
    /// Rooms with more members than this (on this node) announce no
    /// `presence` join/leave events: in a room of n members they would cost
    /// n deliveries per arrival, n² as the room fills. Presence is still
    /// tracked and answered by `who`.
    pub presence_events_max_members: usize,
    /// While a connection is busy (a frame comes less than a quarter of
    /// this after its previous write) and behind (the frame waited at least
    /// a sixteenth of this for the connection's task), its next write waits
    /// until this long after the previous one, so that the frames arriving
    /// meanwhile share it. Zero: every batch is written when ready.
    pub write_window: Duration,
}

impl Default for SessionLimits {
    fn default() -> Self {
        Self {
            grace: Duration::from_secs(30),
            outbox_max_frames: 1024,
            outbox_max_bytes: 1024 * 1024,
            cid_window: 1024,
            heartbeat: Duration::from_secs(25),
            rate_messages: (50.0, 200.0),
            rate_typing: (2.0, 4.0),
            rate_joins: (10.0, 50.0),
            max_sessions: 100_000,
            max_rooms: 100,
            presence_events_max_members: 1000,
            write_window: Duration::from_millis(20),
        }
    }
}
