//! `GET /v1/sse`: `text/event-stream`.
//!
//! Besides parsing events, the client checks the SSE rules of §4: a
//! sequenced frame carries `id: <seq>`, a control frame no `id`.

use std::net::SocketAddr;

use futures_util::future::BoxFuture;

use super::lines::{open, LineReader};
use super::{Attach, Downstream, Transport};
use crate::frame::Frame;
use crate::http::HttpResponse;

/// One `/v1/sse` attachment.
pub struct SseDownstream {
    reader: LineReader,
    retry: Option<u64>,
    heartbeats: usize,
}

impl SseDownstream {
    /// Opens the event stream.
    pub async fn connect(addr: SocketAddr, attach: &Attach) -> anyhow::Result<Self> {
        let response = open(addr, "/v1/sse", Transport::Sse, attach).await?;
        Ok(Self { reader: LineReader::new(response), retry: None, heartbeats: 0 })
    }

    /// The response head.
    pub fn response(&self) -> &HttpResponse {
        self.reader.response()
    }

    /// The last `retry:` value seen.
    pub fn retry(&self) -> Option<u64> {
        self.retry
    }

    /// How many `: hb` comment lines arrived so far.
    pub fn heartbeats(&self) -> usize {
        self.heartbeats
    }

    /// Every body byte received so far.
    pub fn raw(&self) -> &[u8] {
        self.reader.raw()
    }

    /// The next event's frame; comments and `retry:` are consumed on the way.
    pub async fn next(&mut self) -> anyhow::Result<Frame> {
        let mut id: Option<String> = None;
        let mut data: Vec<String> = Vec::new();
        loop {
            let line = self.reader.next_line().await?;
            if line.is_empty() {
                if data.is_empty() {
                    id = None;
                    continue;
                }
                let frame = Frame::parse(&data.join("\n"))?;
                match (frame.seq(), id.as_deref()) {
                    (Some(seq), Some(id)) if id == seq.to_string() => {}
                    (None, None) => {}
                    (seq, id) => anyhow::bail!("SSE event id {id:?} does not match frame seq {seq:?}: {frame}"),
                }
                return Ok(frame);
            }
            if let Some(comment) = line.strip_prefix(':') {
                if comment.trim() == "hb" {
                    self.heartbeats += 1;
                }
                continue;
            }
            let (field, value) = match line.split_once(':') {
                Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
                None => (line.as_str(), ""),
            };
            match field {
                "data" => data.push(value.to_owned()),
                "id" => id = Some(value.to_owned()),
                "retry" => self.retry = value.parse().ok(),
                "event" => anyhow::bail!("unexpected SSE event name {value:?}"),
                _ => anyhow::bail!("unexpected SSE line {line:?}"),
            }
        }
    }
}

impl Downstream for SseDownstream {
    fn transport(&self) -> Transport {
        Transport::Sse
    }

    fn next_frame(&mut self) -> BoxFuture<'_, anyhow::Result<Frame>> {
        Box::pin(self.next())
    }
}
