//! History, rooms, memberships and marks in Redis.

use std::collections::HashMap;
use std::sync::Arc;

use redis::AsyncCommands;
use serde_json::value::RawValue;
use switchboard_core::store::{
    now_ms, AppendDone, Appended, HistoryQuery, NewMessage, RetentionPolicy, RoomInfo, Store, StoreError, StoreFuture,
    StoredMessage,
};
use tokio::sync::mpsc;

use crate::RedisBackend;

/// Assigns the id, stores the message and puts it in the events stream, in
/// one atomic step. A retry (same room, user, cid) returns the first one.
///
/// The `cid`s of a room are a sorted set `cid:<room>` of `user SEP cid`
/// scored by message id, trimmed with the history stream: a `cid` is
/// remembered as long as its message is kept, and no longer. (An append
/// with a `cid` trims the set; one without leaves it to the next such
/// append or retention pass.) (Older
/// versions kept them in a hash `cids:<room>` that was never trimmed; it is
/// still read here, and deleted by the next retention pass.)
const APPEND: &str = r#"
local p, room, user, name, data, ts, cid, from, maxlen, evmax = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9], ARGV[10]
local hist, cids = p .. 'hist:' .. room, p .. 'cid:' .. room
local member = user .. '\31' .. cid
if cid ~= '' then
  local old = redis.call('ZSCORE', cids, member) or redis.call('HGET', p .. 'cids:' .. room, member)
  if old then
    local e = redis.call('XRANGE', hist, old .. '-0', old .. '-0')
    if #e > 0 then
      local f = e[1][2]
      return {tonumber(old), 0, f[2], f[6], f[8]}
    end
    return {tonumber(old), 0, ts, name, data}
  end
end
local id = redis.call('HINCRBY', p .. 'room:' .. room, 'last_id', 1)
redis.call('SADD', p .. 'rooms', room)
redis.call('XADD', hist, 'MAXLEN', maxlen, id .. '-0', 'ts', ts, 'user', user, 'name', name, 'data', data)
if cid ~= '' then
  redis.call('ZADD', cids, id, member)
  local first = redis.call('XRANGE', hist, '-', '+', 'COUNT', 1)
  if #first > 0 then
    redis.call('ZREMRANGEBYSCORE', cids, '-inf', '(' .. string.match(first[1][1], '^%d+'))
  end
end
local reads = p .. 'reads:' .. user
if tonumber(redis.call('HGET', reads, room) or '0') < id then redis.call('HSET', reads, room, id) end
redis.call('XADD', p .. 'events', 'MAXLEN', '~', evmax, '*', 'k', 'msg', 'room', room, 'id', id, 'ts', ts, 'user', user, 'name', name, 'from', from, 'data', data)
return {id, 1, ts, name, data}
"#;

/// Moves a read mark forward only.
const SET_READ: &str = r#"
local cur = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
local new = tonumber(ARGV[2])
if new > cur then redis.call('HSET', KEYS[1], ARGV[1], new); return new end
return cur
"#;

/// An append waiting for its turn.
type QueuedAppend = (NewMessage, AppendDone);

/// History and the rest of the durable state, in Redis.
#[derive(Debug, Clone)]
pub struct RedisStore {
    backend: RedisBackend,
    appends: mpsc::UnboundedSender<QueuedAppend>,
    set_read: Arc<redis::Script>,
}

impl RedisStore {
    /// A store on `backend`. Appends run one after another on one task, in
    /// the order they were asked for: a session's messages get their ids
    /// in the order it sent them, as with the other stores.
    pub fn new(backend: RedisBackend) -> Self {
        let (appends, queue) = mpsc::unbounded_channel();
        tokio::spawn(run_appends(backend.clone(), queue));
        Self { backend, appends, set_read: Arc::new(redis::Script::new(SET_READ)) }
    }

    fn run<T: Send + 'static>(
        &self,
        job: impl std::future::Future<Output = redis::RedisResult<T>> + Send + 'static,
    ) -> StoreFuture<'_, T> {
        Box::pin(async move { job.await.map_err(err) })
    }
}

/// Forgets the `cid`s of `room`'s messages that history no longer holds
/// (see [`APPEND`]), and the unbounded hash of older versions.
async fn forget_trimmed_cids(
    backend: &RedisBackend,
    conn: &mut redis::aio::ConnectionManager,
    room: &str,
) -> redis::RedisResult<()> {
    let (hist, cids) = (backend.key(&["hist", room]), backend.key(&["cid", room]));
    let first: redis::streams::StreamRangeReply = conn.xrange_count(&hist, "-", "+", 1).await?;
    let oldest = first.ids.first().and_then(|e| e.id.split('-').next()?.parse::<u64>().ok());
    let mut pipe = redis::pipe();
    match oldest {
        Some(oldest) => pipe.zrembyscore(&cids, "-inf", format!("({oldest}")).ignore(),
        None => pipe.del(&cids).ignore(),
    };
    pipe.del(backend.key(&["cids", room])).ignore().query_async(conn).await
}

fn err(e: redis::RedisError) -> StoreError {
    StoreError(format!("redis: {e}"))
}

