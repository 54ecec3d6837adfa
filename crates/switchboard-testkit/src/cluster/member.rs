//! [`Member`]: one user's client on a cluster, and its upstream
//! [`Sender`].

use std::collections::VecDeque;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{new_session, next_number, HISTORY_PAGE};
use crate::downstream::{unwrap_jsonp, Attach, Downstream, Ended, Refused, Transport, DEFAULT_CALLBACK};
use crate::frame::Frame;
use crate::http::{encode, HttpRequest};
use crate::upstream::post_send;

/// How long a [`Member`] keeps trying to reach some node before it fails.
const ATTACH_DEADLINE: Duration = Duration::from_secs(10);
/// The pause between two attachment attempts.
const ATTACH_PAUSE: Duration = Duration::from_millis(20);
/// A streaming [`Member`] acknowledges after this many frames.
const ACK_EVERY: u64 = 32;
/// The pause before trying again after a "try again" answer (`close` 4500
/// on a downstream, HTTP 503 with code 4500 on `POST /v1/send`).
const UNAVAILABLE_PAUSE: Duration = Duration::from_millis(100);

/// `POST /v1/send` for one session to any node, with `cid`s of its own.
/// Clones share the `cid` counter.
#[derive(Clone, Debug)]
pub struct Sender {
    sid: Arc<str>,
    prefix: Arc<str>,
    cids: Arc<AtomicU64>,
    unavailable: Arc<AtomicU64>,
}

impl Sender {
    /// The upstream of session `sid`; `cid`s are `{user}.{n}-{k}`, unique in
    /// this process.
    pub fn new(sid: &str, user: &str) -> Self {
        Self {
            sid: sid.into(),
            prefix: format!("{user}.{}", next_number()).into(),
            cids: Arc::new(AtomicU64::new(0)),
            unavailable: Arc::new(AtomicU64::new(0)),
        }
    }

    /// How many POSTs were answered "try again" (503, code 4500) and sent
    /// again.
    pub fn unavailable(&self) -> u64 {
        self.unavailable.load(Ordering::Relaxed)
    }

    /// The session id.
    pub fn sid(&self) -> &str {
        &self.sid
    }

    /// A fresh `cid`.
    pub fn next_cid(&self) -> String {
        let n = self.cids.fetch_add(1, Ordering::Relaxed) + 1;
        format!("{}-{n}", self.prefix)
    }

    /// One POST of `body` to `addr`, retried while the connection breaks
    /// (not while the server answers): the status and the body.
    pub async fn post(&self, addr: SocketAddr, body: &str) -> anyhow::Result<(u16, Value)> {
        let until = Instant::now() + ATTACH_DEADLINE;
        loop {
            match post_send(addr, &self.sid, body.to_owned(), None).await {
                Ok(answer) => return Ok(answer),
                Err(e) if Instant::now() > until => return Err(e.context(format!("POST /v1/send to {addr}"))),
                Err(_) => tokio::time::sleep(ATTACH_PAUSE).await,
            }
        }
    }

    /// Sends frames (as one JSON array) to `addr`, giving each without a
    /// `cid` a fresh one (but `ack`s); must be answered 200 with all
    /// accepted, after sending again (same `cid`s) while the answer is
    /// "try again" (503, code 4500). Returns the `cid`s in order.
    pub async fn send(&self, addr: SocketAddr, mut frames: Vec<Value>) -> anyhow::Result<Vec<String>> {
        let mut cids = Vec::with_capacity(frames.len());
        for frame in &mut frames {
            if frame["type"] == "ack" {
                continue;
            }
            if frame.get("cid").is_none() {
                frame["cid"] = Value::String(self.next_cid());
            }
            cids.push(frame["cid"].as_str().unwrap_or_default().to_owned());
        }
        let count = frames.len();
        let body = Value::Array(frames).to_string();
        let until = Instant::now() + ATTACH_DEADLINE;
        let (status, answer) = loop {
            let (status, answer) = self.post(addr, &body).await?;
            if status != 503 || answer["code"] != 4500 || Instant::now() > until {
                break (status, answer);
            }
            self.unavailable.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(UNAVAILABLE_PAUSE).await;
        };
        anyhow::ensure!(
            status == 200 && answer["accepted"] == json!(count),
            "POST /v1/send of {count} frames to {addr} answered {status} {answer}"
        );
        Ok(cids)
    }

