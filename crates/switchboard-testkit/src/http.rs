//! A raw HTTP/1.1 client: one fresh TCP connection per request.
//!
//! Tests need to see exactly what the server wrote (status, headers, body
//! bytes as they arrive) and to cut a connection in the middle of a streaming
//! response. A pooled client would hide both, so [`HttpRequest::send`] opens
//! its own `TcpStream`, and dropping the [`HttpResponse`] closes it.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

/// How long any single request may take to produce its response head; a
/// bound so that a hung server fails a test instead of hanging it.
const RESPONSE_HEAD_TIMEOUT: Duration = Duration::from_secs(30);

/// One request, built up and then sent with [`HttpRequest::send`].
#[derive(Clone, Debug)]
pub struct HttpRequest {
    method: Method,
    path: String,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: Bytes,
}

impl HttpRequest {
    /// A request with any method; `path` includes the query.
    pub fn new(method: Method, path: impl Into<String>) -> Self {
        Self { method, path: path.into(), headers: Vec::new(), body: Bytes::new() }
    }

    /// `GET path`.
    pub fn get(path: impl Into<String>) -> Self {
        Self::new(Method::GET, path)
    }

    /// `POST path` with a `text/plain` body, as §3 recommends.
    pub fn post(path: impl Into<String>, body: impl Into<Bytes>) -> Self {
        Self::new(Method::POST, path).header("content-type", "text/plain;charset=UTF-8").body(body)
    }

    /// `OPTIONS path`.
    pub fn options(path: impl Into<String>) -> Self {
        Self::new(Method::OPTIONS, path)
    }

    /// Adds a header (several with the same name are all sent).
    ///
    /// # Panics
    /// On a name or value that HTTP does not allow: a bug in the test.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        let name = HeaderName::from_bytes(name.as_bytes()).expect("valid header name");
        let value = HeaderValue::from_str(value).expect("valid header value");
        self.headers.push((name, value));
        self
    }

    /// Adds an `Origin` header.
    pub fn origin(self, origin: &str) -> Self {
        self.header("origin", origin)
    }

    /// Adds a `Last-Event-ID` header (SSE resume).
    pub fn last_event_id(self, id: u64) -> Self {
        self.header("last-event-id", &id.to_string())
    }

    /// Replaces the body.
    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    /// Connects to `addr` and sends the request; returns once the response
    /// head has arrived. The body is read later, piece by piece if need be.
    pub async fn send(self, addr: SocketAddr) -> anyhow::Result<HttpResponse> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        // If this future is dropped before the response head arrives (a test
        // giving up on a held long poll), the guard closes the connection.
        let mut guard = AbortOnDrop(Some(tokio::spawn(async move {
            let _ = conn.await;
        })));
        let mut builder = http::Request::builder().method(self.method).uri(self.path).header("host", addr.to_string());
        for (name, value) in self.headers {
            builder = builder.header(name, value);
        }
        let request = builder.body(Full::new(self.body))?;
        let response = match tokio::time::timeout(RESPONSE_HEAD_TIMEOUT, sender.send_request(request)).await {
            Ok(Ok(response)) => response,
            Ok(Err(e)) => return Err(e.into()),
            Err(_) => anyhow::bail!("no response head within {RESPONSE_HEAD_TIMEOUT:?}"),
        };
        let connection = guard.0.take().expect("connection task");
        let (parts, body) = response.into_parts();
        Ok(HttpResponse { status: parts.status, headers: parts.headers, body, done: false, connection })
    }
}

/// A response whose head has arrived. Dropping it closes the TCP connection,
/// even in the middle of a streaming body.
pub struct HttpResponse {
    /// The status code.
    pub status: StatusCode,
    /// The response headers.
    pub headers: HeaderMap,
    body: Incoming,
    done: bool,
    connection: JoinHandle<()>,
}

impl HttpResponse {
    /// One header as text; `None` when absent (or several, joined by `, `).
    pub fn header(&self, name: &str) -> Option<String> {
        let values: Vec<&str> = self.headers.get_all(name).iter().filter_map(|v| v.to_str().ok()).collect();
        (!values.is_empty()).then(|| values.join(", "))
    }

    /// The next piece of body as it arrives; `None` at the end of the body.
    /// An error means the connection broke before the body was complete.
    pub async fn chunk(&mut self) -> anyhow::Result<Option<Bytes>> {
        while !self.done {
            match self.body.frame().await {
                None => self.done = true,
                Some(frame) => {
                    if let Ok(data) = frame?.into_data() {
                        if !data.is_empty() {
                            return Ok(Some(data));
                        }
                    }
                }
            }
        }
        Ok(None)
    }

    /// The rest of the body.
    pub async fn bytes(mut self) -> anyhow::Result<Bytes> {
        let mut all = BytesMut::new();
        while let Some(chunk) = self.chunk().await? {
            all.extend_from_slice(&chunk);
        }
        Ok(all.freeze())
    }

    /// The rest of the body as UTF-8 text.
    pub async fn text(self) -> anyhow::Result<String> {
        let bytes = self.bytes().await?;
        Ok(String::from_utf8(bytes.to_vec())?)
    }

    /// The rest of the body as JSON.
    pub async fn json(self) -> anyhow::Result<Value> {
        let text = self.text().await?;
        serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("body is not JSON ({e}): {text:?}"))
    }
}

impl Drop for HttpResponse {
    fn drop(&mut self) {
        // Ending the connection task drops the socket: the server sees the
        // client go away exactly as it would if a browser tab closed.
        self.connection.abort();
    }
}

struct AbortOnDrop(Option<JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(task) = self.0.take() {
            task.abort();
        }
    }
}

/// Percent-encodes a query parameter value.
pub fn encode(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}
