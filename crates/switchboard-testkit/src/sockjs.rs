//! SockJS test support: a server with the services of the SockJS protocol
//! test suite (sockjs-protocol 0.3.3), the checks that suite makes on
//! every answer, and a WebSocket client that shows text messages exactly as
//! they arrive.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_websockets::{ClientBuilder, MaybeTlsStream, Message, WebSocketStream};

use crate::{Config, HttpRequest, HttpResponse, TestServer};

/// The `Cache-Control` of every answer that must not be cached.
pub const NO_CACHE: &str = "no-store, no-cache, must-revalidate, max-age=0";

/// How long [`TextSocket::recv`] waits for a message before failing.
const RECV_TIMEOUT: Duration = Duration::from_secs(10);

/// Mounts the services the protocol test suite expects (`/echo`, `/close`,
/// `/disabled_websocket_echo`, `/cookie_needed_echo`) plus `/chat` (rooms),
/// with the suite's 4096-byte response limit and the given heartbeat and
/// disconnect delay.
pub fn configure(config: &mut Config, heartbeat: Duration, disconnect_delay: Duration) {
    let sockjs = serde_json::json!({
        "enabled": true,
        "heartbeat": format!("{}ms", heartbeat.as_millis()),
        "disconnect_delay": format!("{}ms", disconnect_delay.as_millis()),
        "response_limit": 4096,
        "sockjs_url": "/sockjs.min.js",
        "services": [
            { "prefix": "/echo", "kind": "echo" },
            { "prefix": "/close", "kind": "close" },
            { "prefix": "/disabled_websocket_echo", "kind": "echo", "websocket": false },
            { "prefix": "/cookie_needed_echo", "kind": "echo", "jsessionid": true },
            { "prefix": "/chat", "kind": "rooms" },
        ],
    });
    config.sockjs = serde_json::from_value(sockjs).expect("a valid [sockjs] table");
}

/// A server configured by [`configure`].
pub async fn start(heartbeat: Duration, disconnect_delay: Duration) -> TestServer {
    TestServer::start_with(|c| configure(c, heartbeat, disconnect_delay)).await
}

/// `POST path` with a `text/plain` body.
pub async fn post(addr: SocketAddr, path: &str, body: &str) -> anyhow::Result<HttpResponse> {
    HttpRequest::post(path.to_owned(), body.to_owned()).send(addr).await
}

/// `POST path`: status and whole body.
pub async fn post_text(addr: SocketAddr, path: &str, body: &str) -> anyhow::Result<(u16, String)> {
    let response = post(addr, path, body).await?;
    Ok((response.status.as_u16(), response.text().await?))
}

/// `GET path`: status and whole body.
pub async fn get_text(addr: SocketAddr, path: &str) -> anyhow::Result<(u16, String)> {
    let response = HttpRequest::get(path.to_owned()).send(addr).await?;
    Ok((response.status.as_u16(), response.text().await?))
}

/// The content type without spaces (the suite compares it so).
pub fn content_type(response: &HttpResponse) -> String {
    response.header("content-type").unwrap_or_default().replace(' ', "")
}

/// The answer forbids every cache and says nothing of expiry.
pub fn assert_not_cached(response: &HttpResponse) {
    assert_eq!(response.header("cache-control").as_deref(), Some(NO_CACHE));
    assert!(response.header("expires").is_none() && response.header("last-modified").is_none());
}

/// The answer allows `origin` with credentials.
pub fn assert_cors(response: &HttpResponse, origin: &str) {
    assert_eq!(response.header("access-control-allow-origin").as_deref(), Some(origin));
    assert_eq!(response.header("access-control-allow-credentials").as_deref(), Some("true"));
}

/// The next chunk of a streaming response as text; `None` at its end.
pub async fn chunk(response: &mut HttpResponse) -> anyhow::Result<Option<String>> {
    // Every SockJS streaming chunk ends with a newline; the client may
    // hand one chunk out in several pieces (its read buffer is small), so
    // the pieces are joined up to that newline.
    let mut text = String::new();
    loop {
        let piece = tokio::time::timeout(RECV_TIMEOUT, response.chunk())
            .await
            .map_err(|_| anyhow::anyhow!("no chunk within {RECV_TIMEOUT:?}"))??;
        match piece {
            None if text.is_empty() => return Ok(None),
            None => return Ok(Some(text)),
            Some(piece) => text.push_str(&String::from_utf8_lossy(&piece)),
        }
        if text.ends_with('\n') {
            return Ok(Some(text));
        }
    }
}

/// A WebSocket client reading text messages one by one.
pub struct TextSocket {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
    close_code: Option<u16>,
    close_reason: Option<String>,
    closed: bool,
}

impl TextSocket {
    /// Opens `ws://ADDR{path}`.
    pub async fn connect(addr: SocketAddr, path: &str) -> anyhow::Result<Self> {
        let url = format!("ws://{addr}{path}");
        let (socket, _response) = ClientBuilder::new().uri(&url)?.connect().await?;
        Ok(Self { socket, close_code: None, close_reason: None, closed: false })
    }

    /// Sends one text message.
    pub async fn send(&mut self, text: &str) -> anyhow::Result<()> {
        self.socket.send(Message::text(text.to_owned())).await?;
        Ok(())
    }

    /// The next text message; `None` once the server closed the connection
    /// (see [`TextSocket::close_code`]).
    pub async fn recv(&mut self) -> anyhow::Result<Option<String>> {
        while !self.closed {
            let next = tokio::time::timeout(RECV_TIMEOUT, self.socket.next())
                .await
                .map_err(|_| anyhow::anyhow!("no WebSocket message within {RECV_TIMEOUT:?}"))?;
            match next {
                None | Some(Err(_)) => self.closed = true,
                Some(Ok(message)) => {
                    if let Some(text) = message.as_text() {
                        return Ok(Some(text.to_owned()));
                    }
                    if let Some((code, reason)) = message.as_close() {
                        self.close_code = Some(code.into());
                        self.close_reason = Some(reason.to_owned());
                        self.closed = true;
                    }
                }
            }
        }
        Ok(None)
    }

    /// The code of the server's close frame, once closed.
    pub fn close_code(&self) -> Option<u16> {
        self.close_code
    }

    /// The reason of the server's close frame, once closed.
    pub fn close_reason(&self) -> Option<&str> {
        self.close_reason.as_deref()
    }
}
