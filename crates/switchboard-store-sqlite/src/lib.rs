//! The embedded history store: one SQLite file (WAL, `synchronous=FULL`).
//!
//! One thread owns the connection. Appends and every other request (a join's
//! membership, a read mark, a history page) queue on one channel; the thread
//! takes everything waiting (up to [`MAX_GROUP`]) and runs it in one
//! transaction, each request in its own savepoint (a failed one is undone
//! alone), so "ack means durable" costs one fsync per group, not per message
//! or per join. Answers go out only after the commit, in queue order.
//! Message ids are assigned by that thread in commit order and the
//! completion callbacks run there in the same order, which is what keeps
//! every room's fan-out in id order.
//!
//! Why SQLite (`rusqlite`, bundled): a single file, no service, decades of
//! durability testing, WAL lets readers run beside the writer, and paging by
//! `(room, id)` is a primary-key range scan.

use std::collections::HashMap;
use std::path::Path;
use std::sync::mpsc;
use std::sync::Arc;

use rusqlite::{params, Connection, OptionalExtension};
use serde_json::value::RawValue;
use switchboard_core::store::{
    now_ms, AppendDone, Appended, HistoryQuery, NewMessage, RetentionPolicy, RoomInfo, Store, StoreError, StoreFuture,
    StoredMessage,
};

/// Most requests (appends and others) written in one transaction.
pub const MAX_GROUP: usize = 512;

/// What a request does in the group's transaction; it returns its reply,
/// given the commit's outcome once the group is committed.
type Job = Box<dyn FnOnce(&Connection) -> Reply + Send>;
type Reply = Box<dyn FnOnce(Result<(), StoreError>) + Send>;

/// A request's answer, held until its group is committed.
enum Answer {
    Append(AppendDone, Result<Appended, StoreError>),
    Run(Reply),
}

impl Answer {
    fn send(self, committed: &Result<(), StoreError>) {
        match self {
            Self::Append(done, result) => done(result.and_then(|appended| committed.clone().map(|()| appended))),
            Self::Run(reply) => reply(committed.clone()),
        }
    }
}

enum Command {
    Append(NewMessage, AppendDone),
    Run(Job),
}

/// History in one SQLite file.
#[derive(Debug)]
pub struct SqliteStore {
    tx: mpsc::Sender<Command>,
}

impl SqliteStore {
    /// Opens (creating when missing) the database at `path` and starts its
    /// writer thread.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| StoreError(format!("cannot create {}: {e}", dir.display())))?;
        }
        let mut conn = Connection::open(path).map_err(err)?;
        init(&mut conn).map_err(err)?;
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("switchboard-sqlite".into())
            .spawn(move || writer(conn, rx))
            .map_err(|e| StoreError(format!("cannot start the store thread: {e}")))?;
        Ok(Self { tx })
    }

    fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> StoreFuture<'_, T> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let sent = self.tx.send(Command::Run(Box::new(move |conn| {
            let result = in_savepoint(conn, job).map_err(err);
            Box::new(move |committed: Result<(), StoreError>| {
                let _ = reply.send(committed.and(result));
            })
        })));
        Box::pin(async move {
            sent.map_err(|_| StoreError("the store thread has stopped".into()))?;
            answer.await.map_err(|_| {
                StoreError(
                    "the store dropped the request (its thread stopped, or it could not begin a transaction)".into(),
                )
            })?
        })
    }
}

fn err(e: rusqlite::Error) -> StoreError {
    StoreError(e.to_string())
}

fn init(conn: &mut Connection) -> rusqlite::Result<()> {
    // Another process on the same file (a mistake, but a survivable one)
    // makes writers wait instead of failing at once.
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS messages (
             room TEXT NOT NULL, id INTEGER NOT NULL, ts INTEGER NOT NULL,
             user TEXT NOT NULL, name TEXT NOT NULL, data TEXT NOT NULL, cid TEXT,
             PRIMARY KEY (room, id)) WITHOUT ROWID;
         CREATE UNIQUE INDEX IF NOT EXISTS messages_cid ON messages (room, user, cid) WHERE cid IS NOT NULL;
         CREATE TABLE IF NOT EXISTS rooms (
             name TEXT PRIMARY KEY, private INTEGER NOT NULL DEFAULT 0, last_id INTEGER NOT NULL DEFAULT 0)
             WITHOUT ROWID;
         CREATE TABLE IF NOT EXISTS members (room TEXT NOT NULL, user TEXT NOT NULL, PRIMARY KEY (room, user))
             WITHOUT ROWID;
         CREATE INDEX IF NOT EXISTS members_user ON members (user);
         CREATE TABLE IF NOT EXISTS reads (user TEXT NOT NULL, room TEXT NOT NULL, id INTEGER NOT NULL,
             PRIMARY KEY (user, room)) WITHOUT ROWID;
         CREATE TABLE IF NOT EXISTS offline (user TEXT NOT NULL, room TEXT NOT NULL, id INTEGER NOT NULL,
             PRIMARY KEY (user, room)) WITHOUT ROWID;",
    )
}

