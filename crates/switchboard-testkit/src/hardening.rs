//! Support for the hardening tests: limits, slow consumers, security,
//! shutdown under load (`docs/limits.md`, `SECURITY.md`).
//!
//! - [`Metrics`]: a `/metrics` snapshot, and [`Metrics::wait_grown`] to wait
//!   until a counter has grown (the recorder is process-wide, so tests read
//!   differences, never absolute values).
//! - [`Bystander`]: a chat client connected before a test misbehaves, that
//!   proves afterwards, on the same connection, that it was not affected.
//! - [`raw_exchange`]: bytes in, bytes out over one TCP connection, for what
//!   a well-behaved HTTP client cannot send (CR/LF in headers, huge heads,
//!   slow heads).
//! - [`StalledSocket`]: a WebSocket or HTTP stream with a tiny receive
//!   buffer that stops reading after its first frame: a slow consumer.
//! - [`ServerProcess`]: the server binary as a child process, for SIGTERM.
//! - [`percentile`], [`proc_rss_kib`], [`proc_open_fds`]: measurements.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::frame::Frame;
use crate::im::{metric, scrape_metrics, ChatClient, Login};

/// The series of `switchboard_errors_total` for one code.
pub fn errors_series(code: u16) -> String {
    format!("switchboard_errors_total{{code=\"{code}\"}}")
}

/// One scrape of `GET /metrics`.
#[derive(Debug, Clone)]
pub struct Metrics(pub String);

impl Metrics {
    /// Scrapes the server now.
    pub async fn scrape(addr: SocketAddr) -> anyhow::Result<Self> {
        Ok(Self(scrape_metrics(addr).await?))
    }

    /// The value of `series` (0 when absent: a counter never incremented).
    pub fn value(&self, series: &str) -> f64 {
        metric(&self.0, series).unwrap_or(0.0)
    }

