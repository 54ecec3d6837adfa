//! Presence across nodes.
//!
//! Each room has a hash `presence:<room>` of `node SEP user` → display
//! name, and each node a set `node-rooms:<node>` of the rooms it has users
//! in. A node is alive while its heartbeat (a score in the `nodes` sorted
//! set) is younger than the node TTL; `who` counts only live nodes' users.
//!
//! A node's users leave presence (with `leave` events for the users no
//! other live node has) when another node finds it dead, and also when the
//! node starts again under the same address before anyone noticed it was
//! gone: its first act is to clear what its previous life left behind.

use std::collections::{BTreeMap, HashMap, HashSet};

use redis::aio::ConnectionManager;
use redis::AsyncCommands;
use serde_json::value::RawValue;
use switchboard_core::publication::{Kind, Publication};
use switchboard_core::store::now_ms;

use crate::broker::encode;
use crate::RedisBackend;

/// Separates node and user in presence fields.
pub(crate) const SEP: char = '\u{1f}';

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

/// Nodes that sent a heartbeat within the node TTL.
pub(crate) async fn alive_nodes(
    backend: &RedisBackend,
    conn: &mut ConnectionManager,
) -> redis::RedisResult<HashSet<String>> {
    let since = now_ms().saturating_sub(backend.settings.node_ttl.as_millis() as u64);
    let nodes: Vec<String> = conn.zrangebyscore(backend.key(&["nodes"]), since, "+inf").await?;
    Ok(nodes.into_iter().collect())
}

/// Users present in `room` on live nodes: (user id, name), sorted.
pub(crate) async fn who(backend: &RedisBackend, room: &str) -> redis::RedisResult<Vec<(String, String)>> {
    let mut conn = backend.conn.clone();
    let fields: HashMap<String, String> = conn.hgetall(backend.key(&["presence", room])).await?;
    let alive = alive_nodes(backend, &mut conn).await?;
    let users: BTreeMap<String, String> = fields
        .into_iter()
        .filter_map(|(field, name)| {
            let (node, user) = field.split_once(SEP)?;
            alive.contains(node).then(|| (user.to_owned(), name))
        })
        .collect();
    Ok(users.into_iter().collect())
}

/// Takes every user of `node` out of presence, appending a `leave` event
/// for each user no other live node has in the room. A field is announced
/// by whoever deleted it, so two nodes clearing the same node at once
/// announce each user once.
pub(crate) async fn clear_node(
    backend: &RedisBackend,
    conn: &mut ConnectionManager,
    node: &str,
) -> redis::RedisResult<()> {
    let node_rooms = backend.key(&["node-rooms", node]);
    let rooms: Vec<String> = conn.smembers(&node_rooms).await?;
    let alive = alive_nodes(backend, conn).await?;
    let prefix = format!("{node}{SEP}");
    for room in rooms {
        let key = backend.key(&["presence", &room]);
        let fields: HashMap<String, String> = conn.hgetall(&key).await?;
        let still_here: HashSet<&str> = fields
            .keys()
            .filter_map(|f| f.split_once(SEP))
            .filter(|(n, _)| *n != node && alive.contains(*n))
            .map(|(_, user)| user)
            .collect();
        for (field, name) in fields.iter().filter(|(f, _)| f.starts_with(&prefix)) {
            let removed: u64 = conn.hdel(&key, field).await?;
            let user = &field[prefix.len()..];
            if removed == 1 && !still_here.contains(user) {
                let null = RawValue::from_string("null".into()).expect("null");
                let leave = Publication::event(Kind::PresenceLeave, room.as_str(), "", user, name.as_str(), 0, null);
                append(backend, conn, &leave).await?;
            }
        }
    }
    conn.del::<_, ()>(&node_rooms).await
}

/// Appends `publication` to the events stream.
async fn append(
    backend: &RedisBackend,
    conn: &mut ConnectionManager,
    publication: &Publication,
) -> redis::RedisResult<()> {
    redis::cmd("XADD")
        .arg(backend.key(&["events"]))
        .arg("MAXLEN")
        .arg("~")
        .arg(backend.settings.events_max)
        .arg("*")
        .arg(encode(publication))
        .query_async::<String>(conn)
        .await
        .map(drop)
}

/// Takes the users of dead nodes out of presence (one node does each dead
/// node: whoever claims it first).
pub(crate) async fn reap_dead_nodes(
    backend: &RedisBackend,
    conn: &mut ConnectionManager,
    me: &str,
) -> redis::RedisResult<()> {
    let nodes = backend.key(&["nodes"]);
    let dead_before = now_ms().saturating_sub(backend.settings.node_ttl.as_millis() as u64);
    let dead: Vec<String> = conn.zrangebyscore(&nodes, 0, dead_before).await?;
    for node in dead.into_iter().filter(|n| n != me) {
        let claim: Option<String> = redis::cmd("SET")
            .arg(backend.key(&["reap", &node]))
            .arg(me)
            .arg("NX")
            .arg("EX")
            .arg(30)
            .query_async(conn)
            .await?;
        if claim.is_none() {
            continue;
        }
        tracing::info!(node, "node is dead; dropping its users from presence");
        clear_node(backend, conn, &node).await?;
        conn.zrem::<_, _, ()>(&nodes, &node).await?;
    }
    Ok(())
}

/// Applies this node's presence changes, in the order the core made them,
/// with the [`PRESENCE`] script. First, it clears what an earlier process
/// with this node's address left in presence (a crash and a restart within
/// the node TTL look like one long life to the other nodes, so they would
/// never clear it); changes wait meanwhile.
pub(crate) async fn announce(
    backend: RedisBackend,
    node: String,
    mut changes: tokio::sync::mpsc::UnboundedReceiver<Publication>,
) {
    let mut conn = backend.conn.clone();
    let mut pause = std::time::Duration::from_millis(50);
    while let Err(e) = clear_node(&backend, &mut conn, &node).await {
        tracing::warn!(error = %e, "cannot clear this node's presence of before the start; retrying");
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(std::time::Duration::from_secs(2));
    }
    let script = redis::Script::new(PRESENCE);
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
