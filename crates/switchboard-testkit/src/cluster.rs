//! Many nodes on one Redis, as real processes, and clients that move
//! between them.
//!
//! The multi-node tests run the `switchboard` binary itself (several
//! `switchboard serve` processes sharing one Redis), so that a node can be
//! killed with SIGKILL like a crashed machine and Redis can be stopped and
//! started again under the nodes' feet. Every process is stopped by its PID
//! and every Redis key the test wrote is deleted when the guard drops, also
//! when the test panics.
//!
//! - [`RedisProcess`]: a private `redis-server` on a free port, with an
//!   append-only file fsynced on every write, that a test stops and starts
//!   again (same port, same data).
//! - [`Cluster`] and [`Node`]: `switchboard serve` processes on free
//!   loopback ports, configured by [`ClusterOptions`] (a key prefix unique
//!   to the test, so tests can share the machine's Redis).
//! - [`new_session`]: a session of a named user, created with one short poll.
//! - [`Member`]: one user's client that may attach through any node and
//!   send through any node; it resumes with `sid` + `last`, fails over to
//!   the next node when its node stops answering, records every protocol
//!   violation it sees, and reports [`SessionGone`] when the session is
//!   gone so the caller can start a new one and recover from history.
//! - [`MessageLog`]: one room's messages as a client holds them, from live
//!   delivery and from `history` recovery, each path checked.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::downstream::{Attach, Downstream, Ended, Refused, Transport};
use crate::frame::Frame;
use crate::http::{encode, HttpRequest};
use crate::im::Api;
use crate::upstream::post_send;

/// The machine's Redis, shared by the tests that do not stop Redis (each
/// under its own key prefix).
pub const SHARED_REDIS_URL: &str = "redis://127.0.0.1:6379";
/// The API key every cluster node is started with.
pub const API_KEY: &str = "cluster-test-key";
/// How long a process gets to come up (or to exit after SIGTERM).
const PROCESS_DEADLINE: Duration = Duration::from_secs(15);
/// How long a [`Member`] keeps trying to reach some node before it fails.
const ATTACH_DEADLINE: Duration = Duration::from_secs(10);
/// The pause between two attachment attempts.
const ATTACH_PAUSE: Duration = Duration::from_millis(20);
/// A streaming [`Member`] acknowledges after this many frames.
const ACK_EVERY: u64 = 32;
/// Largest `history` page (§1.3).
pub const HISTORY_PAGE: usize = 500;

/// Numbers what this process creates (ports aside), so names never repeat.
static COUNTER: AtomicU64 = AtomicU64::new(1);

fn next_number() -> u64 {
    COUNTER.fetch_add(1, Ordering::Relaxed)
}

/// A key prefix no other test (in this or another process) uses.
pub fn unique_prefix(test: &str) -> String {
    format!(
        "sbtest:{test}:{}:{}:{:08x}:",
        std::process::id(),
        next_number(),
        rand::random::<u32>()
    )
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("an ephemeral loopback port")
}

/// Sends `signal` (`TERM`, `KILL`) to `pid` with kill(1).
fn send_signal(pid: u32, signal: &str) -> anyhow::Result<()> {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()?;
    anyhow::ensure!(status.success(), "kill -{signal} {pid} failed: {status}");
    Ok(())
}

