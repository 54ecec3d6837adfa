//! Cross-node fan-out, and the broker that ties together presence
//! ([`crate::presence`]) and the session directory ([`crate::directory`]).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::ops::Not;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use redis::aio::ConnectionManager;
use redis::AsyncCommands;
use serde_json::value::RawValue;
use switchboard_core::broker::{Broker, BrokerError, BrokerFuture, NodeCommand};
use switchboard_core::hub::Hub;
use switchboard_core::id::SessionId;
use switchboard_core::publication::{Kind, Publication};
use switchboard_core::store::now_ms;
use switchboard_core::Core;

use crate::directory::Directory;
use crate::{manager_config, presence, RedisBackend};

/// The `k` field of an events-stream entry carrying a [`NodeCommand`]:
/// `kick` (end a user's sessions; field `user`) or `unmember` (a user's
/// sessions leave a room; fields `user`, `room`). Field `node` names the
/// node that sent it, which has done it already.
const KICK: &str = "kick";
const UNMEMBER: &str = "unmember";

/// The Redis broker of one node.
#[derive(Debug)]
pub struct RedisBroker {
    backend: RedisBackend,
    hub: Arc<Hub>,
    node: String,
    /// This node's presence changes, applied in order by one task.
    presence: tokio::sync::mpsc::UnboundedSender<Publication>,
    directory: Directory,
    /// The core this broker serves (requests from other nodes reach it).
    core: OnceLock<Weak<Core>>,
    /// Since when this node's heartbeats reach Redis without a break.
    /// Others' heartbeats are judged only after a whole TTL of that: after
    /// a Redis outage every node's last heartbeat is old, and each must get
    /// the chance to beat again before anyone calls it dead.
    healthy_since: Mutex<Option<Instant>>,
    /// Nodes a relay could not reach, with when (ms since the epoch): dead
    /// to this node until they beat again.
    unreachable: Mutex<HashMap<String, u64>>,
}

impl RedisBroker {
    /// A broker delivering into `hub`; starts the events reader and the
    /// heartbeat of this node.
    pub fn start(backend: RedisBackend, hub: Arc<Hub>) -> Arc<Self> {
        let node = backend.settings.advertise.to_string();
        let (presence, changes) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(presence::announce(backend.clone(), node.clone(), changes));
        let directory = Directory::new(backend.clone(), node.clone());
        let broker = Arc::new(Self {
            backend,
            hub,
            node,
            presence,
            directory,
            core: OnceLock::new(),
            healthy_since: Mutex::new(None),
            unreachable: Mutex::default(),
        });
        tokio::spawn(read_events(Arc::downgrade(&broker)));
        tokio::spawn(heartbeat(Arc::downgrade(&broker)));
        broker
    }

    /// Appends a publication to the events stream (every node delivers it).
    fn append_event(&self, publication: Publication) {
        let key = self.backend.key(&["events"]);
        let max = self.backend.settings.events_max;
        let fields = encode(&publication);
        let mut conn = self.conn();
        tokio::spawn(async move {
            let appended = redis::cmd("XADD")
                .arg(key)
                .arg("MAXLEN")
                .arg("~")
                .arg(max)
                .arg("*")
                .arg(fields)
                .query_async::<String>(&mut conn)
                .await;
            if let Err(e) = appended {
                tracing::warn!(error = %e, "publication not sent to the other nodes");
            }
        });
    }

    fn conn(&self) -> ConnectionManager {
        self.backend.conn.clone()
    }

    /// Whether this node has been beating long enough to call a node
    /// without a recent heartbeat dead (see `healthy_since`).
    fn judges_liveness(&self) -> bool {
        let since = *self.healthy_since.lock().expect("healthy_since lock");
        since.is_some_and(|since| since.elapsed() >= self.backend.settings.node_ttl)
    }

    /// Another node sent `command`: do it to this node's sessions.
    fn commanded(&self, command: NodeCommand, by: &str) {
        if by == self.node {
            return;
        }
        let Some(core) = self.core.get().and_then(Weak::upgrade) else { return };
        tokio::spawn(async move {
            let what = format!("{command:?}");
            let sessions = core.apply_node_command(command).await;
            if sessions > 0 {
                tracing::info!(command = what, sessions, by = "another node", "node command applied");
            }
        });
    }
}

