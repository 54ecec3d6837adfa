//! `GET /v1/htmlfile?callback=NAME`: a padded HTML preamble, then one
//! `<script>c(FRAME);</script>` chunk per frame.
//!
//! The parser is strict on purpose: after the preamble nothing but those
//! chunks (and whitespace between them) may appear, so a frame that broke
//! out of its `<script>` element is caught here and not only by the
//! script-injection tests.

use std::net::SocketAddr;

use futures_util::future::BoxFuture;

use super::lines::{open, LineReader};
use super::{Attach, Downstream, Transport};
use crate::frame::Frame;
use crate::http::HttpResponse;

const OPEN: &[u8] = b"<script>c(";
const CLOSE: &[u8] = b"</script>";

/// One `/v1/htmlfile` attachment.
pub struct HtmlFileDownstream {
    reader: LineReader,
    preamble: Option<Vec<u8>>,
}

impl HtmlFileDownstream {
    /// Opens the document.
    pub async fn connect(addr: SocketAddr, attach: &Attach) -> anyhow::Result<Self> {
        let response = open(addr, "/v1/htmlfile", Transport::HtmlFile, attach).await?;
        Ok(Self { reader: LineReader::new(response), preamble: None })
    }

    /// The response head.
    pub fn response(&self) -> &HttpResponse {
        self.reader.response()
    }

    /// Everything before the first frame chunk, once that chunk arrived.
    pub fn preamble(&self) -> Option<&[u8]> {
        self.preamble.as_deref()
    }

    /// Every body byte received so far.
    pub fn raw(&self) -> &[u8] {
        self.reader.raw()
    }

    /// The next frame.
    pub async fn next(&mut self) -> anyhow::Result<Frame> {
        if self.preamble.is_none() {
            loop {
                if let Some(at) = find(self.reader.buffer(), OPEN) {
                    self.preamble = Some(self.reader.buffer().split_to(at).to_vec());
                    break;
                }
                self.reader.fill().await?;
            }
        }
        loop {
            let buf = self.reader.buffer();
            let start = buf.iter().position(|b| !b.is_ascii_whitespace());
            if let Some(start) = start {
                let available = &buf[start..];
                let prefix = available.len().min(OPEN.len());
                anyhow::ensure!(
                    available[..prefix] == OPEN[..prefix],
                    "htmlfile: unexpected bytes between frames: {:?}",
                    String::from_utf8_lossy(available)
                );
                if let Some(end) = find(available, CLOSE) {
                    let chunk = buf.split_to(start + end + CLOSE.len());
                    let inner = &chunk[start + OPEN.len()..start + end];
                    let json = inner.strip_suffix(b");").ok_or_else(|| {
                        anyhow::anyhow!("htmlfile chunk does not end with `);`: {:?}", String::from_utf8_lossy(&chunk))
                    })?;
                    return Frame::parse(std::str::from_utf8(json)?);
                }
            } else {
                buf.clear();
            }
            self.reader.fill().await?;
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

impl Downstream for HtmlFileDownstream {
    fn transport(&self) -> Transport {
        Transport::HtmlFile
    }

    fn next_frame(&mut self) -> BoxFuture<'_, anyhow::Result<Frame>> {
        Box::pin(self.next())
    }
}
