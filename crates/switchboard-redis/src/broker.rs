//! Cross-node fan-out, presence and the session directory, in Redis.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::AsyncCommands;
use serde_json::value::RawValue;
use switchboard_core::broker::{Broker, BrokerFuture};
use switchboard_core::hub::Hub;
use switchboard_core::id::SessionId;
use switchboard_core::publication::{Kind, Publication};
use switchboard_core::store::now_ms;

use crate::{manager_config, RedisBackend};

/// How long a session's directory entry lives at most (a node that dies
/// leaves entries behind; they point to a dead node and are ignored).
const DIRECTORY_TTL_SECS: u64 = 24 * 3600;
/// Separates node and user in presence fields.
const SEP: char = '\u{1f}';

/// Records that a user came to (`ARGV[4]` = 1) or left a room on this node
/// and appends the `join` or `leave` event (the fields from `ARGV[9]` on)
/// only when no other live node has the user in the room: a user with
/// sessions on several nodes is announced once and leaves once. One script,
/// so two nodes changing the same user at the same moment cannot both (or
/// neither) announce it.
const PRESENCE: &str = r#"
local presence, node_rooms, nodes, events = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local node, user, name, present, room = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local alive_since, sep, evmax = tonumber(ARGV[6]), ARGV[7], ARGV[8]
local mine = node .. sep .. user
local elsewhere = false
for _, field in ipairs(redis.call('HKEYS', presence)) do
  local at = string.find(field, sep, 1, true)
  if at and field ~= mine and string.sub(field, at + 1) == user then
    local beat = tonumber(redis.call('ZSCORE', nodes, string.sub(field, 1, at - 1)) or '0')
    if beat >= alive_since then elsewhere = true end
  end
end
if present == '1' then
  redis.call('HSET', presence, mine, name)
  redis.call('SADD', node_rooms, room)
else
  redis.call('HDEL', presence, mine)
end
if elsewhere then return 0 end
redis.call('XADD', events, 'MAXLEN', '~', evmax, '*', unpack(ARGV, 9))
return 1
"#;

/// The Redis broker of one node.
#[derive(Debug)]
pub struct RedisBroker {
    backend: RedisBackend,
    hub: Arc<Hub>,
    node: String,
    /// This node's presence changes, applied in order by one task.
    presence: tokio::sync::mpsc::UnboundedSender<Publication>,
}

impl RedisBroker {
    /// A broker delivering into `hub`; starts the events reader and the
    /// heartbeat of this node.
    pub fn start(backend: RedisBackend, hub: Arc<Hub>) -> Arc<Self> {
        let node = backend.settings.advertise.to_string();
        let (presence, changes) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(announce_presence(backend.clone(), node.clone(), changes));
        let broker = Arc::new(Self { backend, hub, node, presence });
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
        self.spawn("publish", async move {
            redis::cmd("XADD")
                .arg(key)
                .arg("MAXLEN")
                .arg("~")
                .arg(max)
                .arg("*")
                .arg(fields)
                .query_async::<String>(&mut conn)
                .await
                .map(drop)
        });
    }

    fn conn(&self) -> ConnectionManager {
        self.backend.conn.clone()
    }

    /// Nodes that sent a heartbeat within the node TTL.
    async fn alive_nodes(&self, conn: &mut ConnectionManager) -> redis::RedisResult<HashSet<String>> {
        let since = now_ms().saturating_sub(self.backend.settings.node_ttl.as_millis() as u64);
        let nodes: Vec<String> = conn.zrangebyscore(self.backend.key(&["nodes"]), since, "+inf").await?;
        Ok(nodes.into_iter().collect())
    }

    fn spawn(
        &self,
        what: &'static str,
        job: impl std::future::Future<Output = redis::RedisResult<()>> + Send + 'static,
    ) {
        tokio::spawn(async move {
            if let Err(e) = job.await {
                tracing::warn!(error = %e, what, "redis broker call failed");
            }
        });
    }
}

/// The fields of a publication in the events stream.
fn encode(p: &Publication) -> Vec<(&'static str, String)> {
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
        let key = self.backend.key(&["presence", room]);
        let room = room.to_owned();
        Box::pin(async move {
            let mut conn = self.conn();
            let result: redis::RedisResult<Vec<(String, String)>> = async {
                let fields: HashMap<String, String> = conn.hgetall(&key).await?;
                let alive = self.alive_nodes(&mut conn).await?;
                let users: BTreeMap<String, String> = fields
                    .into_iter()
                    .filter_map(|(field, name)| {
                        let (node, user) = field.split_once(SEP)?;
                        alive.contains(node).then(|| (user.to_owned(), name))
                    })
                    .collect();
                Ok(users.into_iter().collect())
            }
            .await;
            result.unwrap_or_else(|e| {
                tracing::warn!(error = %e, "presence query failed; answering with this node's view");
                self.hub.who(&room)
            })
        })
    }

    fn session_created(&self, sid: SessionId) -> BrokerFuture<'_, ()> {
        let key = self.backend.key(&["sid", &sid.to_string()]);
        Box::pin(async move {
            let mut conn = self.conn();
            if let Err(e) = conn.set_ex::<_, _, ()>(key, &self.node, DIRECTORY_TTL_SECS).await {
                tracing::warn!(error = %e, "cannot register the session in the directory");
            }
        })
    }

    fn session_ended(&self, sid: SessionId) {
        let key = self.backend.key(&["sid", &sid.to_string()]);
        let mut conn = self.conn();
        self.spawn("directory", async move { conn.del(key).await });
    }

    fn locate(&self, sid: &str) -> BrokerFuture<'_, Option<SocketAddr>> {
        let key = self.backend.key(&["sid", sid]);
        let valid = SessionId::parse(sid).is_some();
        Box::pin(async move {
            if !valid {
                return None;
            }
            let mut conn = self.conn();
            let node: Option<String> = conn.get(key).await.ok()?;
            let node = node?;
            if node == self.node {
                return None;
            }
            let alive = self.alive_nodes(&mut conn).await.ok()?;
            alive.contains(&node).then(|| node.parse().ok()).flatten()
        })
    }
}

