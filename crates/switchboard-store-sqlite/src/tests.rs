use std::sync::mpsc as std_mpsc;
use std::time::Duration;

use switchboard_core::store::{Retention, RoomRetention};

use super::*;

fn message(room: &str, text: &str, cid: Option<&str>) -> NewMessage {
    NewMessage {
        room: room.into(),
        user: "alice".into(),
        name: "Alice".into(),
        from: "f".into(),
        data: RawValue::from_string(format!("{text:?}")).unwrap(),
        ts: now_ms(),
        cid: cid.map(str::to_owned),
    }
}

fn append(store: &SqliteStore, m: NewMessage) -> Result<Appended, StoreError> {
    let (tx, rx) = std_mpsc::channel();
    store.append(m, Box::new(move |r| tx.send(r).unwrap()));
    rx.recv_timeout(Duration::from_secs(10)).unwrap()
}

#[tokio::test]
async fn history_survives_reopen_and_pages_by_id() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.db");
    {
        let store = SqliteStore::open(&path).unwrap();
        for i in 1..=10 {
            let a = append(&store, message("r", &format!("m{i}"), None)).unwrap();
            assert_eq!(a.message.id, i);
        }
    }
    let store = SqliteStore::open(&path).unwrap();
    let all = store.history("r", HistoryQuery { limit: 100, ..Default::default() }).await.unwrap();
    assert_eq!(all.iter().map(|m| m.id).collect::<Vec<_>>(), (1..=10).collect::<Vec<_>>());
    assert_eq!(all[0].data.get(), "\"m1\"");
    let before = store.history("r", HistoryQuery { before: Some(8), limit: 3, after: None }).await.unwrap();
    assert_eq!(before.iter().map(|m| m.id).collect::<Vec<_>>(), vec![5, 6, 7]);
    let after = store.history("r", HistoryQuery { after: Some(8), limit: 3, before: None }).await.unwrap();
    assert_eq!(after.iter().map(|m| m.id).collect::<Vec<_>>(), vec![9, 10]);
    // Ids continue after reopening.
    assert_eq!(append(&store, message("r", "m11", None)).unwrap().message.id, 11);
}

#[tokio::test]
async fn retried_cid_is_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("h.db")).unwrap();
    let first = append(&store, message("r", "hello", Some("c1"))).unwrap();
    let again = append(&store, message("r", "hello", Some("c1"))).unwrap();
    assert!(first.fresh);
    assert!(!again.fresh);
    assert_eq!(first.message.id, again.message.id);
    assert_eq!(store.count_after("r", 0).await.unwrap(), 1);
}

#[tokio::test]
async fn concurrent_appends_get_increasing_ids_in_callback_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(&dir.path().join("h.db")).unwrap());
    let (tx, rx) = std_mpsc::channel();
    for i in 0..300 {
        let tx = tx.clone();
        store.append(message("r", &format!("{i}"), None), Box::new(move |r| tx.send(r.unwrap().message.id).unwrap()));
    }
    let ids: Vec<u64> = (0..300).map(|_| rx.recv_timeout(Duration::from_secs(10)).unwrap()).collect();
    assert_eq!(ids, (1..=300).collect::<Vec<_>>());
}

#[tokio::test]
async fn retention_by_count_keeps_newest_and_ids_never_reused() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("h.db")).unwrap();
    for i in 0..20 {
        append(&store, message("r", &format!("{i}"), None)).unwrap();
    }
    let dropped =
        store.apply_retention(&Retention { max_messages: 5, max_age: Duration::from_secs(3600) }.into()).await.unwrap();
    assert_eq!(dropped, 15);
    let left = store.history("r", HistoryQuery { limit: 100, ..Default::default() }).await.unwrap();
    assert_eq!(left.iter().map(|m| m.id).collect::<Vec<_>>(), vec![16, 17, 18, 19, 20]);
    assert_eq!(append(&store, message("r", "x", None)).unwrap().message.id, 21);
    let aged = store.apply_retention(&Retention { max_messages: 100, max_age: Duration::ZERO }.into()).await.unwrap();
    assert!(aged >= 1);
}

