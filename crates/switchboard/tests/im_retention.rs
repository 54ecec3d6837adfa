//! History retention (`history_max_messages`, `history_max_age`): the
//! reaper's retention pass (which runs on its first tick, i.e. at start)
//! drops what is beyond the bounds; the ids of what remains, and of new
//! messages, are unchanged.
//!
//! The pass runs at start, so these tests fill a SQLite store, restart on
//! the same `data_dir` with tighter bounds, and read the history through the
//! HTTP API.

use std::path::Path;
use std::time::{Duration, Instant};

use switchboard::config::StoreKind;
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
/// background right after start); fails after two seconds.
async fn history_becomes(api: &Api, room: &str, want: &[u64]) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(2);
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
