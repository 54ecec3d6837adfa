//! The shared plumbing of the streaming HTTP transports: open the response
//! (refusals become [`Refused`]) and read it line by line as it arrives.

use std::net::SocketAddr;

use bytes::BytesMut;

use super::{Attach, Ended, Refused, Transport};
use crate::http::{HttpRequest, HttpResponse};

/// Sends `GET path{query}` with the attachment's headers; a non-200 answer
/// becomes [`Refused`].
pub(super) async fn open(
    addr: SocketAddr,
    path: &str,
    transport: Transport,
    attach: &Attach,
) -> anyhow::Result<HttpResponse> {
    let mut request = HttpRequest::get(format!("{path}{}", attach.query(transport)));
    if let Some(origin) = &attach.origin {
        request = request.origin(origin);
    }
    if let Some(id) = attach.last_event_id {
        request = request.last_event_id(id);
    }
    let response = request.send(addr).await?;
    if response.status != http::StatusCode::OK {
        let status = response.status.as_u16();
        let body = response.text().await.unwrap_or_default();
        return Err(Refused { status, body }.into());
    }
    Ok(response)
}

/// Reads a response body as lines, keeping every byte for inspection.
pub(super) struct LineReader {
    response: HttpResponse,
    buf: BytesMut,
    raw: Vec<u8>,
}

impl LineReader {
    pub(super) fn new(response: HttpResponse) -> Self {
        Self { response, buf: BytesMut::new(), raw: Vec::new() }
    }

    /// The response head.
    pub(super) fn response(&self) -> &HttpResponse {
        &self.response
    }

    /// Every body byte received so far.
    pub(super) fn raw(&self) -> &[u8] {
        &self.raw
    }

    /// Reads more body into the buffer; [`Ended`] at the end of the body.
    pub(super) async fn fill(&mut self) -> anyhow::Result<()> {
        match self.response.chunk().await? {
            Some(chunk) => {
                self.raw.extend_from_slice(&chunk);
                self.buf.extend_from_slice(&chunk);
                Ok(())
            }
            None => Err(Ended { ws_close: None }.into()),
        }
    }

    /// The unparsed part of the body.
    pub(super) fn buffer(&mut self) -> &mut BytesMut {
        &mut self.buf
    }

    /// The next line without its `\n` (or `\r\n`).
    pub(super) async fn next_line(&mut self) -> anyhow::Result<String> {
        loop {
            if let Some(end) = self.buf.iter().position(|&b| b == b'\n') {
                let mut line = self.buf.split_to(end + 1);
                line.truncate(end);
                if line.last() == Some(&b'\r') {
                    line.truncate(end - 1);
                }
                return Ok(String::from_utf8(line.to_vec())?);
            }
            self.fill().await?;
        }
    }
}
