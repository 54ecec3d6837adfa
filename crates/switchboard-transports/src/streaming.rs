//! The streaming response shared by SSE, HTTP streaming and htmlfile.
//!
//! Written once: a body that pulls frames from a session [`Attachment`],
//! writes each batch as one chunk in the transport's [`StreamFormat`], sends
//! a heartbeat when idle, and ends itself with `close` 4001 once it has
//! written its byte budget so the browser's memory stays bounded. Dropping
//! the body (the client went away) drops the attachment, which detaches.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream;
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use switchboard_core::codes;
use switchboard_core::frame::{self, Downstream};
use switchboard_core::session::Attachment;
use tracing::Instrument;

use crate::response::Body;

/// How one streaming transport writes frames.
#[derive(Debug, Clone)]
pub enum StreamFormat {
    /// Server-Sent Events: `id:` is the seq.
    EventSource,
    /// Newline-delimited JSON for fetch/XHR readers.
    NdJson,
    /// `<script>` chunks in a hidden iframe, calling `callback`.
    HtmlFile { callback: String },
}

/// Bytes of padding that make browsers render an htmlfile response
/// progressively (they buffer the first kilobyte).
const HTMLFILE_PADDING: usize = 1024;

impl StreamFormat {
    /// What goes first, before any frame.
    pub fn preamble(&self, out: &mut Vec<u8>) {
        match self {
            StreamFormat::EventSource => out.extend_from_slice(b"retry: 2000\n\n"),
            StreamFormat::NdJson => {}
            StreamFormat::HtmlFile { callback } => {
                out.extend_from_slice(
                    b"<!doctype html><html><head><meta charset=\"utf-8\"></head><body><script>var c=parent.",
                );
                out.extend_from_slice(callback.as_bytes());
                out.extend_from_slice(b";</script>");
                out.extend(std::iter::repeat_n(b' ', HTMLFILE_PADDING));
                out.push(b'\n');
            }
        }
    }

    /// Appends one frame.
    pub fn frame(&self, frame: &Downstream, out: &mut Vec<u8>) {
        match self {
            StreamFormat::EventSource => {
                if let Some(seq) = frame.seq() {
                    out.extend_from_slice(b"id: ");
                    out.extend_from_slice(seq.to_string().as_bytes());
                    out.push(b'\n');
                }
                out.extend_from_slice(b"data: ");
                frame.write_json(out);
                out.extend_from_slice(b"\n\n");
            }
            StreamFormat::NdJson => {
                frame.write_json(out);
                out.push(b'\n');
            }
            StreamFormat::HtmlFile { .. } => {
                out.extend_from_slice(b"<script>c(");
                frame.write_json(out);
                out.extend_from_slice(b");</script>\n");
            }
        }
    }

    /// Appends a heartbeat.
    pub fn heartbeat(&self, out: &mut Vec<u8>) {
        match self {
            StreamFormat::EventSource => out.extend_from_slice(b": hb\n\n"),
            _ => self.frame(&frame::ping(), out),
        }
    }
}

/// Settings of one streaming response.
#[derive(Debug, Clone, Copy)]
pub struct StreamLimits {
    /// Idle time before a heartbeat.
    pub heartbeat: Duration,
    /// Bytes after which the response ends itself.
    pub budget: usize,
    /// Most frames per chunk.
    pub max_frames: usize,
}

struct State {
    attachment: Attachment,
    _gauge: crate::response::ConnectionGauge,
    format: StreamFormat,
    limits: StreamLimits,
    first: Option<Bytes>,
    written: usize,
    done: bool,
}

/// A streaming body: preamble and `welcome` first, then frames as they come.
pub fn body(attachment: Attachment, welcome: Downstream, format: StreamFormat, limits: StreamLimits) -> Body {
    let mut first = Vec::with_capacity(HTMLFILE_PADDING + 256);
    format.preamble(&mut first);
    format.frame(&welcome, &mut first);
    let transport = match format {
        StreamFormat::EventSource => "sse",
        StreamFormat::NdJson => "stream",
        StreamFormat::HtmlFile { .. } => "htmlfile",
    };
    let state = State {
        attachment,
        _gauge: crate::response::ConnectionGauge::open(transport),
        format,
        limits,
        written: first.len(),
        first: Some(Bytes::from(first)),
        done: false,
    };
    // Each chunk is made inside the request's `session` span.
    let span = tracing::Span::current();
    let chunks = stream::unfold(state, move |state| next_chunk(state).instrument(span.clone()));
    StreamBody::new(chunks).boxed_unsync()
}

/// The next chunk of a streaming body, and its state for the one after.
async fn next_chunk(mut state: State) -> Option<(Result<Frame<Bytes>, Infallible>, State)> {
    if let Some(first) = state.first.take() {
        return Some((Ok::<_, Infallible>(Frame::data(first)), state));
    }
    if state.done {
        return None;
    }
    let mut out = Vec::new();
    let next = state.attachment.next_batch(state.limits.max_frames);
    match tokio::time::timeout(state.limits.heartbeat, next).await {
        Err(_idle) => state.format.heartbeat(&mut out),
        Ok(Ok(frames)) => {
            for frame in &frames {
                state.format.frame(frame, &mut out);
            }
        }
        Ok(Err(reason)) => {
            state.format.frame(&reason.close_frame(), &mut out);
            state.done = true;
        }
    }
    state.written += out.len();
    if !state.done && state.limits.budget > 0 && state.written >= state.limits.budget {
        let close = frame::close(codes::BUDGET_REACHED, "stream budget reached; resume", true);
        state.format.frame(&close, &mut out);
        state.done = true;
    }
    Some((Ok(Frame::data(Bytes::from(out))), state))
}

/// A body that writes one control frame and ends: the answer to a streaming
/// request that could not attach.
pub fn single(format: &StreamFormat, frame: &Downstream) -> Body {
    let mut out = Vec::new();
    format.preamble(&mut out);
    format.frame(frame, &mut out);
    crate::response::full(out)
}
