//! The processes of a multi-node test: a private `redis-server` and the
//! `switchboard serve` nodes, started on free ports and stopped by PID.

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{free_port, next_number, unique_prefix, API_KEY, SHARED_REDIS_URL};
use crate::http::HttpRequest;
use crate::im::Api;

/// How long a process gets to come up (or to exit after SIGTERM).
const PROCESS_DEADLINE: Duration = Duration::from_secs(15);

/// A free loopback port below the kernel's ephemeral range. Redis is
/// restarted on the same port, and a port from that range could be taken
/// meanwhile by any outgoing connection or `:0` listener; this one can
/// only be taken by someone choosing it on purpose.
fn stable_port() -> u16 {
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let floor = 10_000.min(ephemeral_low.saturating_sub(1_000));
    for _ in 0..100 {
        let port = rand::random_range(floor..ephemeral_low);
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    free_port()
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
        anyhow::ensure!(Instant::now() < until, "process {} still running after {deadline:?}", child.id());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// SIGKILL and reap, ignoring a process that is gone already.
/// SIGKILL to `child` (when it runs), then waits until it is gone.
async fn sigkill(child: Option<Child>) -> anyhow::Result<()> {
    if let Some(mut child) = child {
        let killed = send_signal(child.id(), "KILL");
        let exited = wait_exit(&mut child, PROCESS_DEADLINE).await;
        if killed.is_err() || exited.is_err() {
            kill_and_reap(&mut child);
        }
        killed?;
        exited?;
    }
    Ok(())
}

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
        let mut redis = Self { port: 0, dir, child: None };
        let mut last_error = None;
        for _ in 0..5 {
            redis.port = stable_port();
            match redis.spawn().await {
                Ok(()) => return Ok(redis),
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.expect("five attempts").context("redis-server did not start"))
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
            let exited = match send_signal(child.id(), "TERM") {
                Ok(()) => wait_exit(&mut child, PROCESS_DEADLINE).await,
                Err(e) => Err(e),
            };
            if exited.is_err() {
                kill_and_reap(&mut child);
            }
            exited?;
        }
        Ok(())
    }

    /// Kills Redis with SIGKILL and waits until the process is gone.
    pub async fn kill(&mut self) -> anyhow::Result<()> {
        sigkill(self.child.take()).await
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
    matches!(tokio::time::timeout(Duration::from_secs(1), attempt).await, Ok(Some(())))
}

/// How the nodes of a [`Cluster`] are configured.
#[derive(Clone, Debug)]
pub struct ClusterOptions {
    /// The `switchboard` binary (`env!("CARGO_BIN_EXE_switchboard")`).
    pub binary: PathBuf,
    /// `--redis-url`.
    pub redis_url: String,
    /// `SWITCHBOARD_REDIS_KEY_PREFIX`; unique per test.
    pub key_prefix: String,
    /// `--node-ttl`.
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

    /// `switchboard serve` on `port`. The cluster settings are given as
    /// command-line flags (`--broker`, `--redis-url`, `--advertise`,
    /// `--node-ttl`), the rest as `SWITCHBOARD_*` variables, so every
    /// cluster test also proves that both layers reach the node.
    fn command(&self, port: u16) -> Command {
        let ms = |d: Duration| format!("{}ms", d.as_millis());
        let listen = format!("127.0.0.1:{port}");
        let mut command = Command::new(&self.binary);
        command.args(["serve", "--listen", &listen, "--advertise", &listen]);
        command.args(["--broker", "redis", "--redis-url", &self.redis_url, "--node-ttl", &ms(self.node_ttl)]);
        // Nothing of the test runner's own configuration may leak in.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("SWITCHBOARD_") {
                command.env_remove(key);
            }
        }
        command
            .env("SWITCHBOARD_REDIS_KEY_PREFIX", &self.key_prefix)
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
        command.stdin(Stdio::null()).stdout(Stdio::inherit()).stderr(Stdio::inherit());
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
            let mut node = Self { addr: SocketAddr::from(([127, 0, 0, 1], port)), child: Some(child) };
            match node.wait_healthy().await {
                Ok(()) => return Ok(node),
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.expect("three attempts").context("switchboard node did not start"))
    }

    async fn wait_healthy(&mut self) -> anyhow::Result<()> {
        let until = Instant::now() + PROCESS_DEADLINE;
        loop {
            let probe = tokio::time::timeout(Duration::from_secs(2), HttpRequest::get("/healthz").send(self.addr));
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
            anyhow::ensure!(Instant::now() < until, "node {} not healthy after {PROCESS_DEADLINE:?}", self.addr);
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
        self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// SIGKILL, like a machine that lost power; returns once it is gone.
    pub async fn kill(&mut self) -> anyhow::Result<()> {
        sigkill(self.child.take()).await
    }

    /// SIGTERM (graceful shutdown); returns the exit status.
    pub async fn terminate(&mut self) -> anyhow::Result<ExitStatus> {
        let mut child = self.child.take().ok_or_else(|| anyhow::anyhow!("node {} is not running", self.addr))?;
        let exited = match send_signal(child.id(), "TERM") {
            Ok(()) => wait_exit(&mut child, PROCESS_DEADLINE).await,
            Err(e) => Err(e),
        };
        if exited.is_err() {
            kill_and_reap(&mut child);
        }
        exited
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
        let mut cluster = Self { options, nodes: Vec::with_capacity(count) };
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

    /// Starts node `i` again on the same address, after it was killed or
    /// stopped: a machine that crashed and came back at once, under the
    /// same identity.
    pub async fn restart(&mut self, i: usize) -> anyhow::Result<()> {
        let node = &mut self.nodes[i];
        anyhow::ensure!(node.child.is_none(), "node {} is still running", node.addr);
        let child = self
            .options
            .command(node.addr.port())
            .spawn()
            .map_err(|e| anyhow::anyhow!("cannot run {}: {e}", self.options.binary.display()))?;
        node.child = Some(child);
        node.wait_healthy().await
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // All at once, so the nodes shut down side by side.
        for pid in self.nodes.iter().filter_map(Node::pid) {
            let _ = send_signal(pid, "TERM");
        }
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
