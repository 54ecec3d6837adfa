//! Chat-level clients for the tests of §7 (users, rooms and history) and of
//! the server HTTP API.
//!
//! The transport tests read frames one `seq` at a time; the chat tests talk
//! like an application does: a [`ChatClient`] is a user's WebSocket session
//! that sends requests with `cid`s and waits for their answers while keeping
//! every other frame in arrival order, and [`Api`] is a back-end calling
//! `/api/v1`. Both only speak the documented wire protocol.
//!
//! - [`Login`]: who a new session claims to be (`name=`, `token=`, or an
//!   `Authorization: Bearer` header) and which session it resumes.
//! - [`ChatClient`]: one WebSocket attachment, with request/answer helpers.
//! - [`Refusal`]: how the server turned an attachment away (`close` frame
//!   and WebSocket close code).
//! - [`Api`]: the HTTP API with or without its key.
//! - [`wait_session_ended`]: waits for a detached session's grace to run out.
//! - [`scrape_metrics`] and [`metric`]: read `/metrics`.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use http::{HeaderName, HeaderValue, Method};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_websockets::{ClientBuilder, MaybeTlsStream, Message, WebSocketStream};

use crate::frame::Frame;
use crate::http::{encode, HttpRequest};

/// How long a client waits for one expected frame before failing with a
/// message that says what it was waiting for (well inside the test bound).
pub const FRAME_TIMEOUT: Duration = Duration::from_secs(5);

/// What a new downstream request says about its user and session.
#[derive(Clone, Debug, Default)]
pub struct Login {
    /// `name=` (development mode nickname).
    pub name: Option<String>,
    /// `token=` query parameter.
    pub token: Option<String>,
    /// `Authorization: Bearer` header.
    pub bearer: Option<String>,
    /// `sid=`: resume this session.
    pub sid: Option<String>,
    /// `last=`.
    pub last: u64,
}

impl Login {
    /// A guest: no credentials at all.
    pub fn guest() -> Self {
        Self::default()
    }

    /// Development mode: the nickname (and user id) `name`.
    pub fn name(name: &str) -> Self {
        Self { name: Some(name.to_owned()), ..Self::default() }
    }

    /// A JWT in the `token` query parameter.
    pub fn token(token: &str) -> Self {
        Self { token: Some(token.to_owned()), ..Self::default() }
    }

    /// A JWT in an `Authorization: Bearer` header.
    pub fn bearer(token: &str) -> Self {
        Self { bearer: Some(token.to_owned()), ..Self::default() }
    }

    /// The same credentials, resuming session `sid` after `last`.
    pub fn resume(mut self, sid: &str, last: u64) -> Self {
        self.sid = Some(sid.to_owned());
        self.last = last;
        self
    }

    /// The query string (with `?`) of a downstream request.
    pub fn query(&self) -> String {
        let mut params = Vec::new();
        if let Some(sid) = &self.sid {
            params.push(format!("sid={}", encode(sid)));
        }
        params.push(format!("last={}", self.last));
        if let Some(name) = &self.name {
            params.push(format!("name={}", encode(name)));
        }
        if let Some(token) = &self.token {
            params.push(format!("token={}", encode(token)));
        }
        format!("?{}", params.join("&"))
    }
}

/// The server refused an attachment after the upgrade: it sent a `close`
/// frame and closed the WebSocket.
#[derive(Debug, Clone)]
pub struct Refusal {
    /// The `close` control frame.
    pub close: Frame,
    /// The WebSocket close code (`None` if the socket just ended).
    pub ws_close: Option<u16>,
    /// The WebSocket close reason.
    pub ws_reason: String,
}

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Numbers the clients of this process (see [`ChatClient::next_cid`]).
static CLIENTS: AtomicU64 = AtomicU64::new(1);

/// One user's session over a WebSocket, driven like a chat application:
/// requests carry `cid`s and wait for their answers; every other frame that
/// arrives meanwhile is kept, in order, for [`ChatClient::next`].
pub struct ChatClient {
    socket: Socket,
    welcome: Frame,
    /// Frames read off the socket but not handed out yet.
    queued: VecDeque<Frame>,
    /// The highest `seq` seen (for `ack` and resumes).
    last: u64,
    cids: u64,
    prefix: String,
}

