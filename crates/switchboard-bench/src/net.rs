//! Connections from chosen source addresses: TCP, HTTP/1.1 (hyper's
//! client connection, one request at a time) and WebSocket
//! (tokio-websockets) on top.
//!
//! Every socket is bound to one of the worker's source addresses in
//! 127.0.0.0/8, in turn, so tens of thousands of connections (and the
//! TIME_WAIT sockets of connection churn) do not exhaust the ephemeral
//! ports of one address pair.

use std::cell::Cell;
use std::net::{Ipv4Addr, SocketAddr};

use anyhow::{anyhow, bail, Context};
use bytes::Bytes;
use http::{Method, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpSocket, TcpStream};
use tokio_websockets::{ClientBuilder, WebSocketStream};

/// A WebSocket client connection.
pub type Ws = WebSocketStream<TcpStream>;

/// Where to connect and from which addresses.
#[derive(Debug)]
pub struct Net {
    server: SocketAddr,
    host: String,
    sources: Vec<Ipv4Addr>,
    next: Cell<usize>,
}

impl Net {
    /// `url` is `http://host:port` (an IPv4 address).
    pub fn new(url: &str, sources: Vec<Ipv4Addr>) -> anyhow::Result<Self> {
        let host = url
            .strip_prefix("http://")
            .ok_or_else(|| anyhow!("the url must start with http://"))?
            .trim_end_matches('/')
            .to_owned();
        let server: SocketAddr = host.parse().with_context(|| format!("{host} is not an IPv4 address and port"))?;
        if sources.is_empty() {
            bail!("no source addresses");
        }
        Ok(Self { server, host, sources, next: Cell::new(0) })
    }

    /// A TCP connection from the next source address (the address after
    /// it when one is out of ports).
    pub async fn tcp(&self) -> anyhow::Result<TcpStream> {
        let mut last_error = None;
        for _ in 0..self.sources.len().min(4) {
            let i = self.next.get();
            self.next.set((i + 1) % self.sources.len());
            let socket = TcpSocket::new_v4()?;
            if let Err(e) = socket.bind(SocketAddr::from((self.sources[i], 0))) {
                last_error = Some(e);
                continue;
            }
            match socket.connect(self.server).await {
                Ok(stream) => {
                    stream.set_nodelay(true)?;
                    return Ok(stream);
                }
                Err(e) if e.kind() == std::io::ErrorKind::AddrNotAvailable => last_error = Some(e),
                Err(e) => return Err(e).context("connect"),
            }
        }
        Err(last_error.map_or_else(|| anyhow!("no source address"), anyhow::Error::from)).context("bind/connect")
    }

    /// A WebSocket to `path` (with its query).
    pub async fn ws(&self, path: &str) -> anyhow::Result<Ws> {
        let stream = self.tcp().await?;
        let uri = format!("ws://{}{}", self.host, path);
        let (ws, _) = ClientBuilder::new().uri(&uri)?.connect_on(stream).await.context("websocket handshake")?;
        Ok(ws)
    }

    /// An HTTP/1.1 connection.
    pub async fn http(&self) -> anyhow::Result<Http> {
        let stream = self.tcp().await?;
        let (sender, conn) = http1::handshake(TokioIo::new(stream)).await?;
        tokio::task::spawn_local(async move {
            let _ = conn.await;
        });
        Ok(Http { sender, host: self.host.clone() })
    }
}

/// One HTTP/1.1 connection, one request at a time (keep-alive).
#[derive(Debug)]
pub struct Http {
    sender: http1::SendRequest<Full<Bytes>>,
    host: String,
}

impl Http {
    /// Whether the connection can take another request.
    pub fn is_open(&self) -> bool {
        !self.sender.is_closed()
    }

    /// Sends a request and returns the response head (the body streams).
    pub async fn send(
        &mut self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> anyhow::Result<Response<Incoming>> {
        self.sender.ready().await.context("connection closed")?;
        let mut request = Request::builder().method(method).uri(path).header("host", &self.host);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(Full::new(body.into()))?;
        Ok(self.sender.send_request(request).await?)
    }

    /// A GET answered with a whole body.
    pub async fn get_text(&mut self, path: &str) -> anyhow::Result<(http::StatusCode, String)> {
        let response = self.send(Method::GET, path, &[], Bytes::new()).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }

    /// A POST of a text body answered with a whole body.
    pub async fn post_text(&mut self, path: &str, body: String) -> anyhow::Result<(http::StatusCode, String)> {
        let response = self.send(Method::POST, path, &[("content-type", "text/plain")], body).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }
}

/// Reads a streaming response body line by line.
#[derive(Debug)]
pub struct Lines {
    body: Incoming,
    buffer: Vec<u8>,
    start: usize,
}

impl Lines {
    /// Lines of `body`.
    pub fn new(body: Incoming) -> Self {
        Self { body, buffer: Vec::with_capacity(4096), start: 0 }
    }

    /// The next line without its `\n` (and `\r`), or `None` at the end of
    /// the body.
    pub async fn next(&mut self) -> anyhow::Result<Option<String>> {
        loop {
            if let Some(nl) = self.buffer[self.start..].iter().position(|&b| b == b'\n') {
                let end = self.start + nl;
                let line_end = if end > self.start && self.buffer[end - 1] == b'\r' { end - 1 } else { end };
                let line = String::from_utf8_lossy(&self.buffer[self.start..line_end]).into_owned();
                self.start = end + 1;
                return Ok(Some(line));
            }
            if self.start > 0 {
                self.buffer.drain(..self.start);
                self.start = 0;
            }
            match self.body.frame().await {
                None => return Ok(None),
                Some(frame) => {
                    if let Ok(data) = frame?.into_data() {
                        self.buffer.extend_from_slice(&data);
                    }
                }
            }
        }
    }
}