    /// Sends one frame to `addr`; returns its `cid`.
    pub async fn send_one(&self, addr: SocketAddr, frame: Value) -> anyhow::Result<String> {
        let mut cids = self.send(addr, vec![frame]).await?;
        cids.pop().ok_or_else(|| anyhow::anyhow!("a frame without cid"))
    }
}

/// How the server said that a [`Member`]'s session is gone.
#[derive(Clone, Debug)]
pub enum GoneAnswer {
    /// A `close` frame (4004 is what §2 documents).
    Close(Frame),
    /// The downstream request was refused with an HTTP status.
    Http {
        /// The status.
        status: u16,
        /// The body.
        body: String,
    },
}

/// The session of a [`Member`] is gone: a new one must be started (and the
/// rooms recovered from history).
#[derive(Clone, Debug)]
pub struct SessionGone {
    /// The session that is gone.
    pub sid: String,
    /// The node that said so.
    pub node: SocketAddr,
    /// What it answered.
    pub answer: GoneAnswer,
}

impl SessionGone {
    /// True when the answer is the documented one: `close` 4004 on the
    /// downstream.
    pub fn is_close_4004(&self) -> bool {
        matches!(&self.answer, GoneAnswer::Close(f) if f.is_close(4004))
    }
}

impl fmt::Display for SessionGone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.answer {
            GoneAnswer::Close(frame) => {
                write!(f, "session {} gone: {} answered {frame}", self.sid, self.node)
            }
            GoneAnswer::Http { status, body } => write!(
                f,
                "session {} gone: {} answered the downstream request with HTTP {status} {body}",
                self.sid, self.node
            ),
        }
    }
}

impl std::error::Error for SessionGone {}

/// One user's client on a cluster: one session at a time, attached over
/// one transport through any node.
///
/// Streaming attachments stay on their node until cut ([`Member::move_to`]
/// or a broken connection); poll requests can rotate through the nodes, one
/// node per request ([`Member::rotate_polls`]). When a node refuses
/// connections the member tries the next one, as a load balancer would.
pub struct Member {
    user: String,
    transport: Transport,
    nodes: Vec<SocketAddr>,
    node: usize,
    rotate_polls: bool,
    sid: String,
    id: String,
    sender: Sender,
    last: u64,
    acked: u64,
    stream: Option<Box<dyn Downstream>>,
    fresh: bool,
    queue: VecDeque<Frame>,
    use_last_event_id: bool,
    sessions: usize,
    attachments: usize,
    /// Downstream answers "try again" (`close` 4500) so far.
    unavailable: usize,
    /// The next attachment waits [`UNAVAILABLE_PAUSE`] first.
    pause: bool,
    violations: Vec<String>,
}

impl Member {
    /// A new session of `user` created on node `home`; its downstream will
    /// attach (at the first [`Member::recv`]) through node `via` over
    /// `transport` (any of [`Transport::ALL`]).
    pub async fn create(
        nodes: &[SocketAddr],
        home: usize,
        via: usize,
        user: &str,
        transport: Transport,
    ) -> anyhow::Result<Self> {
        let (sid, id) = new_session(nodes[home], user).await?;
        Ok(Self {
            user: user.to_owned(),
            transport,
            nodes: nodes.to_vec(),
            node: via,
            rotate_polls: false,
            sender: Sender::new(&sid, user),
            sid,
            id,
            last: 0,
            acked: 0,
            stream: None,
            fresh: false,
            queue: VecDeque::new(),
            use_last_event_id: false,
            sessions: 1,
            attachments: 0,
            unavailable: 0,
            pause: false,
            violations: Vec::new(),
        })
    }

    /// The user id.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The current session id.
    pub fn sid(&self) -> &str {
        &self.sid
    }

