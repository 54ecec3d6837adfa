//! Upstream: `POST /v1/send?sid=SID` (§3).
//!
//! [`Upstream`] numbers frames with `cid`s and resends a request whose
//! connection broke until the server answers, with the same body and so the
//! same `cid`s: exactly the retry §3 promises to apply once.

use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use crate::http::{encode, HttpRequest};

/// How often a send is tried before giving up on a connection that keeps
/// breaking (the chaos proxy cuts every few milliseconds).
const MAX_ATTEMPTS: usize = 2_000;
/// The pause between two attempts.
const RETRY_PAUSE: Duration = Duration::from_millis(2);

/// The server answered a `POST /v1/send` with an error status.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejected {
    /// The HTTP status.
    pub status: u16,
    /// The JSON body (`{"code":..,"message":..}`), or the text as a string.
    pub body: Value,
}

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "POST /v1/send refused with HTTP {}: {}", self.status, self.body)
    }
}

impl std::error::Error for Rejected {}

/// One `POST /v1/send` attempt: the status and the body (JSON when it is
/// JSON, else a string).
pub async fn post_send(
    addr: SocketAddr,
    sid: &str,
    body: impl Into<bytes::Bytes>,
    origin: Option<&str>,
) -> anyhow::Result<(u16, Value)> {
    let mut request = HttpRequest::post(format!("/v1/send?sid={}", encode(sid)), body);
    if let Some(origin) = origin {
        request = request.origin(origin);
    }
    let response = request.send(addr).await?;
    let status = response.status.as_u16();
    let text = response.text().await?;
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Ok((status, body))
}

/// The upstream side of one session. Cheap to clone; clones share the `cid`
/// counter, so a sender task and a receiver task can both use it.
#[derive(Clone)]
pub struct Upstream {
    addr: SocketAddr,
    sid: Arc<str>,
    prefix: Arc<str>,
    cids: Arc<AtomicU64>,
}

impl Upstream {
    /// Upstream for session `sid` via the server (or proxy) at `addr`.
    pub fn new(addr: SocketAddr, sid: &str) -> Self {
        Self { addr, sid: sid.into(), prefix: "c".into(), cids: Arc::new(AtomicU64::new(0)) }
    }

    /// The same session with `cid`s named `{prefix}-N`.
    pub fn with_prefix(mut self, prefix: &str) -> Self {
        self.prefix = prefix.into();
        self
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

    /// One attempt, no retry: the status and body as the server answered.
    pub async fn post(&self, body: impl Into<bytes::Bytes>) -> anyhow::Result<(u16, Value)> {
        post_send(self.addr, &self.sid, body, None).await
    }

    /// Sends `body` until the server answers 200 (resending the same bytes
    /// after a broken connection). A 4xx/5xx answer is [`Rejected`].
    pub async fn post_until_taken(&self, body: String) -> anyhow::Result<Value> {
        let mut last_error = None;
        for _ in 0..MAX_ATTEMPTS {
            match self.post(body.clone()).await {
                Ok((200, answer)) => return Ok(answer),
                Ok((status, body)) => return Err(Rejected { status, body }.into()),
                Err(e) => last_error = Some(e),
            }
            tokio::time::sleep(RETRY_PAUSE).await;
        }
        Err(last_error
            .unwrap_or_else(|| anyhow::anyhow!("no attempt made"))
            .context(format!("POST /v1/send failed {MAX_ATTEMPTS} times")))
    }

    /// Sends frames as one JSON array, giving each frame without a `cid` a
    /// fresh one (except `ack`, which has none); returns the `cid`s in order.
    pub async fn send(&self, mut frames: Vec<Value>) -> anyhow::Result<Vec<String>> {
        let mut cids = Vec::with_capacity(frames.len());
        for frame in &mut frames {
            if frame["type"] == "ack" {
                continue;
            }
            if frame.get("cid").is_none() {
                frame["cid"] = Value::String(self.next_cid());
            }
            if let Some(cid) = frame["cid"].as_str() {
                cids.push(cid.to_owned());
            }
        }
        let answer = self.post_until_taken(Value::Array(frames.clone()).to_string()).await?;
        anyhow::ensure!(
            answer["accepted"] == json!(frames.len()),
            "POST /v1/send of {} frames answered {answer}",
            frames.len()
        );
        Ok(cids)
    }

    /// Sends one frame (as a bare object, not an array); returns its `cid`.
    pub async fn send_one(&self, mut frame: Value) -> anyhow::Result<String> {
        if frame.get("cid").is_none() {
            frame["cid"] = Value::String(self.next_cid());
        }
        let cid = frame["cid"].as_str().unwrap_or_default().to_owned();
        let answer = self.post_until_taken(frame.to_string()).await?;
        anyhow::ensure!(answer["accepted"] == 1, "POST /v1/send answered {answer}");
        Ok(cid)
    }

    /// `join` a room; returns the `cid`.
    pub async fn join(&self, room: &str) -> anyhow::Result<String> {
        self.send_one(json!({ "type": "join", "room": room })).await
    }

    /// `publish` one value to a room; returns the `cid`.
    pub async fn publish(&self, room: &str, data: Value) -> anyhow::Result<String> {
        self.send_one(json!({ "type": "publish", "room": room, "data": data })).await
    }

    /// `ack` every frame up to `seq`.
    pub async fn ack(&self, seq: u64) -> anyhow::Result<()> {
        let answer = self.post_until_taken(json!({ "type": "ack", "seq": seq }).to_string()).await?;
        anyhow::ensure!(answer["accepted"] == 1, "ack answered {answer}");
        Ok(())
    }
}