    /// Waits (up to 5 s) until `series` has grown by at least `by` since
    /// this snapshot; returns the growth.
    pub async fn wait_grown(&self, addr: SocketAddr, series: &str, by: f64) -> anyhow::Result<f64> {
        let before = self.value(series);
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let now = Metrics::scrape(addr).await?.value(series);
            if now - before >= by {
                return Ok(now - before);
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "{series} grew by {} (from {before}), expected at least {by}",
                now - before
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A user chatting in a room of its own, connected before the test breaks
/// a limit; [`Bystander::check`] proves it still chats normally on the same
/// WebSocket.
pub struct Bystander {
    client: ChatClient,
    room: String,
    sent: u64,
}

impl Bystander {
    /// Connects development-mode user `name` and joins `room`.
    pub async fn join(addr: SocketAddr, name: &str, room: &str) -> anyhow::Result<Self> {
        Self::login(addr, &Login::name(name), room).await
    }

    /// Connects with `login` (a token, on a server with a JWT key) and
    /// joins `room`.
    pub async fn login(addr: SocketAddr, login: &Login, room: &str) -> anyhow::Result<Self> {
        let mut client = ChatClient::login(addr, login).await?;
        client.join(room).await?;
        Ok(Self { client, room: room.to_owned(), sent: 0 })
    }

    /// Publishes one message and receives both its ack and the message
    /// itself, within the client's frame timeout.
    pub async fn check(&mut self) -> anyhow::Result<()> {
        self.sent += 1;
        let n = self.sent;
        let id = self.client.publish(&self.room, json!({"bystander": n})).await?;
        loop {
            let frame = self.client.next().await?;
            if frame.typ() == "msg" && frame.u64("id") == Some(id) {
                anyhow::ensure!(frame.data() == Some(&json!({"bystander": n})), "{frame}");
                return self.client.ack().await;
            }
        }
    }

    /// The client, for anything else.
    pub fn client(&mut self) -> &mut ChatClient {
        &mut self.client
    }
}

/// Writes `request` on a fresh connection, then reads until the server
/// closes it or `wait` passes; returns what was read and whether the server
/// closed the connection (EOF or reset) within `wait`.
pub async fn raw_exchange(addr: SocketAddr, request: &[u8], wait: Duration) -> anyhow::Result<(Vec<u8>, bool)> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.write_all(request).await?;
    read_until_closed(&mut stream, wait).await
}

/// Reads until EOF/reset or `wait`; returns the bytes and whether the peer
/// closed.
pub async fn read_until_closed(stream: &mut TcpStream, wait: Duration) -> anyhow::Result<(Vec<u8>, bool)> {
    let deadline = tokio::time::Instant::now() + wait;
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return Ok((out, false)),
            Ok(Ok(0)) | Ok(Err(_)) => return Ok((out, true)),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
}

/// The head of an HTTP response (status line and headers) as text, and the
/// status code.
pub fn response_head(raw: &[u8]) -> Option<(u16, String)> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let status = head.split(' ').nth(1)?.parse().ok()?;
    Some((status, head))
}

/// A client socket that read its first frame and then never reads again,
/// with a receive buffer as small as the kernel allows, so the server's
/// writes stall quickly: a slow consumer.
pub struct StalledSocket {
    /// The connection (kept open, never read).
    pub stream: TcpStream,
    /// The first frame the server sent (the `welcome`).
    pub welcome: Frame,
}

/// The WebSocket key of [`StalledSocket`] handshakes (any 16 bytes, base64).
const WS_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

impl StalledSocket {
    /// A native WebSocket (`/v1/ws{query}`) with a tiny receive buffer; reads
    /// the handshake and the welcome, then stops reading.
    pub async fn websocket(addr: SocketAddr, query: &str) -> anyhow::Result<Self> {
        let mut stream = small_buffer_connect(addr).await?;
        let request = format!(
            "GET /v1/ws{query} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: {WS_KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await?;
        let head = read_head(&mut stream).await?;
        anyhow::ensure!(head.starts_with("HTTP/1.1 101"), "upgrade refused: {head}");
        let text = read_ws_text(&mut stream).await?;
        Ok(Self { stream, welcome: Frame::parse(&text)? })
    }

    /// An NDJSON stream (`/v1/stream{query}`) with a tiny receive buffer;
    /// reads the head and the welcome line, then stops reading.
    pub async fn stream(addr: SocketAddr, query: &str) -> anyhow::Result<Self> {
        let mut stream = small_buffer_connect(addr).await?;
        let request = format!("GET /v1/stream{query} HTTP/1.1\r\nHost: {addr}\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        // Head, then the first chunk: "<hex size>\r\n{welcome}\n\r\n".
        let mut raw = Vec::new();
        let mut byte = [0u8; 1];
        let deadline = Instant::now() + Duration::from_secs(5);
        while !raw.ends_with(b"}\n") {
            anyhow::ensure!(Instant::now() < deadline, "no welcome line: {:?}", String::from_utf8_lossy(&raw));
            anyhow::ensure!(stream.read(&mut byte).await? == 1, "stream ended before the welcome");
            raw.push(byte[0]);
        }
        let text = String::from_utf8_lossy(&raw).into_owned();
        anyhow::ensure!(text.starts_with("HTTP/1.1 200"), "stream refused: {text}");
        let line = text.rsplit("\r\n").next().unwrap_or_default().trim();
        Ok(Self { stream, welcome: Frame::parse(line)? })
    }

    /// The session id of the welcome.
    pub fn sid(&self) -> String {
        self.welcome.str("sid").unwrap_or_default().to_owned()
    }

    /// Whether the server has closed the connection: drains what is
    /// buffered for up to `wait` and reports EOF or reset.
    pub async fn closed_by_server(&mut self, wait: Duration) -> anyhow::Result<bool> {
        Ok(read_until_closed(&mut self.stream, wait).await?.1)
    }
}

async fn small_buffer_connect(addr: SocketAddr) -> anyhow::Result<TcpStream> {
    let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    // Set before connect so the advertised window starts small.
    socket.set_recv_buffer_size(4096)?;
    Ok(socket.connect(addr).await?)
}

async fn read_head(stream: &mut TcpStream) -> anyhow::Result<String> {
    let mut raw = Vec::new();
    let mut byte = [0u8; 1];
    while !raw.ends_with(b"\r\n\r\n") {
        anyhow::ensure!(raw.len() < 16 * 1024, "response head too long");
        anyhow::ensure!(stream.read(&mut byte).await? == 1, "connection closed in the response head");
        raw.push(byte[0]);
    }
    Ok(String::from_utf8_lossy(&raw).into_owned())
}

/// Reads one unmasked server WebSocket frame and returns its text.
async fn read_ws_text(stream: &mut TcpStream) -> anyhow::Result<String> {
    let mut head = [0u8; 2];
    stream.read_exact(&mut head).await?;
    anyhow::ensure!(head[0] & 0x0f == 1, "expected a text frame, opcode {}", head[0] & 0x0f);
    let len = match head[1] & 0x7f {
        126 => {
            let mut b = [0u8; 2];
            stream.read_exact(&mut b).await?;
            u64::from(u16::from_be_bytes(b))
        }
        127 => {
            let mut b = [0u8; 8];
            stream.read_exact(&mut b).await?;
            u64::from_be_bytes(b)
        }
        n => u64::from(n),
    };
    anyhow::ensure!(len < 1 << 20, "frame of {len} bytes");
    let mut payload = vec![0u8; len as usize];
    stream.read_exact(&mut payload).await?;
    Ok(String::from_utf8(payload)?)
}

/// A plain HTTP/1.1 client on one keep-alive connection, for tests that
/// make thousands of short requests (a fresh connection each would exhaust
/// the ephemeral ports with `TIME_WAIT` sockets). Answers must carry a
/// `Content-Length` (every non-streaming answer of the server does).
pub struct KeepAlive {
    addr: SocketAddr,
    stream: Option<tokio::io::BufReader<TcpStream>>,
}

impl KeepAlive {
    /// A client of `addr`; connects at the first request.
    pub fn new(addr: SocketAddr) -> Self {
        Self { addr, stream: None }
    }

    /// `GET path`: status and body.
    pub async fn get(&mut self, path: &str) -> std::io::Result<(u16, Vec<u8>)> {
        self.request("GET", path, b"").await
    }

    /// `POST path` with a `text/plain` body: status and body.
    pub async fn post(&mut self, path: &str, body: &[u8]) -> std::io::Result<(u16, Vec<u8>)> {
        self.request("POST", path, body).await
    }

    /// One request on the open connection (opened first if need be); the
    /// connection is dropped on any error, so the next request opens a new
    /// one. An error of kind `ConnectionRefused` means nobody listens.
    pub async fn request(&mut self, method: &str, path: &str, body: &[u8]) -> std::io::Result<(u16, Vec<u8>)> {
        let result = self.exchange(method, path, body).await;
        if result.is_err() {
            self.stream = None;
        }
        result
    }

    async fn exchange(&mut self, method: &str, path: &str, body: &[u8]) -> std::io::Result<(u16, Vec<u8>)> {
        use tokio::io::AsyncBufReadExt;
        let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned());
        if self.stream.is_none() {
            self.stream = Some(tokio::io::BufReader::new(TcpStream::connect(self.addr).await?));
        }
        let stream = self.stream.as_mut().expect("connected above");
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n",
            self.addr,
            body.len()
        );
        stream.get_mut().write_all(head.as_bytes()).await?;
        stream.get_mut().write_all(body).await?;
        let mut status_line = String::new();
        if stream.read_line(&mut status_line).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let status = status_line.split(' ').nth(1).and_then(|s| s.parse().ok()).ok_or_else(|| bad("status line"))?;
        let mut length = None;
        let mut close = false;
        loop {
            let mut line = String::new();
            if stream.read_line(&mut line).await? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            if line == "\r\n" {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                let value = value.trim();
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.parse::<usize>().ok();
                } else if name.eq_ignore_ascii_case("connection") && value.eq_ignore_ascii_case("close") {
                    close = true;
                }
            }
        }
        let mut body = vec![0u8; length.ok_or_else(|| bad("no content-length"))?];
        stream.read_exact(&mut body).await?;
        if close {
            self.stream = None;
        }
        Ok((status, body))
    }
}

