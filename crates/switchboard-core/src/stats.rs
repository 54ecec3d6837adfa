//! Handles of the metrics counted per message or per batch, looked up in
//! the installed recorder once per process. The `counter!` and
//! `histogram!` macros look their key up in the recorder's registry (and
//! allocate) on every call: about 2.5% of the server's time in an echo at
//! 500,000 messages a second.
//!
//! The handles are taken at their first use, so the recorder must be
//! installed before the first message (the server installs its own before
//! it builds the core); counted before that, they count nowhere.

use std::sync::OnceLock;

use metrics::{Counter, Histogram};

/// The hot metrics (see the module's documentation).
pub(crate) struct Hot {
    /// `switchboard_frames_in_total`: upstream frames applied.
    pub frames_in: Counter,
    /// `switchboard_messages_in_total`: chat messages stored.
    pub messages_in: Counter,
    /// `switchboard_messages_out_total`: publications fanned out.
    pub messages_out: Counter,
    /// `switchboard_delivery_seconds`: from a frame's queueing to its read
    /// by a transport.
    pub delivery: Histogram,
}

/// The process's hot metric handles.
pub(crate) fn hot() -> &'static Hot {
    static HOT: OnceLock<Hot> = OnceLock::new();
    HOT.get_or_init(|| Hot {
        frames_in: metrics::counter!("switchboard_frames_in_total"),
        messages_in: metrics::counter!("switchboard_messages_in_total"),
        messages_out: metrics::counter!("switchboard_messages_out_total"),
        delivery: metrics::histogram!("switchboard_delivery_seconds"),
    })
}
