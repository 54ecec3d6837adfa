//! `GET /metrics` (`docs/api.md`, Metrics): after some traffic the
//! Prometheus text shows the open connections by transport, the live
//! sessions and the chat counters.
//!
//! The recorder is process-wide, so the test reads differences and lower
//! bounds, and this file holds a single test.

use switchboard_testkit::im::{metric, scrape_metrics, ChatClient};
use switchboard_testkit::{bounded, json, TestServer};

const ROOM: &str = "lobby";

fn value(text: &str, series: &str) -> f64 {
    metric(text, series).unwrap_or(0.0)
}

#[tokio::test]
async fn metrics_count_connections_sessions_and_messages() {
    bounded(async {
        let server = TestServer::start().await;
        let addr = server.addr();
        let before = scrape_metrics(addr).await?;

        let mut alice = ChatClient::connect(addr, "alice").await?;
        alice.join(ROOM).await?;
        let mut bob = ChatClient::connect(addr, "bob").await?;
        bob.join(ROOM).await?;
        for n in 0..3 {
            alice.publish(ROOM, json!({"n": n})).await?;
        }
        alice.refused_with(json!({"type": "publish", "room": "elsewhere", "data": 0}), 4403).await?;
        bob.sync().await?;

        let after = scrape_metrics(addr).await?;
        for line in [
            "# TYPE switchboard_connections gauge",
            "# TYPE switchboard_sessions gauge",
            "# TYPE switchboard_messages_in_total counter",
        ] {
            assert!(after.contains(line), "{line:?} missing from:\n{after}");
        }
        let ws = "switchboard_connections{transport=\"ws\"}";
        assert!(value(&after, ws) >= 2.0, "{ws} with two WebSockets open:\n{after}");
        assert!(value(&after, "switchboard_sessions") >= 2.0, "{after}");
        let grew = |series: &str| value(&after, series) - value(&before, series);
        assert!(grew("switchboard_sessions_created_total") >= 2.0, "{after}");
        assert!(grew("switchboard_connections_total{transport=\"ws\"}") >= 2.0, "{after}");
        assert!(grew("switchboard_messages_in_total") >= 3.0, "{after}");
        assert!(grew("switchboard_frames_in_total") >= 6.0, "{after}");
        assert!(grew("switchboard_errors_total{code=\"4403\"}") >= 1.0, "{after}");
        assert!(after.contains("switchboard_store_append_seconds"), "store latency histogram missing:\n{after}");

        // Closing a WebSocket lowers the gauge.
        let open = value(&after, ws);
        bob.disconnect().await?;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        loop {
            let now = scrape_metrics(addr).await?;
            if value(&now, ws) <= open - 1.0 {
                break;
            }
            anyhow::ensure!(
                std::time::Instant::now() < deadline,
                "{ws} still {} after a WebSocket closed",
                value(&now, ws)
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        drop(alice);
        server.shutdown().await;
        Ok(())
    })
    .await;
}