/// Waits (without blocking the runtime) for `child` to exit.
async fn wait_exit(child: &mut Child, deadline: Duration) -> anyhow::Result<ExitStatus> {
    let until = Instant::now() + deadline;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        anyhow::ensure!(
            Instant::now() < until,
            "process {} still running after {deadline:?}",
            child.id()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// SIGKILL and reap, ignoring a process that is gone already.
fn kill_and_reap(child: &mut Child) {
    if let Ok(None) = child.try_wait() {
        let _ = child.kill();
    }
    let _ = child.wait();
}

/// A private `redis-server` for one test.
pub struct RedisProcess {
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl RedisProcess {
    /// Starts `redis-server` on a free port, with an append-only file that
    /// is fsynced on every write, in a fresh directory.
    pub async fn start() -> anyhow::Result<Self> {
        let dir = std::env::temp_dir().join(format!(
            "switchboard-redis-{}-{}-{:08x}",
            std::process::id(),
            next_number(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&dir)?;
        let mut redis = Self {
            port: 0,
            dir,
            child: None,
        };
        let mut last_error = None;
        for _ in 0..5 {
            redis.port = free_port();
            match redis.spawn().await {
                Ok(()) => return Ok(redis),
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error
            .expect("five attempts")
            .context("redis-server did not start"))
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Stops Redis with SIGTERM (it writes its append-only file and exits)
    /// and waits until the process is gone.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            send_signal(child.id(), "TERM")?;
            if let Err(e) = wait_exit(&mut child, PROCESS_DEADLINE).await {
                kill_and_reap(&mut child);
                return Err(e);
            }
        }
        Ok(())
    }

    /// Kills Redis with SIGKILL and waits until the process is gone.
    pub async fn kill(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            send_signal(child.id(), "KILL")?;
            wait_exit(&mut child, PROCESS_DEADLINE).await?;
        }
        Ok(())
    }

    /// Starts Redis again on the same port with the same data; returns once
    /// it answers `PING` (so the append-only file is loaded).
    pub async fn start_again(&mut self) -> anyhow::Result<()> {
        anyhow::ensure!(self.child.is_none(), "redis-server is still running");
        self.spawn().await
    }

    async fn spawn(&mut self) -> anyhow::Result<()> {
        let child = Command::new("redis-server")
            .arg("--port")
            .arg(self.port.to_string())
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "yes"])
            .args(["--appendfsync", "always"])
            .arg("--dir")
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| anyhow::anyhow!("cannot run redis-server: {e}"))?;
        self.child = Some(child);
        let until = Instant::now() + PROCESS_DEADLINE;
        loop {
            if ping(self.port).await {
                return Ok(());
            }
            let child = self.child.as_mut().expect("spawned");
            if let Some(status) = child.try_wait()? {
                self.child = None;
                anyhow::bail!("redis-server on port {} exited: {status}", self.port);
            }
            if Instant::now() > until {
                let mut child = self.child.take().expect("spawned");
                kill_and_reap(&mut child);
                anyhow::bail!("redis-server on port {} did not answer PING", self.port);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for RedisProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill_and_reap(&mut child);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Whether a Redis on `port` answers `PING` with `+PONG` (not `-LOADING`).
async fn ping(port: u16) -> bool {
    let attempt = async {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
        stream.write_all(b"PING\r\n").await.ok()?;
        let mut buf = [0u8; 64];
        let n = stream.read(&mut buf).await.ok()?;
        buf[..n].starts_with(b"+PONG").then_some(())
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(1), attempt).await,
        Ok(Some(()))
    )
}

/// How the nodes of a [`Cluster`] are configured.
#[derive(Clone, Debug)]
pub struct ClusterOptions {
    /// The `switchboard` binary (`env!("CARGO_BIN_EXE_switchboard")`).
    pub binary: PathBuf,
    /// `SWITCHBOARD_REDIS_URL`.
    pub redis_url: String,
    /// `SWITCHBOARD_REDIS_KEY_PREFIX`; unique per test.
    pub key_prefix: String,
    /// `SWITCHBOARD_NODE_TTL`.
    pub node_ttl: Duration,
    /// `SWITCHBOARD_GRACE`.
    pub grace: Duration,
    /// More `SWITCHBOARD_*` variables.
    pub env: Vec<(String, String)>,
}

impl ClusterOptions {
    /// Nodes on the machine's Redis under a fresh prefix named after
    /// `test`, with a 2 s node TTL, a 30 s grace, the API key [`API_KEY`]
    /// and no rate limits (the tests publish faster than people type).
    pub fn new(binary: impl Into<PathBuf>, test: &str) -> Self {
        Self {
            binary: binary.into(),
            redis_url: SHARED_REDIS_URL.to_owned(),
            key_prefix: unique_prefix(test),
            node_ttl: Duration::from_secs(2),
            grace: Duration::from_secs(30),
            env: Vec::new(),
        }
    }

    /// The same options on another Redis.
    pub fn redis(mut self, url: &str) -> Self {
        self.redis_url = url.to_owned();
        self
    }

    fn command(&self, port: u16) -> Command {
        let mut command = Command::new(&self.binary);
        command.args(["serve", "--listen", &format!("127.0.0.1:{port}")]);
        // Nothing of the test runner's own configuration may leak in.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("SWITCHBOARD_") {
                command.env_remove(key);
            }
        }
        let ms = |d: Duration| format!("{}ms", d.as_millis());
        command
            .env("SWITCHBOARD_BROKER", "redis")
            .env("SWITCHBOARD_REDIS_URL", &self.redis_url)
            .env("SWITCHBOARD_REDIS_KEY_PREFIX", &self.key_prefix)
            .env("SWITCHBOARD_NODE_TTL", ms(self.node_ttl))
            .env("SWITCHBOARD_GRACE", ms(self.grace))
            .env("SWITCHBOARD_LOG", "warn")
            .env("SWITCHBOARD_API_KEY", API_KEY)
            .env("SWITCHBOARD_RATE_MESSAGES", "1000000000")
            .env("SWITCHBOARD_RATE_TYPING", "1000000000")
            .env("SWITCHBOARD_RATE_JOINS", "1000000000");
        for (key, value) in &self.env {
            command.env(key, value);
        }
        // The node's log (warnings and up) goes where the test's output
        // goes: shown when a test fails.
        command
            .stdin(Stdio::null())
            .stdout(Stdio::inherit())
            .stderr(Stdio::inherit());
        command
    }
}

/// One `switchboard serve` process.
pub struct Node {
    addr: SocketAddr,
    child: Option<Child>,
}

impl Node {
    /// Starts a node on a free loopback port and waits for `/healthz`.
    pub async fn start(options: &ClusterOptions) -> anyhow::Result<Self> {
        let mut last_error = None;
        for _ in 0..3 {
            let port = free_port();
            let child = options
                .command(port)
                .spawn()
                .map_err(|e| anyhow::anyhow!("cannot run {}: {e}", options.binary.display()))?;
            let mut node = Self {
                addr: SocketAddr::from(([127, 0, 0, 1], port)),
                child: Some(child),
            };
            match node.wait_healthy().await {
                Ok(()) => return Ok(node),
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error
            .expect("three attempts")
            .context("switchboard node did not start"))
    }

    async fn wait_healthy(&mut self) -> anyhow::Result<()> {
        let until = Instant::now() + PROCESS_DEADLINE;
        loop {
            let probe = tokio::time::timeout(
                Duration::from_secs(2),
                HttpRequest::get("/healthz").send(self.addr),
            );
            if let Ok(Ok(response)) = probe.await {
                if response.status == 200 {
                    return Ok(());
                }
            }
            let child = self.child.as_mut().expect("spawned");
            if let Some(status) = child.try_wait()? {
                self.child = None;
                anyhow::bail!("node {} exited before it was healthy: {status}", self.addr);
            }
            anyhow::ensure!(
                Instant::now() < until,
                "node {} not healthy after {PROCESS_DEADLINE:?}",
                self.addr
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The address it listens on (and advertises to the other nodes).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the process still runs.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// SIGKILL, like a machine that lost power; returns once it is gone.
    pub async fn kill(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            send_signal(child.id(), "KILL")?;
            wait_exit(&mut child, PROCESS_DEADLINE).await?;
        }
        Ok(())
    }

    /// SIGTERM (graceful shutdown); returns the exit status.
    pub async fn terminate(&mut self) -> anyhow::Result<ExitStatus> {
        let mut child = self
            .child
            .take()
            .ok_or_else(|| anyhow::anyhow!("node {} is not running", self.addr))?;
        send_signal(child.id(), "TERM")?;
        match wait_exit(&mut child, PROCESS_DEADLINE).await {
            Ok(status) => Ok(status),
            Err(e) => {
                kill_and_reap(&mut child);
                Err(e)
            }
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = send_signal(child.id(), "TERM");
            let until = Instant::now() + Duration::from_secs(3);
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(10));
            }
            kill_and_reap(&mut child);
        }
    }
}

/// Several nodes on one Redis under one key prefix. Dropping it stops every
/// node and deletes the prefix's keys.
pub struct Cluster {
    options: ClusterOptions,
    nodes: Vec<Node>,
}

impl Cluster {
    /// Starts `count` nodes.
    pub async fn start(options: ClusterOptions, count: usize) -> anyhow::Result<Self> {
        let mut cluster = Self {
            options,
            nodes: Vec::with_capacity(count),
        };
        for _ in 0..count {
            let node = Node::start(&cluster.options).await?;
            cluster.nodes.push(node);
        }
        Ok(cluster)
    }

    /// The options the nodes run with.
    pub fn options(&self) -> &ClusterOptions {
        &self.options
    }

    /// Node `i`.
    pub fn node(&mut self, i: usize) -> &mut Node {
        &mut self.nodes[i]
    }

    /// The address of node `i`.
    pub fn addr(&self, i: usize) -> SocketAddr {
        self.nodes[i].addr()
    }

    /// Every node's address, in order.
    pub fn addrs(&self) -> Vec<SocketAddr> {
        self.nodes.iter().map(Node::addr).collect()
    }

    /// The HTTP API of node `i`, with the key.
    pub fn api(&self, i: usize) -> Api {
        Api::new(self.addr(i), Some(API_KEY))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.nodes.clear();
        // Best effort: a Redis that is down has nothing to clean.
        let script = "local n = 0 for _, k in ipairs(redis.call('KEYS', ARGV[1])) do \
                      redis.call('DEL', k) n = n + 1 end return n";
        let _ = Command::new("redis-cli")
            .args(["-u", &self.options.redis_url, "EVAL", script, "0"])
            .arg(format!("{}*", self.options.key_prefix))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// The whole history of `room` through the HTTP API of the node at `api`,
/// oldest first, paging with `after`.
pub async fn full_history(api: &Api, room: &str) -> anyhow::Result<Vec<Value>> {
    let mut all: Vec<Value> = Vec::new();
    loop {
        let after = all.last().and_then(|m| m["id"].as_u64()).unwrap_or(0);
        let page = api
            .history(room, &format!("after={after}&limit={HISTORY_PAGE}"))
            .await?;
        let done = page.len() < HISTORY_PAGE;
        all.extend(page);
        if done {
            return Ok(all);
        }
    }
}

/// Creates a session of development-mode user `user` on the node at
/// `addr` with one short poll (`[welcome]`); returns its `sid` and public
/// `id`. The session then lives for the grace period.
pub async fn new_session(addr: SocketAddr, user: &str) -> anyhow::Result<(String, String)> {
    let path = format!("/v1/poll?name={}&last=0&wait=0", encode(user));
    let response = HttpRequest::get(path).send(addr).await?;
    let status = response.status.as_u16();
    let body = response.text().await?;
    anyhow::ensure!(
        status == 200,
        "new session of {user} on {addr}: HTTP {status} {body}"
    );
    let frames: Vec<Value> = serde_json::from_str(&body)?;
    let welcome = match frames.as_slice() {
        [welcome] if welcome["type"] == "welcome" => welcome,
        _ => anyhow::bail!("a new poll session must answer [welcome], got {body}"),
    };
    anyhow::ensure!(
        welcome["user"] == user,
        "session of {user} welcomed as {welcome}"
    );
    let field = |k: &str| welcome[k].as_str().unwrap_or_default().to_owned();
    Ok((field("sid"), field("id")))
}

/// `POST /v1/send` for one session to any node, with `cid`s of its own.
/// Clones share the `cid` counter.
#[derive(Clone, Debug)]
pub struct Sender {
    sid: Arc<str>,
    prefix: Arc<str>,
    cids: Arc<AtomicU64>,
}

impl Sender {
    /// The upstream of session `sid`; `cid`s are `{user}.{n}-{k}`, unique in
    /// this process.
    pub fn new(sid: &str, user: &str) -> Self {
        Self {
            sid: sid.into(),
            prefix: format!("{user}.{}", next_number()).into(),
            cids: Arc::new(AtomicU64::new(0)),
        }
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
                Err(e) if Instant::now() > until => {
                    return Err(e.context(format!("POST /v1/send to {addr}")))
                }
                Err(_) => tokio::time::sleep(ATTACH_PAUSE).await,
            }
        }
    }

    /// Sends frames (as one JSON array) to `addr`, giving each without a
    /// `cid` a fresh one (but `ack`s); must be answered 200 with all
    /// accepted. Returns the `cid`s in order.
    pub async fn send(
        &self,
        addr: SocketAddr,
        mut frames: Vec<Value>,
    ) -> anyhow::Result<Vec<String>> {
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
        let (status, answer) = self.post(addr, &Value::Array(frames).to_string()).await?;
        anyhow::ensure!(
            status == 200 && answer["accepted"] == json!(count),
            "POST /v1/send of {count} frames to {addr} answered {status} {answer}"
        );
        Ok(cids)
    }

    /// Sends one frame to `addr`; returns its `cid`.
    pub async fn send_one(&self, addr: SocketAddr, frame: Value) -> anyhow::Result<String> {
        let mut cids = self.send(addr, vec![frame]).await?;
        cids.pop()
            .ok_or_else(|| anyhow::anyhow!("a frame without cid"))
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
                write!(
                    f,
                    "session {} gone: {} answered {frame}",
                    self.sid, self.node
                )
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
    violations: Vec<String>,
}

impl Member {
    /// A new session of `user` created on node `home`; its downstream will
    /// attach (at the first [`Member::recv`]) through node `via` over
    /// `transport` (WebSocket, SSE, stream, htmlfile, long or short poll).
    pub async fn create(
        nodes: &[SocketAddr],
        home: usize,
        via: usize,
        user: &str,
        transport: Transport,
    ) -> anyhow::Result<Self> {
        anyhow::ensure!(
            !matches!(transport, Transport::Jsonp),
            "Member does not speak JSONP"
        );
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
            if matches!(self.transport, Transport::LongPoll | Transport::ShortPoll) {
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
        anyhow::ensure!(
            answer.typ() == "ack",
            "{} join {room} answered {answer}",
            self.user
        );
        Ok(before)
    }

    /// Asks `history` of `room` after message `after`, page by page, until
    /// the end; returns the messages (oldest first) and every other frame
    /// that arrived meanwhile, in order.
    pub async fn recover(
        &mut self,
        room: &str,
        after: u64,
    ) -> anyhow::Result<(Vec<Value>, Vec<Frame>)> {
        let mut messages: Vec<Value> = Vec::new();
        let mut others = Vec::new();
        loop {
            let from = messages
                .last()
                .and_then(|m| m["id"].as_u64())
                .unwrap_or(after);
            let cid = self
                .send(
                    json!({"type": "history", "room": room, "after": from, "limit": HISTORY_PAGE}),
                )
                .await?;
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
            let mut path = format!("/v1/poll?sid={}&last={}", encode(&self.sid), self.last);
            if self.transport == Transport::ShortPoll {
                path.push_str("&wait=0");
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
                    let frames: Vec<Value> = serde_json::from_str(&body).map_err(|e| {
                        anyhow::anyhow!("poll body is not a JSON array ({e}): {body:?}")
                    })?;
                    return frames.into_iter().map(Frame::from_value).collect();
                }
                Ok((status, body)) => return Err(self.gone_http(addr, status, &body)),
                Err(e) => {
                    anyhow::ensure!(
                        Instant::now() < until,
                        "{}: no node answered a poll: {e:#}",
                        self.user
                    );
                    self.node = (self.node + 1) % self.nodes.len();
                    tokio::time::sleep(ATTACH_PAUSE).await;
                }
            }
        }
    }

    fn gone_http(&mut self, addr: SocketAddr, status: u16, body: &str) -> anyhow::Error {
        self.stream = None;
        SessionGone {
            sid: self.sid.clone(),
            node: addr,
            answer: GoneAnswer::Http {
                status,
                body: body.to_owned(),
            },
        }
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
                    Some(4004) => Err(SessionGone {
                        sid: self.sid.clone(),
                        node: self.node(),
                        answer: GoneAnswer::Close(frame),
                    }
                    .into()),
                    Some(4001 | 4002) => Ok(None),
                    _ => {
                        self.violations
                            .push(format!("{}: unexpected close: {frame}", self.user));
                        Ok(None)
                    }
                }
            }
            _ => {
                self.violations.push(format!(
                    "{}: unexpected control frame (session {}): {frame}",
                    self.user, self.sid
                ));
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
            let _ = post_send(
                addr,
                sender.sid(),
                json!({"type": "ack", "seq": seq}).to_string(),
                None,
            )
            .await;
        });
    }
}

/// One room's messages as a client holds them.
///
/// Live `msg` frames must come in increasing `id` order within a session
/// (so never twice); `history` pages must be in increasing `id` order; a
/// message held from both paths must be the same message. Overlap between
/// a new session's live messages and its history recovery is normal (the
/// client drops one copy by `id`) and only counted.
#[derive(Debug, Default)]
pub struct MessageLog {
    room: String,
    held: BTreeMap<u64, Value>,
    session_last: u64,
    live: usize,
    recovered: usize,
    overlaps: usize,
    problems: Vec<String>,
}

impl MessageLog {
    /// An empty log of `room`.
    pub fn new(room: &str) -> Self {
        Self {
            room: room.to_owned(),
            ..Self::default()
        }
    }

    /// The comparable part of a message: what history stores.
    fn essence(message: &Value) -> Value {
        json!({
            "ts": message["ts"],
            "user": message["user"],
            "name": message["name"],
            "data": message["data"],
        })
    }

    fn hold(&mut self, id: u64, message: &Value, how: &str) {
        let essence = Self::essence(message);
        match self.held.get(&id) {
            Some(held) if *held != essence => self.problems.push(format!(
                "message {id} {how} differs from the one held: {essence} vs {held}"
            )),
            Some(_) => self.overlaps += 1,
            None => {
                self.held.insert(id, essence);
            }
        }
    }

    /// A frame delivered live; ignored unless it is a `msg` of the room.
    /// Returns the message id when it was one.
    pub fn live(&mut self, frame: &Frame) -> Option<u64> {
        if frame.typ() != "msg" || frame.str("room") != Some(self.room.as_str()) {
            return None;
        }
        let Some(id) = frame.u64("id") else {
            self.problems.push(format!("msg without id: {frame}"));
            return None;
        };
        if id <= self.session_last {
            self.problems.push(format!(
                "live msg {id} after {} in one session (repeated or out of order): {frame}",
                self.session_last
            ));
        }
        self.session_last = self.session_last.max(id);
        self.live += 1;
        self.hold(id, frame.value(), "delivered live");
        Some(id)
    }

    /// Messages recovered by `history` (one or more pages, oldest first).
    pub fn recovered(&mut self, messages: &[Value]) {
        let mut previous = 0;
        for message in messages {
            let Some(id) = message["id"].as_u64() else {
                self.problems
                    .push(format!("history message without id: {message}"));
                continue;
            };
            if id <= previous {
                self.problems.push(format!(
                    "history message {id} after {previous} (repeated or out of order)"
                ));
            }
            previous = id;
            self.recovered += 1;
            self.hold(id, message, "recovered from history");
        }
    }

    /// A new session starts: its live messages start over.
    pub fn new_session(&mut self) {
        self.session_last = 0;
    }

    /// The highest message id held (0 when none).
    pub fn last_id(&self) -> u64 {
        self.held.keys().next_back().copied().unwrap_or(0)
    }

    /// Every id held, increasing.
    pub fn ids(&self) -> Vec<u64> {
        self.held.keys().copied().collect()
    }

    /// A held message (`ts`, `user`, `name`, `data`).
    pub fn get(&self, id: u64) -> Option<&Value> {
        self.held.get(&id)
    }

    /// Whether some held message has this `data`.
    pub fn holds_data(&self, data: &Value) -> bool {
        self.held.values().any(|m| m["data"] == *data)
    }

    /// Messages delivered live, recovered from history, and held twice.
    pub fn counts(&self) -> (usize, usize, usize) {
        (self.live, self.recovered, self.overlaps)
    }

    /// What was wrong (empty when all was well).
    pub fn problems(&self) -> &[String] {
        &self.problems
    }

    /// Checks the log holds exactly `history` (the room's whole history
    /// from the store), message for message.
    pub fn matches_history(&self, history: &[Value]) -> anyhow::Result<()> {
        let expected: BTreeMap<u64, Value> = history
            .iter()
            .filter_map(|m| Some((m["id"].as_u64()?, Self::essence(m))))
            .collect();
        let missing: Vec<u64> = expected
            .keys()
            .filter(|id| !self.held.contains_key(id))
            .copied()
            .collect();
        let extra: Vec<u64> = self
            .held
            .keys()
            .filter(|id| !expected.contains_key(id))
            .copied()
            .collect();
        anyhow::ensure!(
            missing.is_empty() && extra.is_empty(),
            "room {}: missing {missing:?}, not in history {extra:?}",
            self.room
        );
        for (id, message) in &expected {
            anyhow::ensure!(
                self.held.get(id) == Some(message),
                "room {} message {id}: held {:?}, history has {message}",
                self.room,
                self.held.get(id)
            );
        }
        Ok(())
    }
}