/// The fields of a publication in the events stream.
pub(crate) fn encode(p: &Publication) -> Vec<(&'static str, String)> {
    let kind = match p.kind {
        Kind::Message => "msg",
        Kind::PresenceJoin => "join",
        Kind::PresenceLeave => "leave",
        Kind::Typing => "typing",
        Kind::Read => "read",
    };
    let mut fields = vec![
        ("k", kind.to_owned()),
        ("room", p.room.clone()),
        ("id", p.id.to_string()),
        ("ts", p.ts.to_string()),
        ("user", p.user.clone()),
        ("name", p.name.clone()),
        ("from", p.from.clone()),
        ("data", p.data.get().to_owned()),
    ];
    if let Some(except) = &p.except_user {
        fields.push(("except", except.clone()));
    }
    fields
}

fn decode(map: &HashMap<String, redis::Value>) -> Option<Publication> {
    let field = |k: &str| map.get(k).and_then(|v| redis::from_redis_value_ref::<String>(v).ok());
    let kind = match field("k")?.as_str() {
        "msg" => Kind::Message,
        "join" => Kind::PresenceJoin,
        "leave" => Kind::PresenceLeave,
        "typing" => Kind::Typing,
        "read" => Kind::Read,
        _ => return None,
    };
    let data = RawValue::from_string(field("data")?).ok()?;
    let mut p = Publication::event(
        kind,
        field("room")?,
        field("from").unwrap_or_default(),
        field("user")?,
        field("name")?,
        field("id")?.parse().ok()?,
        data,
    );
    p.ts = field("ts")?.parse().unwrap_or(p.ts);
    p.except_user = field("except");
    Some(p)
}

/// A [`NodeCommand`] entry of the events stream, and the node that sent it.
fn decode_command(map: &HashMap<String, redis::Value>) -> Option<(NodeCommand, String)> {
    let field = |k: &str| map.get(k).and_then(|v| redis::from_redis_value_ref::<String>(v).ok());
    let command = match field("k")?.as_str() {
        KICK => NodeCommand::DisconnectUser { user: field("user")? },
        UNMEMBER => NodeCommand::RemoveMember { room: field("room")?, user: field("user")? },
        _ => return None,
    };
    Some((command, field("node")?))
}

impl Broker for RedisBroker {
    fn publish(&self, publication: Publication) {
        match publication.kind {
            // Stored chat messages are already in the events stream: the
            // append script put them there, in id order.
            Kind::Message if publication.id > 0 => {}
            // Announced when the user's presence in the cluster changed.
            Kind::PresenceJoin | Kind::PresenceLeave => {
                let _ = self.presence.send(publication);
            }
            _ => self.append_event(publication),
        }
    }

    fn who(&self, room: &str) -> BrokerFuture<'_, Vec<(String, String)>> {
        let room = room.to_owned();
        Box::pin(async move {
            presence::who(&self.backend, &room).await.unwrap_or_else(|e| {
                tracing::warn!(error = %e, "presence query failed; answering with this node's view");
                self.hub.who(&room)
            })
        })
    }

    fn session_created(&self, sid: SessionId) -> BrokerFuture<'_, ()> {
        Box::pin(self.directory.register(sid))
    }

    fn session_ended(&self, sid: SessionId) {
        self.directory.unregister(sid);
    }

    fn locate(&self, sid: &str) -> BrokerFuture<'_, Result<Option<SocketAddr>, BrokerError>> {
        let sid = sid.to_owned();
        Box::pin(async move {
            if SessionId::parse(&sid).is_none() {
                return Ok(None);
            }
            let unavailable = |e: redis::RedisError| BrokerError(format!("redis: {e}"));
            let mut conn = self.conn();
            let Some(node) = self.directory.lookup(&sid, &mut conn).await.map_err(unavailable)? else {
                return Ok(None);
            };
            if node == self.node {
                return Ok(None);
            }
            let beat: Option<f64> = conn.zscore(self.backend.key(&["nodes"]), &node).await.map_err(unavailable)?;
            let beat = beat.map_or(0, |b| b as u64);
            {
                let mut unreachable = self.unreachable.lock().expect("unreachable lock");
                match unreachable.get(&node) {
                    Some(&at) if beat <= at => return Ok(None),
                    Some(_) => drop(unreachable.remove(&node)),
                    None => {}
                }
            }
            // A node without a recent heartbeat is dead, unless this node
            // cannot judge yet (after an outage nobody's heartbeat is
            // recent): then the relay finds out.
            let ttl = self.backend.settings.node_ttl.as_millis() as u64;
            let alive = self.judges_liveness().not() || beat >= now_ms().saturating_sub(ttl);
            Ok(alive.then(|| node.parse().ok()).flatten())
        })
    }

    fn tell_other_nodes(&self, command: NodeCommand) -> BrokerFuture<'_, Result<(), BrokerError>> {
        let key = self.backend.key(&["events"]);
        let node = ("node", self.node.as_str());
        let fields = match &command {
            NodeCommand::DisconnectUser { user } => vec![("k", KICK), ("user", user), node],
            NodeCommand::RemoveMember { room, user } => vec![("k", UNMEMBER), ("user", user), ("room", room), node],
        };
        let command = redis::cmd("XADD")
            .arg(key)
            .arg("MAXLEN")
            .arg("~")
            .arg(self.backend.settings.events_max)
            .arg("*")
            .arg(&fields[..])
            .clone();
        Box::pin(async move {
            let mut conn = self.conn();
            command.query_async::<String>(&mut conn).await.map(drop).map_err(|e| BrokerError(format!("redis: {e}")))
        })
    }

    fn home_unreachable(&self, node: SocketAddr) {
        let mut unreachable = self.unreachable.lock().expect("unreachable lock");
        unreachable.insert(node.to_string(), now_ms());
    }

    fn bind_core(&self, core: Weak<Core>) {
        let _ = self.core.set(core);
    }
}