fn writer(mut conn: Connection, rx: mpsc::Receiver<Command>) {
    while let Ok(first) = rx.recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            let Ok(next) = rx.try_recv() else { break };
            group.push(next);
        }
        commit_group(&mut conn, group);
    }
}

/// Runs a group of requests in one transaction, then answers each in order
/// with its own result, or with the commit's error when the commit failed.
fn commit_group(conn: &mut Connection, group: Vec<Command>) {
    let tx = match conn.transaction() {
        Ok(tx) => tx,
        Err(e) => {
            tracing::error!(error = %e, "history store cannot begin a transaction");
            let failed = StoreError(e.to_string());
            // An append is told; a dropped request's caller gets an error.
            for command in group {
                if let Command::Append(_, done) = command {
                    done(Err(failed.clone()));
                }
            }
            return;
        }
    };
    let mut answers = Vec::with_capacity(group.len());
    let mut appends = Vec::new();
    for command in group {
        match command {
            Command::Append(message, done) => appends.push((message, done)),
            Command::Run(job) => {
                write_appends(&tx, std::mem::take(&mut appends), &mut answers);
                answers.push(Answer::Run(job(&tx)));
            }
        }
    }
    write_appends(&tx, appends, &mut answers);
    let committed = tx.commit().map_err(|e| {
        tracing::error!(error = %e, "history store commit failed");
        StoreError(e.to_string())
    });
    for answer in answers {
        answer.send(&committed);
    }
}

/// Writes consecutive appends (in one savepoint: all or none) and adds
/// their answers.
fn write_appends(conn: &Connection, group: Vec<(NewMessage, AppendDone)>, answers: &mut Vec<Answer>) {
    if group.is_empty() {
        return;
    }
    let messages: Vec<&NewMessage> = group.iter().map(|(m, _)| m).collect();
    match in_savepoint(conn, |conn| write_group(conn, &messages)) {
        Ok(results) => {
            answers.extend(group.into_iter().zip(results).map(|((_, done), result)| Answer::Append(done, Ok(result))));
        }
        Err(e) => {
            tracing::error!(error = %e, "history append failed");
            let failed = StoreError(e.to_string());
            answers.extend(group.into_iter().map(|(_, done)| Answer::Append(done, Err(failed.clone()))));
        }
    }
}