impl ChatClient {
    /// A new session of development-mode user `name`.
    pub async fn connect(addr: SocketAddr, name: &str) -> anyhow::Result<Self> {
        Self::login(addr, &Login::name(name)).await
    }

    /// A new or resumed session; fails if the server refuses it.
    pub async fn login(addr: SocketAddr, login: &Login) -> anyhow::Result<Self> {
        match Self::open(addr, login).await? {
            Ok(client) => Ok(client),
            Err(refusal) => anyhow::bail!(
                "attachment {} refused: {} (WebSocket close {:?})",
                login.query(),
                refusal.close,
                refusal.ws_close
            ),
        }
    }

    /// An attachment that the server must refuse; fails if it is welcomed.
    pub async fn refused(addr: SocketAddr, login: &Login) -> anyhow::Result<Refusal> {
        match Self::open(addr, login).await? {
            Ok(client) => anyhow::bail!("attachment {} was accepted: {}", login.query(), client.welcome),
            Err(refusal) => Ok(refusal),
        }
    }

    /// Opens the WebSocket: `Ok` with the client after `welcome`, `Err`
    /// with what the server said when it closed the attachment instead.
    pub async fn open(addr: SocketAddr, login: &Login) -> anyhow::Result<Result<Self, Refusal>> {
        let url = format!("ws://{addr}/v1/ws{}", login.query());
        let mut builder = ClientBuilder::new().uri(&url)?;
        if let Some(token) = &login.bearer {
            builder = builder.add_header(
                HeaderName::from_static("authorization"),
                HeaderValue::from_str(&format!("Bearer {token}"))?,
            )?;
        }
        let (mut socket, _response) = builder.connect().await?;
        let first = match read_frame(&mut socket).await? {
            Read::Frame(frame) => frame,
            Read::Closed(code, reason) => {
                anyhow::bail!("WebSocket closed ({code:?} {reason:?}) before any frame on {url}")
            }
        };
        if first.typ() == "welcome" {
            // Unique per client, so a resumed session's remembered cids are
            // never hit by accident.
            let n = CLIENTS.fetch_add(1, Ordering::Relaxed);
            let prefix = format!("{}.{n}", first.str("user").unwrap_or("c"));
            return Ok(Ok(Self { socket, last: login.last, welcome: first, queued: VecDeque::new(), cids: 0, prefix }));
        }
        anyhow::ensure!(first.typ() == "close", "expected welcome or close first on {url}, got {first}");
        let (ws_close, ws_reason) = socket_end(&mut socket, &first).await?;
        Ok(Err(Refusal { close: first, ws_close, ws_reason }))
    }

    /// The `welcome` frame.
    pub fn welcome(&self) -> &Frame {
        &self.welcome
    }

    /// The session id.
    pub fn sid(&self) -> &str {
        self.welcome.str("sid").unwrap_or_default()
    }

    /// The public id others see as `from`.
    pub fn public_id(&self) -> &str {
        self.welcome.str("id").unwrap_or_default()
    }

    /// The user id the server gave this session.
    pub fn user(&self) -> &str {
        self.welcome.str("user").unwrap_or_default()
    }

    /// The highest `seq` seen so far.
    pub fn last(&self) -> u64 {
        self.last
    }

    /// A fresh `cid` (`<user>.<client>-N`).
    pub fn next_cid(&mut self) -> String {
        self.cids += 1;
        format!("{}-{}", self.prefix, self.cids)
    }

    /// Sends one WebSocket text message as it is.
    pub async fn send_text(&mut self, text: &str) -> anyhow::Result<()> {
        self.socket.send(Message::text(text.to_owned())).await?;
        Ok(())
    }

    /// Sends one frame (or an array of frames) as one message.
    pub async fn send(&mut self, frame: &Value) -> anyhow::Result<()> {
        self.send_text(&frame.to_string()).await
    }

