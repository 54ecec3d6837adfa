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
//! - `processes`: [`RedisProcess`], a private `redis-server` on a free
//!   port, with an append-only file fsynced on every write, that a test
//!   stops and starts again (same port, same data); [`Cluster`] and
//!   [`Node`], `switchboard serve` processes on free loopback ports,
//!   configured by [`ClusterOptions`] (a key prefix unique to the test, so
//!   tests can share the machine's Redis).
//! - `member`: [`Member`], one user's client that may attach through any
//!   node and send through any node ([`Sender`]); it resumes with `sid` +
//!   `last`, fails over to the next node when its node stops answering,
//!   records every protocol violation it sees, and reports [`SessionGone`]
//!   when the session is gone so the caller can start a new one and
//!   recover from history.
//! - `message_log`: [`MessageLog`], one room's messages as a client holds
//!   them, from live delivery and from `history` recovery, each path
//!   checked.
//! - Here: [`new_session`] (a session of a named user, created with one
//!   short poll) and [`full_history`] (a room's history through the API).

mod member;
mod message_log;
mod processes;

use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::Value;

use crate::http::{encode, HttpRequest};
use crate::im::Api;

pub use member::{GoneAnswer, Member, Sender, SessionGone};
pub use message_log::MessageLog;
pub use processes::{Cluster, ClusterOptions, Node, RedisProcess};

/// The machine's Redis, shared by the tests that do not stop Redis (each
/// under its own key prefix).
pub const SHARED_REDIS_URL: &str = "redis://127.0.0.1:6379";
/// The API key every cluster node is started with.
pub const API_KEY: &str = "cluster-test-key";
/// Largest `history` page (§1.3).
pub const HISTORY_PAGE: usize = 500;

/// Numbers what this process creates (ports aside), so names never repeat.
static COUNTER: AtomicU64 = AtomicU64::new(1);

fn next_number() -> u64 {
    COUNTER.fetch_add(1, Ordering::Relaxed)
}

/// A key prefix no other test (in this or another process) uses.
pub fn unique_prefix(test: &str) -> String {
    format!("sbtest:{test}:{}:{}:{:08x}:", std::process::id(), next_number(), rand::random::<u32>())
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("an ephemeral loopback port")
}

/// The whole history of `room` through the HTTP API of the node at `api`,
/// oldest first, paging with `after`.
pub async fn full_history(api: &Api, room: &str) -> anyhow::Result<Vec<Value>> {
    let mut all: Vec<Value> = Vec::new();
    loop {
        let after = all.last().and_then(|m| m["id"].as_u64()).unwrap_or(0);
        let page = api.history(room, &format!("after={after}&limit={HISTORY_PAGE}")).await?;
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
    anyhow::ensure!(status == 200, "new session of {user} on {addr}: HTTP {status} {body}");
    let frames: Vec<Value> = serde_json::from_str(&body)?;
    let welcome = match frames.as_slice() {
        [welcome] if welcome["type"] == "welcome" => welcome,
        _ => anyhow::bail!("a new poll session must answer [welcome], got {body}"),
    };
    anyhow::ensure!(welcome["user"] == user, "session of {user} welcomed as {welcome}");
    let field = |k: &str| welcome[k].as_str().unwrap_or_default().to_owned();
    Ok((field("sid"), field("id")))
}