fn raw(data: String) -> Box<RawValue> {
    RawValue::from_string(data).unwrap_or_else(|_| RawValue::from_string("null".into()).expect("null"))
}

/// Reads a stream entry of a room's history.
fn entry_to_message(room: &str, id: &str, map: &HashMap<String, redis::Value>) -> Option<StoredMessage> {
    let field = |k: &str| map.get(k).and_then(|v| redis::from_redis_value_ref::<String>(v).ok());
    Some(StoredMessage {
        room: room.into(),
        id: id.split('-').next()?.parse().ok()?,
        ts: field("ts")?.parse().ok()?,
        user: field("user")?,
        name: field("name")?,
        data: raw(field("data")?),
    })
}

/// Runs the appends of this node in the order they were queued, each after
/// the previous one returned.
async fn run_appends(backend: RedisBackend, mut queue: mpsc::UnboundedReceiver<QueuedAppend>) {
    let script = redis::Script::new(APPEND);
    let settings = Arc::clone(&backend.settings);
    let mut conn = backend.conn.clone();
    while let Some((m, done)) = queue.recv().await {
        let result: redis::RedisResult<(u64, u8, String, String, String)> = script
            .arg(&settings.key_prefix)
            .arg(&m.room)
            .arg(&m.user)
            .arg(&m.name)
            .arg(m.data.get())
            .arg(m.ts)
            .arg(m.cid.as_deref().unwrap_or(""))
            .arg(&m.from)
            .arg(settings.history_max_messages)
            .arg(settings.events_max)
            .invoke_async(&mut conn)
            .await;
        done(result.map_err(err).map(|(id, fresh, ts, name, data)| Appended {
            message: Arc::new(StoredMessage {
                room: m.room,
                id,
                ts: ts.parse().unwrap_or(m.ts),
                user: m.user,
                name,
                data: raw(data),
            }),
            fresh: fresh == 1,
        }));
    }
}

impl Store for RedisStore {
    fn append(&self, m: NewMessage, done: AppendDone) {
        if let Err(mpsc::error::SendError((_, done))) = self.appends.send((m, done)) {
            done(Err(StoreError("redis: the append task has stopped".into())));
        }
    }

