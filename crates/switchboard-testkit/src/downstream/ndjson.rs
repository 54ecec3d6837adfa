//! `GET /v1/stream`: newline-delimited JSON, one frame per line.

use std::net::SocketAddr;

use futures_util::future::BoxFuture;

use super::lines::{open, LineReader};
use super::{Attach, Downstream, Transport};
use crate::frame::Frame;
use crate::http::HttpResponse;

/// One `/v1/stream` attachment.
pub struct StreamDownstream {
    reader: LineReader,
}

impl StreamDownstream {
    /// Opens the stream.
    pub async fn connect(addr: SocketAddr, attach: &Attach) -> anyhow::Result<Self> {
        let response = open(addr, "/v1/stream", Transport::Stream, attach).await?;
        Ok(Self { reader: LineReader::new(response) })
    }

    /// The response head.
    pub fn response(&self) -> &HttpResponse {
        self.reader.response()
    }

    /// Every body byte received so far.
    pub fn raw(&self) -> &[u8] {
        self.reader.raw()
    }

    /// The next frame.
    pub async fn next(&mut self) -> anyhow::Result<Frame> {
        loop {
            let line = self.reader.next_line().await?;
            if !line.is_empty() {
                return Frame::parse(&line);
            }
        }
    }
}

impl Downstream for StreamDownstream {
    fn transport(&self) -> Transport {
        Transport::Stream
    }

    fn next_frame(&mut self) -> BoxFuture<'_, anyhow::Result<Frame>> {
        Box::pin(self.next())
    }
}