/// Runs `f` in a savepoint of the group's transaction: released when it
/// succeeds, rolled back (its writes undone, the group's others kept) and
/// released when it fails. (rusqlite's `Savepoint` wants the transaction
/// mutably and leaves a rolled-back savepoint open.)
fn in_savepoint<T>(conn: &Connection, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> rusqlite::Result<T> {
    conn.execute_batch("SAVEPOINT request")?;
    match f(conn) {
        Ok(value) => {
            conn.execute_batch("RELEASE request")?;
            Ok(value)
        }
        Err(e) => {
            conn.execute_batch("ROLLBACK TO request; RELEASE request")?;
            Err(e)
        }
    }
}

fn write_group(tx: &Connection, messages: &[&NewMessage]) -> rusqlite::Result<Vec<Appended>> {
    let mut results = Vec::with_capacity(messages.len());
    let mut last_ids: HashMap<&str, u64> = HashMap::new();
    {
        let mut find_cid =
            tx.prepare_cached("SELECT id, ts, name, data FROM messages WHERE room = ?1 AND user = ?2 AND cid = ?3")?;
        let mut last = tx.prepare_cached("SELECT last_id FROM rooms WHERE name = ?1")?;
        let mut insert = tx.prepare_cached(
            "INSERT INTO messages (room, id, ts, user, name, data, cid) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?;
        let mut own_read = tx.prepare_cached(
            "INSERT INTO reads (user, room, id) VALUES (?1, ?2, ?3)
             ON CONFLICT (user, room) DO UPDATE SET id = max(id, excluded.id)",
        )?;
        for m in messages {
            if let Some(cid) = &m.cid {
                let earlier = find_cid
                    .query_row(params![m.room, m.user, cid], |r| {
                        Ok((r.get::<_, u64>(0)?, r.get::<_, u64>(1)?, r.get::<_, String>(2)?, r.get::<_, String>(3)?))
                    })
                    .optional()?;
                if let Some((id, ts, name, data)) = earlier {
                    let message = stored(&m.room, id, ts, &m.user, name, data);
                    results.push(Appended { message: Arc::new(message), fresh: false });
                    continue;
                }
            }
            let id = match last_ids.get(m.room.as_str()) {
                Some(id) => id + 1,
                None => last.query_row([&m.room], |r| r.get::<_, u64>(0)).optional()?.unwrap_or(0) + 1,
            };
            last_ids.insert(&m.room, id);
            insert.execute(params![m.room, id, m.ts, m.user, m.name, m.data.get(), m.cid])?;
            own_read.execute(params![m.user, m.room, id])?;
            let message = StoredMessage {
                room: m.room.clone(),
                id,
                ts: m.ts,
                user: m.user.clone(),
                name: m.name.clone(),
                data: m.data.clone(),
            };
            results.push(Appended { message: Arc::new(message), fresh: true });
        }
        let mut bump = tx.prepare_cached(
            "INSERT INTO rooms (name, last_id) VALUES (?1, ?2)
             ON CONFLICT (name) DO UPDATE SET last_id = max(last_id, excluded.last_id)",
        )?;
        for (room, id) in &last_ids {
            bump.execute(params![room, id])?;
        }
    }
    Ok(results)
}

fn stored(room: &str, id: u64, ts: u64, user: &str, name: String, data: String) -> StoredMessage {
    let data = RawValue::from_string(data).unwrap_or_else(|_| RawValue::from_string("null".into()).expect("null"));
    StoredMessage { room: room.into(), id, ts, user: user.into(), name, data }
}

fn room_info(row: &rusqlite::Row<'_>) -> rusqlite::Result<RoomInfo> {
    Ok(RoomInfo { name: row.get(0)?, private: row.get::<_, i64>(1)? != 0, last_id: row.get(2)? })
}

impl Store for SqliteStore {
    fn append(&self, message: NewMessage, done: AppendDone) {
        if let Err(mpsc::SendError(Command::Append(_, done))) = self.tx.send(Command::Append(message, done)) {
            done(Err(StoreError("the store thread has stopped".into())));
        }
    }

    fn history(&self, room: &str, q: HistoryQuery) -> StoreFuture<'_, Vec<StoredMessage>> {
        let room = room.to_owned();
        self.run(move |conn| {
            let after = q.after.unwrap_or(0).min(i64::MAX as u64) as i64;
            let before = q.before.map_or(i64::MAX, |b| b.min(i64::MAX as u64) as i64);
            let newest_first = q.after.is_none() && q.before.is_some();
            let sql = if newest_first {
                "SELECT id, ts, user, name, data FROM messages WHERE room = ?1 AND id > ?2 AND id < ?3 ORDER BY id DESC LIMIT ?4"
            } else {
                "SELECT id, ts, user, name, data FROM messages WHERE room = ?1 AND id > ?2 AND id < ?3 ORDER BY id ASC LIMIT ?4"
            };
            let mut stmt = conn.prepare_cached(sql)?;
            let rows = stmt.query_map(params![room, after, before, q.limit as i64], |r| {
                Ok(stored(&room, r.get(0)?, r.get(1)?, &r.get::<_, String>(2)?, r.get(3)?, r.get(4)?))
            })?;
            let mut page = rows.collect::<rusqlite::Result<Vec<_>>>()?;
            if newest_first {
                page.reverse();
            }
            Ok(page)
        })
    }

    fn set_read(&self, user: &str, room: &str, id: u64) -> StoreFuture<'_, u64> {
        let (user, room) = (user.to_owned(), room.to_owned());
        self.run(move |conn| {
            conn.execute(
                "INSERT INTO reads (user, room, id) VALUES (?1, ?2, ?3)
                 ON CONFLICT (user, room) DO UPDATE SET id = max(id, excluded.id)",
                params![user, room, id],
            )?;
            conn.query_row("SELECT id FROM reads WHERE user = ?1 AND room = ?2", params![user, room], |r| r.get(0))
        })
    }

    fn read_marks(&self, user: &str) -> StoreFuture<'_, HashMap<String, u64>> {
        let user = user.to_owned();
        self.run(move |conn| {
            let mut stmt = conn.prepare_cached("SELECT room, id FROM reads WHERE user = ?1")?;
            let rows = stmt.query_map([user], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect()
        })
    }

    fn count_after(&self, room: &str, after: u64) -> StoreFuture<'_, u64> {
        let room = room.to_owned();
        self.run(move |conn| {
            conn.query_row("SELECT count(*) FROM messages WHERE room = ?1 AND id > ?2", params![room, after], |r| {
                r.get(0)
            })
        })
    }

    fn room(&self, room: &str) -> StoreFuture<'_, Option<RoomInfo>> {
        let room = room.to_owned();
        self.run(move |conn| {
            conn.query_row("SELECT name, private, last_id FROM rooms WHERE name = ?1", [room], room_info).optional()
        })
    }

    fn rooms(&self) -> StoreFuture<'_, Vec<RoomInfo>> {
        self.run(|conn| {
            let mut stmt = conn.prepare_cached("SELECT name, private, last_id FROM rooms ORDER BY name")?;
            let rows = stmt.query_map([], room_info)?;
            rows.collect()
        })
    }

    fn put_room(&self, room: &str, private: bool) -> StoreFuture<'_, ()> {
        let room = room.to_owned();
        self.run(move |conn| {
            conn.execute(
                "INSERT INTO rooms (name, private) VALUES (?1, ?2) ON CONFLICT (name) DO UPDATE SET private = excluded.private",
                params![room, private as i64],
            )
            .map(drop)
        })
    }

    fn add_member(&self, room: &str, user: &str) -> StoreFuture<'_, ()> {
        let (room, user) = (room.to_owned(), user.to_owned());
        self.run(move |conn| {
            conn.execute("INSERT OR IGNORE INTO members (room, user) VALUES (?1, ?2)", params![room, user]).map(drop)
        })
    }

    fn remove_member(&self, room: &str, user: &str) -> StoreFuture<'_, ()> {
        let (room, user) = (room.to_owned(), user.to_owned());
        self.run(move |conn| {
            conn.execute("DELETE FROM members WHERE room = ?1 AND user = ?2", params![room, user]).map(drop)
        })
    }

    fn is_member(&self, room: &str, user: &str) -> StoreFuture<'_, bool> {
        let (room, user) = (room.to_owned(), user.to_owned());
        self.run(move |conn| {
            conn.query_row("SELECT 1 FROM members WHERE room = ?1 AND user = ?2", params![room, user], |_| Ok(()))
                .optional()
                .map(|found| found.is_some())
        })
    }

    fn user_rooms(&self, user: &str) -> StoreFuture<'_, Vec<String>> {
        let user = user.to_owned();
        self.run(move |conn| {
            let mut stmt = conn.prepare_cached("SELECT room FROM members WHERE user = ?1 ORDER BY room")?;
            let rows = stmt.query_map([user], |r| r.get(0))?;
            rows.collect()
        })
    }

    fn mark_offline(&self, user: &str) -> StoreFuture<'_, ()> {
        let user = user.to_owned();
        self.run(move |conn| {
            conn.execute(
                "INSERT OR REPLACE INTO offline (user, room, id)
                 SELECT m.user, m.room, coalesce(r.last_id, 0) FROM members m LEFT JOIN rooms r ON r.name = m.room
                 WHERE m.user = ?1",
                [user],
            )
            .map(drop)
        })
    }

    fn take_offline_marks(&self, user: &str) -> StoreFuture<'_, HashMap<String, u64>> {
        let user = user.to_owned();
        self.run(move |conn| {
            let marks = {
                let mut stmt = conn.prepare_cached("SELECT room, id FROM offline WHERE user = ?1")?;
                let rows = stmt.query_map([&user], |r| Ok((r.get(0)?, r.get(1)?)))?;
                rows.collect::<rusqlite::Result<HashMap<String, u64>>>()?
            };
            conn.execute("DELETE FROM offline WHERE user = ?1", [&user])?;
            Ok(marks)
        })
    }

    fn apply_retention(&self, policy: &RetentionPolicy) -> StoreFuture<'_, u64> {
        let policy = policy.clone();
        self.run(move |tx| {
            let now = now_ms();
            let mut dropped = 0u64;
            {
                let rooms: Vec<String> = {
                    let mut stmt = tx.prepare_cached("SELECT DISTINCT room FROM messages")?;
                    let rows = stmt.query_map([], |r| r.get(0))?;
                    rows.collect::<rusqlite::Result<_>>()?
                };
                let mut aged = tx.prepare_cached("DELETE FROM messages WHERE room = ?1 AND ts < ?2")?;
                // Everything up to the newest message beyond the bound.
                let mut counted = tx.prepare_cached(
                    "DELETE FROM messages WHERE room = ?1 AND id <= (
                         SELECT id FROM messages WHERE room = ?1 ORDER BY id DESC LIMIT 1 OFFSET ?2)",
                )?;
                for room in &rooms {
                    let retention = policy.for_room(room);
                    let oldest = now.saturating_sub(retention.max_age.as_millis() as u64);
                    dropped += aged.execute(params![room, oldest.min(i64::MAX as u64) as i64])? as u64;
                    let keep = retention.max_messages.min(i64::MAX as usize) as i64;
                    dropped += counted.execute(params![room, keep])? as u64;
                }
            }
            Ok(dropped)
        })
    }
}

#[cfg(test)]
mod tests;