    fn history(&self, room: &str, q: HistoryQuery) -> StoreFuture<'_, Vec<StoredMessage>> {
        let key = self.backend.key(&["hist", room]);
        let room = room.to_owned();
        let mut conn = self.backend.conn.clone();
        self.run(async move {
            let lo = q.after.map_or("-".to_string(), |a| format!("({a}-0"));
            let hi = q.before.map_or("+".to_string(), |b| format!("({b}-0"));
            let newest_first = q.after.is_none() && q.before.is_some();
            let reply: redis::streams::StreamRangeReply = if newest_first {
                conn.xrevrange_count(&key, &hi, &lo, q.limit).await?
            } else {
                conn.xrange_count(&key, &lo, &hi, q.limit).await?
            };
            let mut page: Vec<StoredMessage> =
                reply.ids.iter().filter_map(|e| entry_to_message(&room, &e.id, &e.map)).collect();
            if newest_first {
                page.reverse();
            }
            Ok(page)
        })
    }

    fn set_read(&self, user: &str, room: &str, id: u64) -> StoreFuture<'_, u64> {
        let key = self.backend.key(&["reads", user]);
        let (room, script) = (room.to_owned(), Arc::clone(&self.set_read));
        let mut conn = self.backend.conn.clone();
        self.run(async move { script.key(key).arg(room).arg(id).invoke_async(&mut conn).await })
    }

    fn read_marks(&self, user: &str) -> StoreFuture<'_, HashMap<String, u64>> {
        let key = self.backend.key(&["reads", user]);
        let mut conn = self.backend.conn.clone();
        self.run(async move { conn.hgetall(key).await })
    }

    fn count_after(&self, room: &str, after: u64) -> StoreFuture<'_, u64> {
        let key = self.backend.key(&["hist", room]);
        let mut conn = self.backend.conn.clone();
        self.run(async move {
            let reply: redis::streams::StreamRangeReply = conn.xrange(&key, format!("({after}-0"), "+").await?;
            Ok(reply.ids.len() as u64)
        })
    }

    fn room(&self, room: &str) -> StoreFuture<'_, Option<RoomInfo>> {
        let key = self.backend.key(&["room", room]);
        let room = room.to_owned();
        let mut conn = self.backend.conn.clone();
        self.run(async move {
            let fields: HashMap<String, u64> = conn.hgetall(key).await?;
            Ok((!fields.is_empty()).then(|| RoomInfo {
                name: room,
                private: fields.get("private").copied().unwrap_or(0) != 0,
                last_id: fields.get("last_id").copied().unwrap_or(0),
            }))
        })
    }

    fn rooms(&self) -> StoreFuture<'_, Vec<RoomInfo>> {
        let backend = self.backend.clone();
        self.run(async move {
            let mut conn = backend.conn.clone();
            let mut names: Vec<String> = conn.smembers(backend.key(&["rooms"])).await?;
            names.sort();
            let mut rooms = Vec::with_capacity(names.len());
            for name in names {
                let fields: HashMap<String, u64> = conn.hgetall(backend.key(&["room", &name])).await?;
                rooms.push(RoomInfo {
                    private: fields.get("private").copied().unwrap_or(0) != 0,
                    last_id: fields.get("last_id").copied().unwrap_or(0),
                    name,
                });
            }
            Ok(rooms)
        })
    }

    fn put_room(&self, room: &str, private: bool) -> StoreFuture<'_, ()> {
        let (key, rooms) = (self.backend.key(&["room", room]), self.backend.key(&["rooms"]));
        let room = room.to_owned();
        let mut conn = self.backend.conn.clone();
        self.run(async move {
            redis::pipe().atomic().hset(key, "private", private as u8).sadd(rooms, room).query_async(&mut conn).await
        })
    }

    fn add_member(&self, room: &str, user: &str) -> StoreFuture<'_, ()> {
        let (members, user_rooms) = (self.backend.key(&["members", room]), self.backend.key(&["user-rooms", user]));
        let (room, user) = (room.to_owned(), user.to_owned());
        let mut conn = self.backend.conn.clone();
        self.run(async move {
            redis::pipe().atomic().sadd(members, user).sadd(user_rooms, room).query_async(&mut conn).await
        })
    }

    fn remove_member(&self, room: &str, user: &str) -> StoreFuture<'_, ()> {
        let (members, user_rooms) = (self.backend.key(&["members", room]), self.backend.key(&["user-rooms", user]));
        let (room, user) = (room.to_owned(), user.to_owned());
        let mut conn = self.backend.conn.clone();
        self.run(async move {
            redis::pipe().atomic().srem(members, user).srem(user_rooms, room).query_async(&mut conn).await
        })
    }

    fn is_member(&self, room: &str, user: &str) -> StoreFuture<'_, bool> {
        let key = self.backend.key(&["members", room]);
        let user = user.to_owned();
        let mut conn = self.backend.conn.clone();
        self.run(async move { conn.sismember(key, user).await })
    }

    fn user_rooms(&self, user: &str) -> StoreFuture<'_, Vec<String>> {
        let key = self.backend.key(&["user-rooms", user]);
        let mut conn = self.backend.conn.clone();
        self.run(async move {
            let mut rooms: Vec<String> = conn.smembers(key).await?;
            rooms.sort();
            Ok(rooms)
        })
    }

    fn mark_offline(&self, user: &str) -> StoreFuture<'_, ()> {
        let backend = self.backend.clone();
        let user = user.to_owned();
        self.run(async move {
            let mut conn = backend.conn.clone();
            let rooms: Vec<String> = conn.smembers(backend.key(&["user-rooms", &user])).await?;
            let mut pipe = redis::pipe();
            for room in &rooms {
                let last: Option<u64> = conn.hget(backend.key(&["room", room]), "last_id").await?;
                pipe.hset(backend.key(&["offline", &user]), room, last.unwrap_or(0));
            }
            pipe.query_async::<()>(&mut conn).await
        })
    }

    fn take_offline_marks(&self, user: &str) -> StoreFuture<'_, HashMap<String, u64>> {
        let key = self.backend.key(&["offline", user]);
        let mut conn = self.backend.conn.clone();
        self.run(async move {
            // The ignored DEL leaves one reply: the marks.
            let (marks,): (HashMap<String, u64>,) =
                redis::pipe().atomic().hgetall(&key).del(&key).ignore().query_async(&mut conn).await?;
            Ok(marks)
        })
    }

    fn apply_retention(&self, policy: &RetentionPolicy) -> StoreFuture<'_, u64> {
        let backend = self.backend.clone();
        let policy = policy.clone();
        self.run(async move {
            let mut conn = backend.conn.clone();
            let now = now_ms();
            let rooms: Vec<String> = conn.smembers(backend.key(&["rooms"])).await?;
            let mut dropped = 0u64;
            for room in rooms {
                let retention = policy.for_room(&room);
                let oldest = now.saturating_sub(retention.max_age.as_millis() as u64);
                let key = backend.key(&["hist", &room]);
                let before: u64 = conn.xlen(&key).await?;
                let _: u64 = redis::cmd("XTRIM")
                    .arg(&key)
                    .arg("MAXLEN")
                    .arg(retention.max_messages)
                    .query_async(&mut conn)
                    .await?;
                loop {
                    let page: redis::streams::StreamRangeReply = conn.xrange_count(&key, "-", "+", 100).await?;
                    let old: Vec<String> = page
                        .ids
                        .iter()
                        .filter(|e| entry_to_message(&room, &e.id, &e.map).is_some_and(|m| m.ts < oldest))
                        .map(|e| e.id.clone())
                        .collect();
                    if old.is_empty() {
                        break;
                    }
                    let _: u64 = conn.xdel(&key, &old).await?;
                }
                let after: u64 = conn.xlen(&key).await?;
                dropped += before.saturating_sub(after);
                forget_trimmed_cids(&backend, &mut conn, &room).await?;
            }
            Ok(dropped)
        })
    }
}