/// Reads the events stream forever and hands each publication to this
/// node's hub. After a Redis outage it goes on from the last entry it read.
async fn read_events(broker: std::sync::Weak<RedisBroker>) {
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
                    if let Some(publication) = decode(&entry.map) {
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

/// Tells the others this node lives, and cleans up after dead nodes: their
/// users leave presence (with `leave` events) within the node TTL.
async fn heartbeat(broker: std::sync::Weak<RedisBroker>) {
    let every = match broker.upgrade() {
        Some(b) => (b.backend.settings.node_ttl / 3).max(Duration::from_millis(100)),
        None => return,
    };
    let mut tick = tokio::time::interval(every);
    // Since when this node's heartbeats reach Redis without a break. Others
    // are judged dead only after a whole TTL of that: after a Redis outage
    // every node's last heartbeat is old, and each must get the chance to
    // beat again before anyone takes its users out of presence.
    let mut healthy_since: Option<std::time::Instant> = None;
    loop {
        tick.tick().await;
        let Some(broker) = broker.upgrade() else { return };
        let may_reap = healthy_since.is_some_and(|since| since.elapsed() >= broker.backend.settings.node_ttl);
        match beat(&broker, may_reap).await {
            Ok(()) => {
                healthy_since.get_or_insert_with(std::time::Instant::now);
            }
            Err(e) => {
                healthy_since = None;
                tracing::warn!(error = %e, "heartbeat failed");
            }
        }
    }
}

async fn beat(broker: &RedisBroker, may_reap: bool) -> redis::RedisResult<()> {
    let mut conn = broker.conn();
    let nodes = broker.backend.key(&["nodes"]);
    let now = now_ms();
    conn.zadd::<_, _, _, ()>(&nodes, &broker.node, now).await?;
    if !may_reap {
        return Ok(());
    }
    let dead_before = now.saturating_sub(broker.backend.settings.node_ttl.as_millis() as u64);
    let dead: Vec<String> = conn.zrangebyscore(&nodes, 0, dead_before).await?;
    for node in dead.into_iter().filter(|n| *n != broker.node) {
        let claim: Option<String> = redis::cmd("SET")
            .arg(broker.backend.key(&["reap", &node]))
            .arg(&broker.node)
            .arg("NX")
            .arg("EX")
            .arg(30)
            .query_async(&mut conn)
            .await?;
        if claim.is_none() {
            continue;
        }
        tracing::info!(node, "node is dead; dropping its users from presence");
        let node_rooms = broker.backend.key(&["node-rooms", &node]);
        let rooms: Vec<String> = conn.smembers(&node_rooms).await?;
        let alive = broker.alive_nodes(&mut conn).await?;
        for room in rooms {
            let key = broker.backend.key(&["presence", &room]);
            let fields: HashMap<String, String> = conn.hgetall(&key).await?;
            let prefix = format!("{node}{SEP}");
            let still_here: HashSet<&str> = fields
                .keys()
                .filter_map(|f| f.split_once(SEP))
                .filter(|(n, _)| alive.contains(*n))
                .map(|(_, user)| user)
                .collect();
            for (field, name) in fields.iter().filter(|(f, _)| f.starts_with(&prefix)) {
                conn.hdel::<_, _, ()>(&key, field).await?;
                let user = &field[prefix.len()..];
                if !still_here.contains(user) {
                    let null = RawValue::from_string("null".into()).expect("null");
                    broker.append_event(Publication::event(
                        Kind::PresenceLeave,
                        room.as_str(),
                        "",
                        user,
                        name.as_str(),
                        0,
                        null,
                    ));
                }
            }
        }
        conn.del::<_, ()>(&node_rooms).await?;
        conn.zrem::<_, _, ()>(&nodes, &node).await?;
    }
    Ok(())
}

/// Applies this node's presence changes, in the order the core made them,
/// with the [`PRESENCE`] script.
async fn announce_presence(
    backend: RedisBackend,
    node: String,
    mut changes: tokio::sync::mpsc::UnboundedReceiver<Publication>,
) {
    let script = redis::Script::new(PRESENCE);
    let mut conn = backend.conn.clone();
    while let Some(p) = changes.recv().await {
        let alive_since = now_ms().saturating_sub(backend.settings.node_ttl.as_millis() as u64);
        let result: redis::RedisResult<i64> = script
            .key(backend.key(&["presence", &p.room]))
            .key(backend.key(&["node-rooms", &node]))
            .key(backend.key(&["nodes"]))
            .key(backend.key(&["events"]))
            .arg(&node)
            .arg(&p.user)
            .arg(&p.name)
            .arg(u8::from(p.kind == Kind::PresenceJoin))
            .arg(&p.room)
            .arg(alive_since)
            .arg(SEP.to_string())
            .arg(backend.settings.events_max)
            .arg(encode(&p))
            .invoke_async(&mut conn)
            .await;
        if let Err(e) = result {
            tracing::warn!(error = %e, room = %p.room, user = %p.user, "presence change not recorded");
        }
    }
}
