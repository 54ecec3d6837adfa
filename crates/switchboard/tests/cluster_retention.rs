//! Retention on the Redis store (`broker = "redis"`): the periodic pass
//! (`retention_interval`) trims each room to its own bound on a running
//! node, `[retention."PATTERN"]` overrides included, and a room may keep
//! more than the global `history_max_messages` when its override says so
//! (appends trim a room's stream only to the largest bound of any room).

use std::time::{Duration, Instant};

use switchboard_testkit::cluster::{Cluster, ClusterOptions};
use switchboard_testkit::im::{ids, Api};
use switchboard_testkit::{bounded, json};

/// Polls the API until `room` holds `want`; fails after five seconds.
async fn history_becomes(api: &Api, room: &str, want: &[u64]) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let got = ids(&api.history(room, "after=0&limit=500").await?);
        if got == want {
            return Ok(());
        }
        anyhow::ensure!(Instant::now() < deadline, "{room} holds {got:?}, expected {want:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn redis_history_is_trimmed_per_room_while_the_node_runs() {
    bounded(async {
        let mut options = ClusterOptions::new(env!("CARGO_BIN_EXE_switchboard"), "retention");
        for (key, value) in [
            ("SWITCHBOARD_HISTORY_MAX_MESSAGES", "4"),
            ("SWITCHBOARD_RETENTION_INTERVAL", "100ms"),
            ("SWITCHBOARD_RETENTION", r#"{lobby={max_messages=2},"log-*"={max_messages=100}}"#),
        ] {
            options.env.push((key.to_owned(), value.to_owned()));
        }
        let cluster = Cluster::start(options, 1).await?;
        let api = cluster.api(0);
        for room in ["lobby", "random", "log-a"] {
            for n in 0..8 {
                api.publish(room, json!({"data": n})).await?;
            }
        }
        history_becomes(&api, "lobby", &[7, 8]).await?;
        history_becomes(&api, "random", &[5, 6, 7, 8]).await?;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let kept = ids(&api.history("log-a", "after=0").await?);
        assert_eq!(kept, (1..=8).collect::<Vec<u64>>(), "log-* keeps up to 100, above the global 4");

        // Later messages are trimmed by a later pass.
        for n in 8..11 {
            api.publish("lobby", json!({"data": n})).await?;
        }
        history_becomes(&api, "lobby", &[10, 11]).await?;
        Ok(())
    })
    .await;
}
