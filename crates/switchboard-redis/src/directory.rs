//! The session directory: which node each session lives on, so that a
//! request landing on another node is forwarded to it.
//!
//! An entry is `sid:<sid>` → the node's advertised address, with an expiry.
//! The node keeps the list of its own sessions and rewrites their entries
//! from its heartbeat: every [`DIRECTORY_REFRESH`], and at the first beat
//! after a failed write or a failed beat (Redis was away, and may have come
//! back without the entries). So an entry lost to an outage comes back
//! within a heartbeat of Redis' return, and an entry never expires while
//! its session lives; entries of a node that died expire by themselves.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use redis::aio::ConnectionManager;
use redis::AsyncCommands;
use switchboard_core::id::SessionId;

use crate::RedisBackend;

/// How long an entry lives unless rewritten (several refreshes).
const DIRECTORY_TTL: Duration = Duration::from_secs(600);
/// How often the heartbeat rewrites every local session's entry.
const DIRECTORY_REFRESH: Duration = Duration::from_secs(120);
/// Entries written per round trip when refreshing.
const REFRESH_BATCH: usize = 1000;

/// This node's view of the directory.
#[derive(Debug)]
pub(crate) struct Directory {
    backend: RedisBackend,
    node: String,
    /// The sessions living on this node.
    local: Mutex<HashSet<SessionId>>,
    /// A write failed (or a heartbeat did): rewrite everything at the next
    /// beat.
    stale: AtomicBool,
    /// When every entry was last rewritten.
    refreshed: Mutex<Instant>,
}

impl Directory {
    pub(crate) fn new(backend: RedisBackend, node: String) -> Self {
        Self {
            backend,
            node,
            local: Mutex::default(),
            stale: AtomicBool::new(false),
            refreshed: Mutex::new(Instant::now()),
        }
    }

    fn key(&self, sid: &str) -> String {
        self.backend.key(&["sid", sid])
    }

    /// A session was created here. A failed write is retried by the
    /// heartbeat; until then requests for the session reach it only
    /// through this node.
    pub(crate) async fn register(&self, sid: SessionId) {
        self.local.lock().expect("directory lock").insert(sid);
        let mut conn = self.backend.conn.clone();
        let written = conn.set_ex::<_, _, ()>(self.key(&sid.to_string()), &self.node, DIRECTORY_TTL.as_secs()).await;
        if let Err(e) = written {
            self.stale.store(true, Ordering::SeqCst);
            tracing::warn!(error = %e, "cannot register the session in the directory; the heartbeat will");
        }
    }

    /// A session of this node ended; its entry is deleted in the
    /// background (a left-over entry points here, where the session is
    /// unknown: the answer is the same).
    pub(crate) fn unregister(&self, sid: SessionId) {
        self.local.lock().expect("directory lock").remove(&sid);
        let key = self.key(&sid.to_string());
        let mut conn = self.backend.conn.clone();
        tokio::spawn(async move {
            if let Err(e) = conn.del::<_, ()>(key).await {
                tracing::debug!(error = %e, "cannot delete a directory entry; it will expire");
            }
        });
    }

    /// The node session `sid` lives on, as the directory says.
    pub(crate) async fn lookup(&self, sid: &str, conn: &mut ConnectionManager) -> redis::RedisResult<Option<String>> {
        conn.get(self.key(sid)).await
    }

    /// Redis may have lost entries (a heartbeat failed): rewrite them all
    /// at the next beat.
    pub(crate) fn mark_stale(&self) {
        self.stale.store(true, Ordering::SeqCst);
    }

    /// Rewrites every local session's entry when that is due (see the
    /// module doc); called by the heartbeat after a successful beat.
    pub(crate) async fn refresh_if_due(&self, conn: &mut ConnectionManager) -> redis::RedisResult<()> {
        let due = self.refreshed.lock().expect("directory lock").elapsed() >= DIRECTORY_REFRESH;
        if !self.stale.swap(false, Ordering::SeqCst) && !due {
            return Ok(());
        }
        let sids: Vec<SessionId> = self.local.lock().expect("directory lock").iter().copied().collect();
        for batch in sids.chunks(REFRESH_BATCH) {
            let mut pipe = redis::pipe();
            for sid in batch {
                pipe.set_ex(self.key(&sid.to_string()), &self.node, DIRECTORY_TTL.as_secs()).ignore();
            }
            if let Err(e) = pipe.query_async::<()>(conn).await {
                self.stale.store(true, Ordering::SeqCst);
                return Err(e);
            }
        }
        *self.refreshed.lock().expect("directory lock") = Instant::now();
        if !sids.is_empty() {
            tracing::debug!(sessions = sids.len(), "directory entries rewritten");
        }
        Ok(())
    }
}