/// Reads the events stream forever and hands each publication to this
/// node's hub. After a Redis outage it goes on from the last entry it read.
async fn read_events(broker: Weak<RedisBroker>) {
    let Some((client, key)) = broker.upgrade().map(|b| (b.backend.client.clone(), b.backend.key(&["events"]))) else {
        return;
    };
    let mut conn = loop {
        match ConnectionManager::new_with_config(client.clone(), manager_config(Duration::from_secs(5))).await {
            Ok(conn) => break conn,
            Err(e) => {
                tracing::warn!(error = %e, "events reader cannot connect; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    };
    let mut last = loop {
        let newest: redis::RedisResult<redis::streams::StreamRangeReply> =
            conn.xrevrange_count(&key, "+", "-", 1).await;
        match newest {
            Ok(reply) => break reply.ids.first().map_or_else(|| "0-0".to_owned(), |e| e.id.clone()),
            Err(e) => {
                tracing::warn!(error = %e, "events reader cannot read; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    };
    let options = redis::streams::StreamReadOptions::default().block(1000).count(1000);
    let mut backoff = Duration::from_millis(50);
    loop {
        let reply: redis::RedisResult<Option<redis::streams::StreamReadReply>> =
            conn.xread_options(&[&key], &[&last], &options).await;
        let Some(broker) = broker.upgrade() else { return };
        match reply {
            Ok(reply) => {
                backoff = Duration::from_millis(50);
                for entry in reply.into_iter().flat_map(|r| r.keys).flat_map(|k| k.ids) {
                    if let Some((command, by)) = decode_command(&entry.map) {
                        broker.commanded(command, &by);
                    } else if let Some(publication) = decode(&entry.map) {
                        broker.hub.publish(&publication);
                    }
                    last = entry.id;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "events reader lost redis; resuming after {last}");
                drop(broker);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        }
    }
}

/// Tells the others this node lives, cleans up after dead nodes (their
/// users leave presence, with `leave` events, within the node TTL) and
/// keeps this node's directory entries written.
async fn heartbeat(broker: Weak<RedisBroker>) {
    let every = match broker.upgrade() {
        Some(b) => (b.backend.settings.node_ttl / 3).max(Duration::from_millis(100)),
        None => return,
    };
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        let Some(broker) = broker.upgrade() else { return };
        match beat(&broker, broker.judges_liveness()).await {
            Ok(()) => {
                broker.healthy_since.lock().expect("healthy_since lock").get_or_insert_with(Instant::now);
            }
            Err(e) => {
                *broker.healthy_since.lock().expect("healthy_since lock") = None;
                broker.directory.mark_stale();
                tracing::warn!(error = %e, "heartbeat failed");
            }
        }
    }
}

async fn beat(broker: &RedisBroker, may_reap: bool) -> redis::RedisResult<()> {
    let mut conn = broker.conn();
    conn.zadd::<_, _, _, ()>(broker.backend.key(&["nodes"]), &broker.node, now_ms()).await?;
    broker.directory.refresh_if_due(&mut conn).await?;
    if may_reap {
        presence::reap_dead_nodes(&broker.backend, &mut conn, &broker.node).await?;
    }
    Ok(())
}
