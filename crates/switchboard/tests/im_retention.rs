//! History retention (`history_max_messages`, `history_max_age`, per-room
//! `[retention."PATTERN"]` overrides): the retention pass (at start, then
//! every `retention_interval`) drops what is beyond each room's bounds; the
//! ids of what remains, and of new messages, are unchanged.
//!
//! The first tests fill a SQLite store, restart on the same `data_dir` with
//! tighter bounds (the pass at start), and read the history through the
//! HTTP API; the last ones watch the periodic pass on a running server, on
//! the memory and the SQLite store.

use std::path::Path;
use std::time::{Duration, Instant};

use switchboard::config::{RoomRetentionConfig, StoreKind};
use switchboard_testkit::im::{ids, Api, ChatClient};
use switchboard_testkit::{bounded, json, Config, TestServer};

const ROOM: &str = "lobby";
const KEY: &str = "retention-key";

fn on_disk(dir: &Path) -> impl Fn(&mut Config) + '_ {
    move |c| {
        c.store = StoreKind::Sqlite;
        c.data_dir = dir.to_owned();
        c.api_key = Some(KEY.into());
    }
}

/// Fills `room` with `n` messages on a fresh server over `dir`.
async fn fill(dir: &Path, rooms: &[&str], n: usize) -> anyhow::Result<()> {
    let server = TestServer::start_with(on_disk(dir)).await;
    let mut alice = ChatClient::connect(server.addr(), "alice").await?;
    for room in rooms {
        alice.join(room).await?;
        let answers = alice.publish_all(room, (0..n).map(|i| json!(i)).collect()).await?;
        assert!(answers.iter().all(|a| a.typ() == "ack"));
    }
    alice.disconnect().await?;
    server.shutdown().await;
    Ok(())
}