/// The `q`-quantile (0.0–1.0) of `samples` (sorted here); zero when empty.
pub fn percentile(samples: &mut [Duration], q: f64) -> Duration {
    if samples.is_empty() {
        return Duration::ZERO;
    }
    samples.sort_unstable();
    let index = ((samples.len() as f64 - 1.0) * q).round() as usize;
    samples[index.min(samples.len() - 1)]
}

/// Resident memory of process `pid` in KiB (`VmRSS` of `/proc/PID/status`).
pub fn proc_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Open file descriptors of process `pid` (entries of `/proc/PID/fd`).
pub fn proc_open_fds(pid: u32) -> Option<usize> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count())
}

/// The server binary running as a child process on a loopback port.
pub struct ServerProcess {
    child: Child,
    /// The address it listens on.
    pub addr: SocketAddr,
}

impl ServerProcess {
    /// Starts `binary serve --listen 127.0.0.1:PORT` with `env` set
    /// (`SWITCHBOARD_*` variables), and waits until it accepts connections.
    pub async fn start(binary: &Path, env: &[(&str, String)]) -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let mut command = Command::new(binary);
        command
            .args(["serve", "--listen", &addr.to_string(), "--log", "warn"])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        for (key, value) in env {
            command.env(key, value);
        }
        let child = command.spawn()?;
        let mut process = Self { child, addr };
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if TcpStream::connect(addr).await.is_ok() {
                return Ok(process);
            }
            if let Some(status) = process.child.try_wait()? {
                anyhow::bail!("the server exited at start: {status}");
            }
            anyhow::ensure!(Instant::now() < deadline, "the server did not listen on {addr} within 15 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) -> anyhow::Result<()> {
        let status = Command::new("kill").args(["-TERM", &self.pid().to_string()]).status()?;
        anyhow::ensure!(status.success(), "kill -TERM failed: {status}");
        Ok(())
    }

    /// Waits up to `limit` for the process to exit; returns how long it
    /// took and whether it exited successfully. Kills it on expiry.
    pub async fn wait_exit(&mut self, limit: Duration) -> anyhow::Result<(Duration, bool)> {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok((started.elapsed(), status.success()));
            }
            if started.elapsed() > limit {
                let _ = self.child.kill();
                let _ = self.child.wait();
                anyhow::bail!("the server was still running {limit:?} after SIGTERM");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
