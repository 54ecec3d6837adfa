//! Long polling, short polling and JSONP: one response per request.
//!
//! The long-poll waiter attaches to the session (superseding any poll still
//! held, which then answers `[close 4000]` at once), and answers as soon as
//! at least one frame is queued, with every queued frame, or with `[]` when
//! the hold time passes. A busy poller on a loaded node is paced by the
//! session's write window (see `Attachment::next_batch`): what comes less
//! than a quarter window after its previous answer, and has waited, is
//! answered a window after it, with whatever came meanwhile. Frames stay in the outbox until the next request's
//! `last` acknowledges them, so a response lost on the way is sent again.

use std::time::Duration;

use http::{Response, StatusCode};
use switchboard_core::frame::Downstream;
use switchboard_core::Core;
use tracing::Instrument;

use crate::query::Params;
use crate::response::{self, Body};

/// How the frames of a poll answer are wrapped.
#[derive(Debug, Clone)]
pub enum PollFormat {
    /// A JSON array.
    Json,
    /// `/**/callback([...]);` for script-tag loading.
    Jsonp(String),
}

/// Answers one poll request. A poll that has to wait is answered with a
/// [`response::deferred`] placeholder: the wait owns only the attachment,
/// its limits and the format.
pub async fn respond(core: &Core, params: &Params, format: PollFormat, hold: Duration, max: usize) -> Response<Body> {
    let gauge = crate::response::ConnectionGauge::open(match (&format, params.wait) {
        (PollFormat::Jsonp(_), _) => "jsonp",
        (PollFormat::Json, Some(wait)) if wait.is_zero() => "shortpoll",
        (PollFormat::Json, _) => "longpoll",
    });
    let hold = params.wait.map_or(hold, |w| w.min(hold));
    match Box::pin(core.attach(params.sid.as_deref(), params.last, &params.credentials)).await {
        Err(e) => encode(&[e.close_frame()], &format),
        Ok(attached) if attached.created => {
            tracing::Span::current().record("sid", tracing::field::display(attached.attachment.session().id()));
            tracing::debug!("session created");
            encode(&[attached.welcome()], &format)
        }
        Ok(attached) => {
            let mut attachment = attached.attachment;
            if hold.is_zero() {
                return answer(attachment.try_batch(max), &format);
            }
            // Paced: frames held by the write window are answered when it
            // ends, by the wait below.
            if let Some(ready) = attachment.try_answer(max) {
                return answer(Some(ready), &format);
            }
            let held = async move {
                let _gauge = gauge;
                let result = tokio::time::timeout(hold, attachment.next_answer(max)).await.ok();
                answer(result, &format)
            };
            response::deferred(held.instrument(tracing::Span::current()))
        }
    }
}

/// The answer to a poll that waited (or not): the frames, the reason the
/// attachment ended, or `[]` when nothing came.
fn answer(
    result: Option<Result<Vec<Downstream>, switchboard_core::session::EndReason>>,
    format: &PollFormat,
) -> Response<Body> {
    match result {
        None => encode(&[], format),
        Some(Ok(frames)) => encode(&frames, format),
        Some(Err(reason)) => encode(&[reason.close_frame()], format),
    }
}

fn encode(frames: &[Downstream], format: &PollFormat) -> Response<Body> {
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