    /// The current session's public id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The highest `seq` processed in the current session.
    pub fn last(&self) -> u64 {
        self.last
    }

    /// The node the next downstream request goes to.
    pub fn node(&self) -> SocketAddr {
        self.nodes[self.node]
    }

    /// The index of that node.
    pub fn node_index(&self) -> usize {
        self.node
    }

    /// The current session's upstream.
    pub fn sender(&self) -> &Sender {
        &self.sender
    }

    /// How many sessions this member has had.
    pub fn sessions(&self) -> usize {
        self.sessions
    }

    /// How many downstream attachments (poll requests included) it opened.
    pub fn attachments(&self) -> usize {
        self.attachments
    }

    /// How many times the server answered "try again" (`close` 4500 on a
    /// downstream, 503 on `POST /v1/send`), the session living on.
    pub fn unavailable(&self) -> usize {
        self.unavailable + self.sender.unavailable() as usize
    }

    /// Every protocol violation seen so far (empty when all was well).
    pub fn violations(&self) -> &[String] {
        &self.violations
    }

    /// Records a violation the caller found.
    pub fn violation(&mut self, what: String) {
        self.violations.push(what);
    }

    /// Sends each poll request to the next node in turn.
    pub fn rotate_polls(&mut self, rotate: bool) {
        self.rotate_polls = rotate;
    }

    /// Resume SSE with `Last-Event-ID` (and `last=0`) instead of `last`.
    pub fn use_last_event_id(&mut self, yes: bool) {
        self.use_last_event_id = yes;
    }

    /// Drops the current attachment without a word (a broken network).
    pub fn cut(&mut self) {
        self.stream = None;
    }

    /// Drops the current attachment; the next one goes through node `i`.
    pub fn move_to(&mut self, i: usize) {
        self.stream = None;
        self.node = i % self.nodes.len();
    }

    /// Starts a new session of the same user on the current node, after
    /// [`SessionGone`]. The new session auto-joins the user's rooms.
    pub async fn renew(&mut self) -> anyhow::Result<()> {
        let (sid, id) = new_session(self.node(), &self.user).await?;
        self.sender = Sender::new(&sid, &self.user);
        self.sid = sid;
        self.id = id;
        self.last = 0;
        self.acked = 0;
        self.stream = None;
        self.queue.clear();
        self.sessions += 1;
        Ok(())
    }

    /// Sends one frame through the current node; returns its `cid`.
    pub async fn send(&mut self, frame: Value) -> anyhow::Result<String> {
        let (sender, addr) = (self.sender.clone(), self.node());
        sender.send_one(addr, frame).await
    }