    /// Sends `frame` with a fresh `cid` (unless it has one) and returns the
    /// frame answering that `cid` (`ack`, `error`, `history`, `who`,
    /// `rooms` or `echo`). Frames that arrive first are kept for
    /// [`ChatClient::next`].
    pub async fn request(&mut self, mut frame: Value) -> anyhow::Result<Frame> {
        if frame.get("cid").is_none() {
            frame["cid"] = Value::String(self.next_cid());
        }
        let cid = frame["cid"].as_str().unwrap_or_default().to_owned();
        self.send(&frame).await?;
        self.answer(&cid).await
    }

    /// Waits for the frame answering `cid`, keeping the others queued.
    pub async fn answer(&mut self, cid: &str) -> anyhow::Result<Frame> {
        if let Some(i) = self.queued.iter().position(|f| is_answer(f, cid)) {
            return Ok(self.queued.remove(i).expect("position is in range"));
        }
        loop {
            let frame = self.read(&format!("the answer to cid {cid}")).await?;
            if is_answer(&frame, cid) {
                return Ok(frame);
            }
            self.queued.push_back(frame);
        }
    }

    /// A request that must be answered by `ack`; returns the ack.
    pub async fn acked(&mut self, frame: Value) -> anyhow::Result<Frame> {
        let sent = frame.to_string();
        let answer = self.request(frame).await?;
        anyhow::ensure!(answer.typ() == "ack", "{sent} answered {answer}");
        Ok(answer)
    }

    /// A request that must be refused with `error` `code`; returns the error.
    pub async fn refused_with(&mut self, frame: Value, code: u64) -> anyhow::Result<Frame> {
        let sent = frame.to_string();
        let answer = self.request(frame).await?;
        anyhow::ensure!(
            answer.typ() == "error"
                && answer.code() == Some(code)
                && answer.str("message").is_some_and(|m| !m.is_empty()),
            "{sent} must be refused with error {code} and a message, got {answer}"
        );
        Ok(answer)
    }

    /// Joins `room` (must be acked).
    pub async fn join(&mut self, room: &str) -> anyhow::Result<()> {
        self.acked(json!({"type": "join", "room": room})).await?;
        Ok(())
    }

    /// Publishes `data` to `room`; returns the stored message id from the
    /// ack.
    pub async fn publish(&mut self, room: &str, data: Value) -> anyhow::Result<u64> {
        let ack = self.acked(json!({"type": "publish", "room": room, "data": data})).await?;
        ack.u64("id").ok_or_else(|| anyhow::anyhow!("publish ack without a message id: {ack}"))
    }

    /// Publishes every value of `data` to `room`, as one WebSocket message
    /// per 100 frames, and waits for each answer; returns the answers in
    /// order (`ack` or `error`). Frames that arrive meanwhile (the session's
    /// own `msg`s among them) are dropped and acknowledged, so the outbox
    /// never fills.
    pub async fn publish_all(&mut self, room: &str, data: Vec<Value>) -> anyhow::Result<Vec<Frame>> {
        let mut answers = Vec::with_capacity(data.len());
        for chunk in data.chunks(100) {
            let mut frames = Vec::with_capacity(chunk.len());
            let mut cids = Vec::with_capacity(chunk.len());
            for value in chunk {
                let cid = self.next_cid();
                frames.push(json!({"type": "publish", "room": room, "data": value, "cid": cid}));
                cids.push(cid);
            }
            self.send(&Value::Array(frames)).await?;
            for cid in &cids {
                answers.push(self.answer(cid).await?);
            }
            self.queued.clear();
            self.ack().await?;
        }
        Ok(answers)
    }

    /// A `history` query (extra fields such as `before`, `after`, `limit`
    /// from `query`); returns the messages.
    pub async fn history(&mut self, room: &str, query: Value) -> anyhow::Result<Vec<Value>> {
        let mut frame = json!({"type": "history", "room": room});
        if let Value::Object(fields) = query {
            for (key, value) in fields {
                frame[key] = value;
            }
        }
        let answer = self.request(frame).await?;
        anyhow::ensure!(
            answer.typ() == "history" && answer.str("room") == Some(room),
            "history of {room} answered {answer}"
        );
        match answer.value().get("messages") {
            Some(Value::Array(messages)) => Ok(messages.clone()),
            _ => anyhow::bail!("history answer without messages: {answer}"),
        }
    }

