//! Long polling, short polling and JSONP: one response per request.
//!
//! The long-poll waiter attaches to the session (superseding any poll still
//! held, which then answers `[close 4000]` at once), and answers as soon as
//! at least one frame is queued, with every queued frame, or with `[]` when
//! the hold time passes. Frames stay in the outbox until the next request's
//! `last` acknowledges them, so a response lost on the way is sent again.

use std::time::Duration;

use http::{Response, StatusCode};
use switchboard_core::frame::Downstream;
use switchboard_core::Core;

use crate::query::Params;
use crate::response::{self, Body};

/// How the frames of a poll answer are wrapped.
#[derive(Debug, Clone, Copy)]
pub enum PollFormat<'a> {
    /// A JSON array.
    Json,
    /// `/**/callback([...]);` for script-tag loading.
    Jsonp(&'a str),
}

/// Answers one poll request.
pub async fn respond(
    core: &Core,
    params: &Params,
    format: PollFormat<'_>,
    hold: Duration,
    max: usize,
) -> Response<Body> {
    let _gauge = crate::response::ConnectionGauge::open(match (format, params.wait) {
        (PollFormat::Jsonp(_), _) => "jsonp",
        (PollFormat::Json, Some(wait)) if wait.is_zero() => "shortpoll",
        (PollFormat::Json, _) => "longpoll",
    });
    // Boxed: attaching is done before the hold, which is what a waiting
    // poll keeps.
    let frames = match Box::pin(core.attach(params.sid.as_deref(), params.last, &params.credentials)).await {
        Err(e) => vec![e.close_frame()],
        Ok(attached) if attached.created => vec![attached.welcome],
        Ok(mut attached) => {
            let hold = params.wait.map_or(hold, |w| w.min(hold));
            let attachment = &mut attached.attachment;
            let result = if hold.is_zero() {
                attachment.try_batch(max)
            } else {
                tokio::time::timeout(hold, attachment.next_batch(max)).await.ok()
            };
            match result {
                None => Vec::new(),
                Some(Ok(frames)) => frames,
                Some(Err(reason)) => vec![reason.close_frame()],
            }
        }
    };
    encode(&frames, format)
}

fn encode(frames: &[Downstream], format: PollFormat<'_>) -> Response<Body> {
    let mut out = Vec::with_capacity(64 * frames.len() + 32);
    let content_type = match format {
        PollFormat::Json => "application/json",
        PollFormat::Jsonp(callback) => {
            out.extend_from_slice(b"/**/");
            out.extend_from_slice(callback.as_bytes());
            out.push(b'(');
            "application/javascript; charset=utf-8"
        }
    };
    out.push(b'[');
    for (i, frame) in frames.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        frame.write_json(&mut out);
    }
    out.push(b']');
    if let PollFormat::Jsonp(_) = format {
        out.extend_from_slice(b");");
    }
    response::complete(StatusCode::OK, content_type, out)
}
