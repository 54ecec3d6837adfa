//! Downstream clients: one per transport of §4, all behind [`Downstream`].
//!
//! Each client is one *attachment*: it is opened with a `sid` (or none, to
//! create a session) and a `last`, yields every frame the server sends on it
//! (control frames included, in the order they arrived) and reports the end
//! of the attachment as [`Ended`]. The poll transports keep issuing requests
//! behind the same interface, each one carrying the `last` of the frames
//! handed out so far, so a test reads all seven transports the same way.
//!
//! The clients validate the framing of their transport (SSE `id:` equals
//! `seq`, htmlfile chunks are well formed, JSONP wraps the callback) and fail
//! loudly when it is wrong; what the frames mean is the caller's business.

mod htmlfile;
mod lines;
mod ndjson;
mod poll;
mod sse;
mod ws;

use std::fmt;
use std::net::SocketAddr;

use futures_util::future::BoxFuture;

pub use htmlfile::HtmlFileDownstream;
pub use ndjson::StreamDownstream;
pub use poll::{unwrap_jsonp, PollDownstream, PollKind, SHORT_POLL_INTERVAL};
pub use sse::SseDownstream;
pub use ws::WsDownstream;

use crate::frame::Frame;
use crate::http::encode;

/// The callback name the clients use unless told otherwise.
pub const DEFAULT_CALLBACK: &str = "cb";

/// The seven downstream transports of §4.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    /// `GET /v1/ws`.
    WebSocket,
    /// `GET /v1/sse`.
    Sse,
    /// `GET /v1/stream` (NDJSON).
    Stream,
    /// `GET /v1/htmlfile`.
    HtmlFile,
    /// `GET /v1/poll`, held by the server.
    LongPoll,
    /// `GET /v1/jsonp`, held like a long poll.
    Jsonp,
    /// `GET /v1/poll?wait=0`, repeated by the client.
    ShortPoll,
}

impl Transport {
    /// Every transport, streaming ones first.
    pub const ALL: [Transport; 7] = [
        Transport::WebSocket,
        Transport::Sse,
        Transport::Stream,
        Transport::HtmlFile,
        Transport::LongPoll,
        Transport::Jsonp,
        Transport::ShortPoll,
    ];

    /// True for the transports that keep one response open and start every
    /// attachment with `welcome`; they need explicit `ack` frames.
    pub fn is_streaming(self) -> bool {
        matches!(self, Transport::WebSocket | Transport::Sse | Transport::Stream | Transport::HtmlFile)
    }

    /// Opens an attachment with default options.
    pub async fn attach(self, addr: SocketAddr, sid: Option<&str>, last: u64) -> anyhow::Result<Box<dyn Downstream>> {
        self.attach_with(addr, &Attach::new(sid, last)).await
    }

    /// Opens an attachment.
    pub async fn attach_with(self, addr: SocketAddr, attach: &Attach) -> anyhow::Result<Box<dyn Downstream>> {
        Ok(match self {
            Transport::WebSocket => Box::new(WsDownstream::connect(addr, attach).await?),
            Transport::Sse => Box::new(SseDownstream::connect(addr, attach).await?),
            Transport::Stream => Box::new(StreamDownstream::connect(addr, attach).await?),
            Transport::HtmlFile => Box::new(HtmlFileDownstream::connect(addr, attach).await?),
            Transport::LongPoll => Box::new(PollDownstream::new(addr, PollKind::Long, attach)),
            Transport::Jsonp => Box::new(PollDownstream::new(addr, PollKind::Jsonp, attach)),
            Transport::ShortPoll => Box::new(PollDownstream::new(addr, PollKind::Short, attach)),
        })
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// One attachment of a transport to a session.
pub trait Downstream: Send {
    /// Which transport this is.
    fn transport(&self) -> Transport;

    /// The next frame, control frames included. [`Ended`] when the server
    /// ended the attachment; any other error when the connection broke.
    fn next_frame(&mut self) -> BoxFuture<'_, anyhow::Result<Frame>>;
}

/// The next frame that is not a `ping` (heartbeats may come at any time).
pub async fn next_non_ping(downstream: &mut dyn Downstream) -> anyhow::Result<Frame> {
    loop {
        let frame = downstream.next_frame().await?;
        if frame.typ() != "ping" {
            return Ok(frame);
        }
    }
}

/// The next frame that is not a `ping` nor incidental (room events and
/// undocumented frames, see [`Frame::is_incidental`]).
pub async fn next_documented(downstream: &mut dyn Downstream) -> anyhow::Result<Frame> {
    loop {
        let frame = downstream.next_frame().await?;
        if frame.typ() != "ping" && !frame.is_incidental() {
            return Ok(frame);
        }
    }
}

/// What a downstream request says: the query parameters of §4 and the
/// headers a browser would add.
#[derive(Clone, Debug)]
pub struct Attach {
    /// The session to resume; `None` creates one.
    pub sid: Option<String>,
    /// The highest `seq` processed.
    pub last: u64,
    /// An `Origin` header.
    pub origin: Option<String>,
    /// A `Last-Event-ID` header (SSE only).
    pub last_event_id: Option<u64>,
    /// The `callback` parameter of htmlfile and JSONP.
    pub callback: String,
    /// The `wait` parameter of a long poll or JSONP request, in ms.
    pub wait_ms: Option<u64>,
}

impl Attach {
    /// Resume `sid` (or create a session) from `last`.
    pub fn new(sid: Option<&str>, last: u64) -> Self {
        Self {
            sid: sid.map(str::to_owned),
            last,
            origin: None,
            last_event_id: None,
            callback: DEFAULT_CALLBACK.to_owned(),
            wait_ms: None,
        }
    }

    /// The query string (with `?`) for `transport`.
    pub fn query(&self, transport: Transport) -> String {
        let mut params = Vec::new();
        if let Some(sid) = &self.sid {
            params.push(format!("sid={}", encode(sid)));
        }
        params.push(format!("last={}", self.last));
        if matches!(transport, Transport::HtmlFile | Transport::Jsonp) {
            params.push(format!("callback={}", encode(&self.callback)));
        }
        match transport {
            Transport::ShortPoll => params.push("wait=0".to_owned()),
            Transport::LongPoll | Transport::Jsonp => {
                if let Some(wait) = self.wait_ms {
                    params.push(format!("wait={wait}"));
                }
            }
            _ => {}
        }
        format!("?{}", params.join("&"))
    }
}

/// The server ended the attachment: the response body ended, the WebSocket
/// closed, or a poll transport handed out a `close` frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ended {
    /// The WebSocket close code, if the attachment was a WebSocket.
    pub ws_close: Option<u16>,
}

impl fmt::Display for Ended {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.ws_close {
            Some(code) => write!(f, "attachment ended (WebSocket close {code})"),
            None => f.write_str("attachment ended"),
        }
    }
}

impl std::error::Error for Ended {}

/// The server refused to open the attachment with an HTTP error status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// The HTTP status.
    pub status: u16,
    /// The response body (empty for a refused WebSocket upgrade).
    pub body: String,
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "attachment refused with HTTP {}: {}", self.status, self.body)
    }
}

impl std::error::Error for Refused {}