    /// A `who` query; returns the user ids present, as listed.
    pub async fn who(&mut self, room: &str) -> anyhow::Result<Vec<String>> {
        let answer = self.request(json!({"type": "who", "room": room})).await?;
        anyhow::ensure!(answer.typ() == "who" && answer.str("room") == Some(room), "who {room} answered {answer}");
        let users =
            answer.value()["users"].as_array().ok_or_else(|| anyhow::anyhow!("who answer without users: {answer}"))?;
        Ok(users.iter().map(|u| u["user"].as_str().unwrap_or_default().to_owned()).collect())
    }

    /// A `rooms` query; returns the `rooms` array.
    pub async fn rooms(&mut self) -> anyhow::Result<Vec<Value>> {
        let answer = self.request(json!({"type": "rooms"})).await?;
        anyhow::ensure!(answer.typ() == "rooms", "rooms answered {answer}");
        rooms_of(&answer)
    }

    /// Every frame the server queued for this session before it answered an
    /// `echo` sent now: what happened "so far", without sleeping.
    pub async fn sync(&mut self) -> anyhow::Result<Vec<Frame>> {
        let cid = self.next_cid();
        self.send(&json!({"type": "echo", "data": "sync", "cid": cid})).await?;
        let mut before: Vec<Frame> = Vec::new();
        loop {
            let frame = self.next().await?;
            if is_answer(&frame, &cid) {
                anyhow::ensure!(frame.typ() == "echo", "sync echo answered {frame}");
                return Ok(before);
            }
            before.push(frame);
        }
    }

    /// The next frame (not a `ping`), queued ones first.
    pub async fn next(&mut self) -> anyhow::Result<Frame> {
        match self.queued.pop_front() {
            Some(frame) => Ok(frame),
            None => self.read("the next frame").await,
        }
    }

    /// The next frame, which must be of type `typ`.
    pub async fn expect(&mut self, typ: &str) -> anyhow::Result<Frame> {
        let frame = self.next().await?;
        anyhow::ensure!(frame.typ() == typ, "expected a {typ} frame, got {frame}");
        Ok(frame)
    }

    /// Frames up to the first one of type `typ`, which is returned; the
    /// others are dropped.
    pub async fn skip_to(&mut self, typ: &str) -> anyhow::Result<Frame> {
        loop {
            let frame = self.next().await?;
            if frame.typ() == typ {
                return Ok(frame);
            }
        }
    }

    /// Frames up to the `presence` frame announcing `user` with `state`
    /// (`join` or `leave`), which is returned; the others are dropped.
    pub async fn skip_to_presence(&mut self, user: &str, state: &str) -> anyhow::Result<Frame> {
        loop {
            let frame = self.skip_to("presence").await?;
            if frame.str("user") == Some(user) && frame.str("state") == Some(state) {
                return Ok(frame);
            }
        }
    }

    /// Acknowledges every sequenced frame seen so far.
    pub async fn ack(&mut self) -> anyhow::Result<()> {
        let last = self.last;
        self.send(&json!({"type": "ack", "seq": last})).await
    }

    /// Waits for the server to end this attachment: returns the `close`
    /// frame and the WebSocket close code. Other frames are stepped over.
    pub async fn closed(mut self) -> anyhow::Result<(Frame, Option<u16>)> {
        let close = loop {
            let frame = self.next().await?;
            if frame.typ() == "close" {
                break frame;
            }
        };
        let (code, _reason) = socket_end(&mut self.socket, &close).await?;
        Ok((close, code))
    }

    /// Closes the WebSocket from the client side (the session then lives on
    /// for its grace period).
    pub async fn disconnect(mut self) -> anyhow::Result<()> {
        let _ = self.socket.close().await;
        Ok(())
    }