/// Polls the API until `room` holds `want` ids (the pass runs in the
/// background); fails after five seconds.
async fn history_becomes(api: &Api, room: &str, want: &[u64]) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let got = ids(&api.history(room, "after=0&limit=500").await?);
        if got == want {
            return Ok(());
        }
        anyhow::ensure!(Instant::now() < deadline, "{room} holds {got:?}, expected {want:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn only_the_newest_max_messages_are_kept_per_room() {
    bounded(async {
        let dir = tempfile::tempdir()?;
        fill(dir.path(), &["lobby", "random"], 10).await?;

        let server = TestServer::start_with(|c| {
            on_disk(dir.path())(c);
            c.history_max_messages = 3;
        })
        .await;
        let api = Api::new(server.addr(), Some(KEY));
        history_becomes(&api, "lobby", &[8, 9, 10]).await?;
        history_becomes(&api, "random", &[8, 9, 10]).await?;

        // Ids are never reused: the next message is 11.
        let posted = api.publish(ROOM, json!({"data": "next"})).await?;
        assert_eq!(posted["id"], 11, "{posted}");
        let (status, rooms) = api.get("/rooms").await?;
        assert_eq!(status, 200);
        let lobby =
            rooms["rooms"].as_array().and_then(|r| r.iter().find(|r| r["name"] == ROOM)).cloned().unwrap_or_default();
        assert_eq!(lobby["last_id"], 11, "{rooms}");
        server.shutdown().await;
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn messages_older_than_max_age_are_dropped() {
    bounded(async {
        let dir = tempfile::tempdir()?;
        fill(dir.path(), &[ROOM], 5).await?;
        tokio::time::sleep(Duration::from_millis(50)).await;

        let server = TestServer::start_with(|c| {
            on_disk(dir.path())(c);
            c.history_max_age = Duration::from_millis(20);
        })
        .await;
        let api = Api::new(server.addr(), Some(KEY));
        history_becomes(&api, ROOM, &[]).await?;
        let posted = api.publish(ROOM, json!({"data": "fresh"})).await?;
        assert_eq!(posted["id"], 6, "{posted}");
        assert_eq!(ids(&api.history(ROOM, "after=0").await?), [6]);
        server.shutdown().await;
        Ok(())
    })
    .await;
}

/// Within the bounds nothing is dropped.
#[tokio::test]
async fn history_within_the_bounds_is_untouched() {
    bounded(async {
        let dir = tempfile::tempdir()?;
        fill(dir.path(), &[ROOM], 10).await?;
        let server = TestServer::start_with(|c| {
            on_disk(dir.path())(c);
            c.history_max_messages = 10;
        })
        .await;
        let api = Api::new(server.addr(), Some(KEY));
        // Give the start-up pass time to run before looking.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let want: Vec<u64> = (1..=10).collect();
        assert_eq!(ids(&api.history(ROOM, "after=0").await?), want);
        server.shutdown().await;
        Ok(())
    })
    .await;
}

/// The stores a running server can use without a service.
fn each_store(dir: &Path, store: StoreKind) -> impl Fn(&mut Config) + '_ {
    move |c| {
        on_disk(dir)(c);
        c.store = store;
    }
}

/// Messages posted after start are trimmed by a later periodic pass, with no
/// restart: the pass runs every `retention_interval`.
#[tokio::test]
async fn retention_runs_every_interval_on_a_running_server() {
    bounded(async {
        for store in [StoreKind::Memory, StoreKind::Sqlite] {
            let dir = tempfile::tempdir()?;
            let server = TestServer::start_with(|c| {
                each_store(dir.path(), store)(c);
                c.history_max_messages = 3;
                c.retention_interval = Duration::from_millis(100);
            })
            .await;
            let api = Api::new(server.addr(), Some(KEY));
            // Let the pass at start go by, so a later one must do the work.
            tokio::time::sleep(Duration::from_millis(50)).await;
            for n in 0..6 {
                api.publish(ROOM, json!({"data": n})).await?;
            }
            history_becomes(&api, ROOM, &[4, 5, 6]).await?;
            for n in 6..8 {
                api.publish(ROOM, json!({"data": n})).await?;
            }
            history_becomes(&api, ROOM, &[6, 7, 8]).await?;
            server.shutdown().await;
        }
        Ok(())
    })
    .await;
}

/// A room's own bounds beat the global ones: an exact name first, then the
/// longest `PREFIX*`; what an override leaves out comes from the global
/// bounds. An override may keep more than the global count, too.
#[tokio::test]
async fn a_room_override_beats_the_global_bounds() {
    bounded(async {
        for store in [StoreKind::Memory, StoreKind::Sqlite] {
            let dir = tempfile::tempdir()?;
            let server = TestServer::start_with(|c| {
                each_store(dir.path(), store)(c);
                c.history_max_messages = 4;
                c.retention_interval = Duration::from_millis(100);
                let keep = |n| RoomRetentionConfig { max_messages: Some(n), max_age: None };
                c.retention.insert("lobby".into(), keep(2));
                c.retention.insert("log-*".into(), keep(100));
                c.retention.insert("log-short".into(), keep(1));
                c.retention.insert(
                    "old-*".into(),
                    RoomRetentionConfig { max_messages: None, max_age: Some(Duration::from_secs(1)) },
                );
            })
            .await;
            let api = Api::new(server.addr(), Some(KEY));
            let rooms = ["lobby", "random", "log-a", "log-short", "old-news"];
            for room in rooms {
                for n in 0..8 {
                    api.publish(room, json!({"data": n})).await?;
                }
            }
            history_becomes(&api, "lobby", &[7, 8]).await?;
            history_becomes(&api, "random", &[5, 6, 7, 8]).await?;
            history_becomes(&api, "log-short", &[8]).await?;
            history_becomes(&api, "old-news", &[5, 6, 7, 8]).await?;
            // The age bound of old-* drops the rest once they are a second old
            // (while the count bound, 4, comes from the global setting).
            history_becomes(&api, "old-news", &[]).await?;
            assert_eq!(ids(&api.history("log-a", "after=0").await?), (1..=8).collect::<Vec<u64>>());
            server.shutdown().await;
        }
        Ok(())
    })
    .await;
}
