//! `GET /v1/poll` and `GET /v1/jsonp`: one request per batch of frames.
//!
//! A [`PollDownstream`] behaves like a streaming attachment: it hands frames
//! out one at a time and issues the next request when its batch is used up,
//! carrying the `last` of the frames handed out so far (which is also how a
//! poll client acknowledges). A `close` frame ends it.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde_json::Value;

use super::{Attach, Downstream, Ended, Refused, Transport};
use crate::frame::Frame;
use crate::http::HttpRequest;

/// How long a short-poll client waits after an empty answer.
pub const SHORT_POLL_INTERVAL: Duration = Duration::from_millis(10);

/// Which poll flavour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PollKind {
    /// `/v1/poll`, held by the server (`wait` from the [`Attach`]).
    Long,
    /// `/v1/poll?wait=0`, answered at once; the client sleeps between polls.
    Short,
    /// `/v1/jsonp?callback=NAME`, held like a long poll.
    Jsonp,
}

impl PollKind {
    fn transport(self) -> Transport {
        match self {
            PollKind::Long => Transport::LongPoll,
            PollKind::Short => Transport::ShortPoll,
            PollKind::Jsonp => Transport::Jsonp,
        }
    }
}

/// A sequence of poll requests for one session.
pub struct PollDownstream {
    addr: SocketAddr,
    kind: PollKind,
    attach: Attach,
    queue: VecDeque<Frame>,
    closed: bool,
    requests: usize,
}

impl PollDownstream {
    /// A poll client; no request is sent before the first frame is asked for.
    pub fn new(addr: SocketAddr, kind: PollKind, attach: &Attach) -> Self {
        Self { addr, kind, attach: attach.clone(), queue: VecDeque::new(), closed: false, requests: 0 }
    }

    /// The session id, once known.
    pub fn sid(&self) -> Option<&str> {
        self.attach.sid.as_deref()
    }

    /// The `last` the next request will carry.
    pub fn last(&self) -> u64 {
        self.attach.last
    }

    /// How many requests were sent.
    pub fn requests(&self) -> usize {
        self.requests
    }

    /// Sends one request with the current `sid` and `last` and returns its
    /// frames, without queueing them. A non-200 answer is [`Refused`].
    pub async fn poll_once(&mut self) -> anyhow::Result<Vec<Frame>> {
        let transport = self.kind.transport();
        let path = match self.kind {
            PollKind::Long | PollKind::Short => "/v1/poll",
            PollKind::Jsonp => "/v1/jsonp",
        };
        let mut request = HttpRequest::get(format!("{path}{}", self.attach.query(transport)));
        if let Some(origin) = &self.attach.origin {
            request = request.origin(origin);
        }
        self.requests += 1;
        let response = request.send(self.addr).await?;
        let status = response.status.as_u16();
        let body = response.text().await?;
        if status != 200 {
            return Err(Refused { status, body }.into());
        }
        let array = match self.kind {
            PollKind::Long | PollKind::Short => body.as_str(),
            PollKind::Jsonp => unwrap_jsonp(&body, &self.attach.callback)?,
        };
        let frames: Vec<Value> = serde_json::from_str(array)
            .map_err(|e| anyhow::anyhow!("poll body is not a JSON array of frames ({e}): {body:?}"))?;
        frames.into_iter().map(Frame::from_value).collect()
    }

    /// The next frame, polling as often as needed.
    pub async fn next(&mut self) -> anyhow::Result<Frame> {
        loop {
            if let Some(frame) = self.queue.pop_front() {
                if let Some(seq) = frame.seq() {
                    self.attach.last = self.attach.last.max(seq);
                }
                if frame.typ() == "welcome" {
                    if let Some(sid) = frame.str("sid") {
                        self.attach.sid = Some(sid.to_owned());
                    }
                }
                if frame.typ() == "close" {
                    self.closed = true;
                }
                return Ok(frame);
            }
            if self.closed {
                return Err(Ended { ws_close: None }.into());
            }
            let frames = self.poll_once().await?;
            if frames.is_empty() && self.kind == PollKind::Short {
                tokio::time::sleep(SHORT_POLL_INTERVAL).await;
            }
            self.queue.extend(frames);
        }
    }
}

/// The JSON array inside `/**/NAME(...);`.
pub fn unwrap_jsonp<'a>(body: &'a str, callback: &str) -> anyhow::Result<&'a str> {
    let prefix = format!("/**/{callback}(");
    body.trim_end()
        .strip_prefix(&prefix)
        .and_then(|rest| rest.strip_suffix(");"))
        .ok_or_else(|| anyhow::anyhow!("JSONP body is not `{prefix}...);`: {body:?}"))
}

impl Downstream for PollDownstream {
    fn transport(&self) -> Transport {
        self.kind.transport()
    }

    fn next_frame(&mut self) -> BoxFuture<'_, anyhow::Result<Frame>> {
        Box::pin(self.next())
    }
}