    /// The next sequenced frame of the session, in order; attaches,
    /// resumes and fails over as needed. Errors with [`SessionGone`] when
    /// the server says the session is gone.
    pub async fn recv(&mut self) -> anyhow::Result<Frame> {
        loop {
            if let Some(frame) = self.queue.pop_front() {
                if let Some(frame) = self.handle(frame)? {
                    return Ok(frame);
                }
                continue;
            }
            if std::mem::take(&mut self.pause) {
                tokio::time::sleep(UNAVAILABLE_PAUSE).await;
            }
            if matches!(self.transport, Transport::LongPoll | Transport::ShortPoll | Transport::Jsonp) {
                let frames = self.poll().await?;
                if frames.is_empty() && self.transport == Transport::ShortPoll {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                self.queue.extend(frames);
                continue;
            }
            if self.stream.is_none() {
                self.attach().await?;
            }
            let stream = self.stream.as_mut().expect("attached");
            match stream.next_frame().await {
                Ok(frame) => {
                    if let Some(frame) = self.handle(frame)? {
                        return Ok(frame);
                    }
                }
                Err(e) if e.is::<Ended>() => self.stream = None,
                Err(_) => self.stream = None,
            }
        }
    }

    /// The next sequenced frame of type `typ` answering `cid`; the frames
    /// before it are returned too, in order.
    pub async fn answer(&mut self, cid: &str) -> anyhow::Result<(Frame, Vec<Frame>)> {
        let mut before = Vec::new();
        loop {
            let frame = self.recv().await?;
            if frame.cid() == Some(cid) && frame.typ() != "msg" {
                return Ok((frame, before));
            }
            before.push(frame);
        }
    }

    /// Joins `room` and waits for the `ack`; returns the frames before it.
    pub async fn join(&mut self, room: &str) -> anyhow::Result<Vec<Frame>> {
        let cid = self.send(json!({"type": "join", "room": room})).await?;
        let (answer, before) = self.answer(&cid).await?;
        anyhow::ensure!(answer.typ() == "ack", "{} join {room} answered {answer}", self.user);
        Ok(before)
    }

    /// Asks `history` of `room` after message `after`, page by page, until
    /// the end; returns the messages (oldest first) and every other frame
    /// that arrived meanwhile, in order.
    pub async fn recover(&mut self, room: &str, after: u64) -> anyhow::Result<(Vec<Value>, Vec<Frame>)> {
        let mut messages: Vec<Value> = Vec::new();
        let mut others = Vec::new();
        loop {
            let from = messages.last().and_then(|m| m["id"].as_u64()).unwrap_or(after);
            let cid = self.send(json!({"type": "history", "room": room, "after": from, "limit": HISTORY_PAGE})).await?;
            let (answer, before) = self.answer(&cid).await?;
            others.extend(before);
            anyhow::ensure!(
                answer.typ() == "history" && answer.str("room") == Some(room),
                "{} history of {room} after {from} answered {answer}",
                self.user
            );
            let page = answer.value()["messages"]
                .as_array()
                .cloned()
                .ok_or_else(|| anyhow::anyhow!("history without messages: {answer}"))?;
            let done = page.len() < HISTORY_PAGE;
            messages.extend(page);
            if done {
                return Ok((messages, others));
            }
        }
    }

    /// Opens a streaming attachment with `sid` + `last` through the current
    /// node, trying the next node while a node refuses connections.
    async fn attach(&mut self) -> anyhow::Result<()> {
        let until = Instant::now() + ATTACH_DEADLINE;
        loop {
            let mut attach = Attach::new(Some(&self.sid), self.last);
            if self.use_last_event_id && self.transport == Transport::Sse {
                attach.last = 0;
                attach.last_event_id = Some(self.last);
            }
            let addr = self.node();
            match self.transport.attach_with(addr, &attach).await {
                Ok(stream) => {
                    self.stream = Some(stream);
                    self.fresh = true;
                    self.attachments += 1;
                    // The resume's `last` acknowledged everything so far.
                    self.acked = self.last;
                    return Ok(());
                }
                Err(e) => {
                    if let Some(refused) = e.downcast_ref::<Refused>() {
                        return Err(self.gone_http(addr, refused.status, &refused.body));
                    }
                    anyhow::ensure!(
                        Instant::now() < until,
                        "{}: no node accepted a {} attachment: {e:#}",
                        self.user,
                        self.transport
                    );
                    self.node = (self.node + 1) % self.nodes.len();
                    tokio::time::sleep(ATTACH_PAUSE).await;
                }
            }
        }
    }

    /// One poll request with `sid` + `last`; fails over like
    /// [`Member::attach`].
    async fn poll(&mut self) -> anyhow::Result<Vec<Frame>> {
        let until = Instant::now() + ATTACH_DEADLINE;
        if self.rotate_polls {
            self.node = (self.node + 1) % self.nodes.len();
        }
        loop {
            let endpoint = if self.transport == Transport::Jsonp { "jsonp" } else { "poll" };
            let mut path = format!("/v1/{endpoint}?sid={}&last={}", encode(&self.sid), self.last);
            match self.transport {
                Transport::ShortPoll => path.push_str("&wait=0"),
                Transport::Jsonp => path.push_str(&format!("&callback={DEFAULT_CALLBACK}")),
                _ => {}
            }
            let addr = self.node();
            let attempt = async {
                let response = HttpRequest::get(path).send(addr).await?;
                let status = response.status.as_u16();
                let body = response.text().await?;
                anyhow::Ok((status, body))
            };
            match attempt.await {
                Ok((200, body)) => {
                    self.attachments += 1;
                    let body = match self.transport {
                        Transport::Jsonp => unwrap_jsonp(&body, DEFAULT_CALLBACK)?,
                        _ => body.as_str(),
                    };
                    let frames: Vec<Value> = serde_json::from_str(body)
                        .map_err(|e| anyhow::anyhow!("poll body is not a JSON array ({e}): {body:?}"))?;
                    return frames.into_iter().map(Frame::from_value).collect();
                }
                Ok((status, body)) => return Err(self.gone_http(addr, status, &body)),
                Err(e) => {
                    anyhow::ensure!(Instant::now() < until, "{}: no node answered a poll: {e:#}", self.user);
                    self.node = (self.node + 1) % self.nodes.len();
                    tokio::time::sleep(ATTACH_PAUSE).await;
                }
            }
        }
    }

    fn gone_http(&mut self, addr: SocketAddr, status: u16, body: &str) -> anyhow::Error {
        self.stream = None;
        SessionGone { sid: self.sid.clone(), node: addr, answer: GoneAnswer::Http { status, body: body.to_owned() } }
            .into()
    }

    /// Applies §2 to one frame; `Some` for a sequenced frame the caller
    /// gets.
    fn handle(&mut self, frame: Frame) -> anyhow::Result<Option<Frame>> {
        let first = std::mem::take(&mut self.fresh);
        if let Some(seq) = frame.seq() {
            if first && self.transport.is_streaming() {
                self.violations.push(format!(
                    "{}: a {} attachment did not start with welcome: {frame}",
                    self.user, self.transport
                ));
            }
            if seq <= self.last {
                self.violations.push(format!(
                    "{}: seq {seq} again after {} (session {}): {frame}",
                    self.user, self.last, self.sid
                ));
                return Ok(None);
            }
            if seq != self.last + 1 {
                self.violations.push(format!(
                    "{}: seq {seq} after {} without a gap (session {}): {frame}",
                    self.user, self.last, self.sid
                ));
            }
            self.last = seq;
            self.maybe_ack();
            return Ok(Some(frame));
        }
        match frame.typ() {
            "welcome" => {
                let ok = first
                    && self.transport.is_streaming()
                    && frame.str("sid") == Some(self.sid.as_str())
                    && frame.str("id") == Some(self.id.as_str())
                    && frame.str("user") == Some(self.user.as_str())
                    && frame.bool("resumed") == Some(true);
                if !ok {
                    self.violations.push(format!(
                        "{}: unexpected welcome on a {} attachment to session {}: {frame}",
                        self.user, self.transport, self.sid
                    ));
                }
                Ok(None)
            }
            "ping" => Ok(None),
            "close" => {
                self.stream = None;
                self.queue.clear();
                match frame.code() {
                    Some(4004) => {
                        Err(SessionGone { sid: self.sid.clone(), node: self.node(), answer: GoneAnswer::Close(frame) }
                            .into())
                    }
                    Some(4001 | 4002) => Ok(None),
                    // The session lives on, but this node cannot tell now
                    // (the cluster's Redis is away): resume after a pause.
                    Some(4500) => {
                        self.unavailable += 1;
                        self.pause = true;
                        Ok(None)
                    }
                    _ => {
                        self.violations.push(format!("{}: unexpected close: {frame}", self.user));
                        Ok(None)
                    }
                }
            }
            _ => {
                self.violations
                    .push(format!("{}: unexpected control frame (session {}): {frame}", self.user, self.sid));
                Ok(None)
            }
        }
    }

    /// Streaming attachments acknowledge now and then (§2); polls carry
    /// `last` in every request.
    fn maybe_ack(&mut self) {
        if !self.transport.is_streaming() || self.last - self.acked < ACK_EVERY {
            return;
        }
        self.acked = self.last;
        let (sender, addr, seq) = (self.sender.clone(), self.node(), self.last);
        tokio::spawn(async move {
            // A lost ack only delays freeing the outbox.
            let _ = post_send(addr, sender.sid(), json!({"type": "ack", "seq": seq}).to_string(), None).await;
        });
    }
}