    async fn read(&mut self, waiting_for: &str) -> anyhow::Result<Frame> {
        loop {
            let read = tokio::time::timeout(FRAME_TIMEOUT, read_frame(&mut self.socket))
                .await
                .map_err(|_| anyhow::anyhow!("{} waited {FRAME_TIMEOUT:?} for {waiting_for}", self.user()))??;
            match read {
                Read::Frame(frame) if frame.typ() == "ping" => continue,
                Read::Frame(frame) => {
                    if let Some(seq) = frame.seq() {
                        anyhow::ensure!(seq > self.last, "{}: seq {seq} after {} in {frame}", self.user(), self.last);
                        self.last = seq;
                    }
                    return Ok(frame);
                }
                Read::Closed(code, reason) => anyhow::bail!(
                    "{}: WebSocket closed ({code:?} {reason:?}) while waiting for {waiting_for}",
                    self.user()
                ),
            }
        }
    }
}

/// The `rooms` array of a `rooms` frame.
pub fn rooms_of(frame: &Frame) -> anyhow::Result<Vec<Value>> {
    match frame.value().get("rooms") {
        Some(Value::Array(rooms)) => Ok(rooms.clone()),
        _ => anyhow::bail!("rooms frame without a rooms array: {frame}"),
    }
}

/// The entry of `room` in a `rooms` array.
pub fn room_entry<'a>(rooms: &'a [Value], room: &str) -> anyhow::Result<&'a Value> {
    rooms.iter().find(|r| r["room"] == room).ok_or_else(|| anyhow::anyhow!("room {room} missing from {rooms:?}"))
}

fn is_answer(frame: &Frame, cid: &str) -> bool {
    frame.seq().is_some()
        && frame.cid() == Some(cid)
        && matches!(frame.typ(), "ack" | "error" | "echo" | "history" | "who" | "rooms")
}

/// After a `close` frame the WebSocket must end, with nothing else: its
/// close code and reason (none when the connection just dropped).
async fn socket_end(socket: &mut Socket, close: &Frame) -> anyhow::Result<(Option<u16>, String)> {
    match tokio::time::timeout(FRAME_TIMEOUT, read_frame(socket)).await {
        Err(_) => anyhow::bail!("WebSocket still open {FRAME_TIMEOUT:?} after {close}"),
        Ok(Err(_)) => Ok((None, String::new())),
        Ok(Ok(Read::Closed(code, reason))) => Ok((code, reason)),
        Ok(Ok(Read::Frame(frame))) => anyhow::bail!("frame {frame} after {close}"),
    }
}

enum Read {
    Frame(Frame),
    Closed(Option<u16>, String),
}

async fn read_frame(socket: &mut Socket) -> anyhow::Result<Read> {
    loop {
        match socket.next().await {
            None => return Ok(Read::Closed(None, String::new())),
            Some(Err(e)) => return Err(e.into()),
            Some(Ok(message)) => {
                if let Some(text) = message.as_text() {
                    return Ok(Read::Frame(Frame::parse(text)?));
                }
                if let Some((code, reason)) = message.as_close() {
                    return Ok(Read::Closed(Some(code.into()), reason.to_owned()));
                }
                anyhow::ensure!(!message.is_binary(), "unexpected binary WebSocket message");
            }
        }
    }
}

/// A back-end calling the server HTTP API (`/api/v1`).
#[derive(Clone, Debug)]
pub struct Api {
    addr: SocketAddr,
    key: Option<String>,
}

impl Api {
    /// Calls with `Authorization: Bearer key` (none when `key` is `None`).
    pub fn new(addr: SocketAddr, key: Option<&str>) -> Self {
        Self { addr, key: key.map(str::to_owned) }
    }