#[tokio::test]
async fn retention_applies_each_rooms_own_bounds() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("h.db")).unwrap();
    for room in ["lobby", "dm:a:b", "random"] {
        for i in 0..10 {
            append(&store, message(room, &format!("{i}"), None)).unwrap();
        }
    }
    let hour = Duration::from_secs(3600);
    let policy = RetentionPolicy {
        default: Retention { max_messages: 8, max_age: hour },
        rooms: vec![
            RoomRetention { pattern: "lobby".into(), max_messages: Some(3), max_age: None },
            RoomRetention { pattern: "dm:*".into(), max_messages: None, max_age: Some(Duration::ZERO) },
        ],
        every: hour,
    };
    // Every message is now older than max_age 0 (which keeps a message of
    // this very millisecond).
    tokio::time::sleep(Duration::from_millis(5)).await;
    let dropped = store.apply_retention(&policy).await.unwrap();
    let ids = |room: &'static str| {
        let store = &store;
        async move {
            let page = store.history(room, HistoryQuery { limit: 100, ..Default::default() }).await.unwrap();
            page.iter().map(|m| m.id).collect::<Vec<_>>()
        }
    };
    assert_eq!(ids("lobby").await, vec![8, 9, 10]);
    assert_eq!(ids("random").await, (3..=10).collect::<Vec<_>>());
    assert_eq!(ids("dm:a:b").await, Vec::<u64>::new(), "max_age 0 drops every message of the dm rooms");
    assert_eq!(dropped, 7 + 2 + 10);
}

#[tokio::test]
async fn reads_members_and_offline_marks() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("h.db")).unwrap();
    store.add_member("r", "alice").await.unwrap();
    assert!(store.is_member("r", "alice").await.unwrap());
    assert_eq!(store.user_rooms("alice").await.unwrap(), vec!["r".to_string()]);
    append(&store, message("r", "a", None)).unwrap();
    store.mark_offline("alice").await.unwrap();
    append(&store, message("r", "b", None)).unwrap();
    let marks = store.take_offline_marks("alice").await.unwrap();
    assert_eq!(marks.get("r"), Some(&1));
    assert!(store.take_offline_marks("alice").await.unwrap().is_empty());
    assert_eq!(store.set_read("alice", "r", 2).await.unwrap(), 2);
    assert_eq!(store.set_read("alice", "r", 1).await.unwrap(), 2, "a read mark never moves back");
    store.put_room("secret", true).await.unwrap();
    assert!(store.room("secret").await.unwrap().unwrap().private);
}

/// Requests queued while the writer is busy run as one group in one
/// transaction: each is answered with its own result, in order, and a
/// failing one is undone alone (its first write too).
#[tokio::test]
async fn a_failed_request_in_a_group_is_undone_alone() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("h.db")).unwrap();
    // Hold the writer so that everything below queues behind it.
    let busy = store.run(|_| {
        std::thread::sleep(Duration::from_millis(300));
        Ok(())
    });
    let (tx, rx) = std_mpsc::channel();
    let tx2 = tx.clone();
    store.append(message("r", "one", None), Box::new(move |r| tx.send(r).unwrap()));
    let failing = store.run(|conn| {
        conn.execute("INSERT INTO members (room, user) VALUES ('r', 'undone')", [])?;
        conn.execute("INSERT INTO no_such_table VALUES (1)", []).map(drop)
    });
    let member = store.add_member("r", "bob");
    store.append(message("r", "two", None), Box::new(move |r| tx2.send(r).unwrap()));
    busy.await.unwrap();
    assert!(failing.await.is_err());
    member.await.unwrap();
    let first = rx.recv_timeout(Duration::from_secs(10)).unwrap().unwrap();
    let second = rx.recv_timeout(Duration::from_secs(10)).unwrap().unwrap();
    assert_eq!((first.message.id, second.message.id), (1, 2));
    assert!(store.is_member("r", "bob").await.unwrap());
    assert!(!store.is_member("r", "undone").await.unwrap(), "the failed request's own write is undone");
    assert_eq!(store.count_after("r", 0).await.unwrap(), 2);
}
