//! Switchboard on many nodes, through Redis.
//!
//! # Layout
//!
//! - [`RedisBackend`]: the connection(s) and settings shared by the rest.
//! - [`store`]: [`RedisStore`], history in one Redis stream per room, rooms,
//!   memberships, read marks and offline marks in hashes and sets.
//! - [`broker`]: [`RedisBroker`], cross-node fan-out through one events
//!   stream that every node reads (so a node that lost Redis for a while
//!   resumes reading where it stopped: nothing lost, nothing twice), the
//!   node's heartbeat, and requests to every node (disconnect a user).
//! - `presence`: presence with per-node heartbeats; a dead node's users
//!   leave, and so do a restarted node's users of its previous life.
//! - `directory`: the session directory used to forward requests to a
//!   session's home node, rewritten from the heartbeat.
//!
//! Ordering: a chat message gets its id, lands in the room's history and in
//! the events stream in **one Lua script**, so the events stream holds every
//! room's messages in id order, and every node delivers them in that order.

pub mod broker;
mod directory;
mod presence;
pub mod store;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

pub use broker::RedisBroker;
pub use store::RedisStore;

/// Settings of the Redis backend.
#[derive(Debug, Clone)]
pub struct RedisSettings {
    /// `redis://host:port/db`.
    pub url: String,
    /// Prefix of every key (several clusters can share one Redis).
    pub key_prefix: String,
    /// The address other nodes reach this node at (requests for sessions
    /// living here are forwarded to it).
    pub advertise: SocketAddr,
    /// A node that has not sent a heartbeat for this long is dead: its users
    /// drop out of presence and its sessions are not forwarded to.
    pub node_ttl: Duration,
    /// Most messages any room's history stream keeps, trimmed on every
    /// append (the periodic retention pass then trims each room to its own
    /// bound, which may be lower).
    pub history_max_messages: usize,
    /// Most entries kept in the cross-node events stream.
    pub events_max: usize,
}

/// Connections and settings shared by the Redis store and broker.
#[derive(Debug, Clone)]
pub struct RedisBackend {
    pub(crate) conn: ConnectionManager,
    pub(crate) client: redis::Client,
    pub(crate) settings: Arc<RedisSettings>,
}

impl RedisBackend {
    /// Connects (failing when Redis is not reachable now; later outages are
    /// survived: commands fail while it is away and the connection comes
    /// back by itself, with backoff).
    pub async fn connect(settings: RedisSettings) -> redis::RedisResult<Self> {
        let client = redis::Client::open(settings.url.as_str())?;
        let conn = ConnectionManager::new_with_config(client.clone(), manager_config(Duration::from_secs(2))).await?;
        Ok(Self { conn, client, settings: Arc::new(settings) })
    }

    pub(crate) fn key(&self, parts: &[&str]) -> String {
        let mut key = self.settings.key_prefix.clone();
        for (i, part) in parts.iter().enumerate() {
            if i > 0 {
                key.push(':');
            }
            key.push_str(part);
        }
        key
    }
}

pub(crate) fn manager_config(response_timeout: Duration) -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(1)))
        .set_response_timeout(Some(response_timeout))
        .set_min_delay(Duration::from_millis(50))
        .set_max_delay(Duration::from_secs(2))
        .set_number_of_retries(2)
}