    /// One request; `path` is below `/api/v1` and includes the query.
    /// Returns the status and the body (JSON, `Null` when empty).
    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> anyhow::Result<(u16, Value)> {
        let mut request = HttpRequest::new(method.clone(), format!("/api/v1{path}"));
        if let Some(key) = &self.key {
            request = request.header("authorization", &format!("Bearer {key}"));
        }
        if let Some(body) = body {
            request = request.header("content-type", "application/json").body(body.to_string());
        }
        let response = request.send(self.addr).await?;
        let status = response.status.as_u16();
        let text = response.text().await?;
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text)
                .map_err(|e| anyhow::anyhow!("{method} {path} answered {status} with non-JSON ({e}): {text:?}"))?
        };
        Ok((status, body))
    }

    /// `GET`.
    pub async fn get(&self, path: &str) -> anyhow::Result<(u16, Value)> {
        self.call(Method::GET, path, None).await
    }

    /// `POST` with a JSON body.
    pub async fn post(&self, path: &str, body: Value) -> anyhow::Result<(u16, Value)> {
        self.call(Method::POST, path, Some(body)).await
    }

    /// `PUT` without a body.
    pub async fn put(&self, path: &str) -> anyhow::Result<(u16, Value)> {
        self.call(Method::PUT, path, None).await
    }

    /// `DELETE`.
    pub async fn delete(&self, path: &str) -> anyhow::Result<(u16, Value)> {
        self.call(Method::DELETE, path, None).await
    }

    /// Posts a message (the body of `POST /rooms/ROOM/messages`), which
    /// must be answered 201; returns the answer.
    pub async fn publish(&self, room: &str, body: Value) -> anyhow::Result<Value> {
        let path = format!("/rooms/{}/messages", encode_path(room));
        let (status, answer) = self.post(&path, body).await?;
        anyhow::ensure!(status == 201, "POST {path} answered {status}: {answer}");
        Ok(answer)
    }

    /// `GET /rooms/ROOM/messages?QUERY` (must be 200); returns the messages.
    pub async fn history(&self, room: &str, query: &str) -> anyhow::Result<Vec<Value>> {
        let path = format!("/rooms/{}/messages?{query}", encode_path(room));
        let (status, answer) = self.get(&path).await?;
        anyhow::ensure!(status == 200, "GET {path} answered {status}: {answer}");
        anyhow::ensure!(answer["room"] == room, "GET {path} answered {answer}");
        match answer.get("messages") {
            Some(Value::Array(messages)) => Ok(messages.clone()),
            _ => anyhow::bail!("GET {path} answered without messages: {answer}"),
        }
    }
}

/// Percent-encodes a room name or user id for an API path (`:` included).
pub fn encode_path(segment: &str) -> String {
    encode(segment).replace('+', "%20")
}

/// The `id`s of a list of history messages.
pub fn ids(messages: &[Value]) -> Vec<u64> {
    messages.iter().filter_map(|m| m["id"].as_u64()).collect()
}

/// Waits until session `sid` has ended (its grace ran out): `POST
/// /v1/send` with a bare `ack` (which neither attaches nor answers) is
/// refused with 404. Fails after `grace` plus five seconds.
pub async fn wait_session_ended(addr: SocketAddr, sid: &str, grace: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + grace + Duration::from_secs(5);
    loop {
        let (status, body) = crate::upstream::post_send(addr, sid, r#"{"type":"ack","seq":0}"#, None).await?;
        match status {
            404 => return Ok(()),
            200 if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            200 => anyhow::bail!("session {sid} still alive {:?} after grace", grace),
            other => anyhow::bail!("POST /v1/send answered {other}: {body}"),
        }
    }
}

/// The text of `GET /metrics` (which must answer 200).
pub async fn scrape_metrics(addr: SocketAddr) -> anyhow::Result<String> {
    let response = HttpRequest::get("/metrics").send(addr).await?;
    anyhow::ensure!(response.status == 200, "/metrics answered {}", response.status);
    response.text().await
}

/// The value of the sample `series` (a metric name with its labels exactly
/// as exposed, e.g. `switchboard_connections{transport="ws"}`), if present.
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines().filter(|line| !line.starts_with('#')).find_map(|line| {
        let (name, value) = line.rsplit_once(' ')?;
        (name == series).then(|| value.parse().ok())?
    })
}
