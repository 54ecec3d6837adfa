//! `GET /metrics` (`docs/api.md`, Metrics): after some traffic the
//! Prometheus text shows the open connections by transport, the live
//! sessions, the chat counters (messages in and out by every publish path:
//! native clients and the HTTP API), the store and delivery latency
//! histograms, the outbox gauges and resumes.
//!
//! The recorder is process-wide, so the test reads differences and lower
//! bounds, and this file holds a single test.

use switchboard_testkit::im::{metric, scrape_metrics, Api, ChatClient, Login};
use switchboard_testkit::{bounded, json, TestServer};

const ROOM: &str = "lobby";
const KEY: &str = "metrics-key";

fn value(text: &str, series: &str) -> f64 {
    metric(text, series).unwrap_or(0.0)
}

#[tokio::test]
async fn metrics_count_connections_sessions_and_messages() {
    bounded(async {
        let server = TestServer::start_with(|c| c.api_key = Some(KEY.into())).await;
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
        Api::new(addr, Some(KEY)).publish(ROOM, json!({"data": "from the back-end"})).await?;
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
        // Three from alice's WebSocket, one through the API.
        assert!(grew("switchboard_messages_in_total") >= 4.0, "{after}");
        assert!(grew("switchboard_messages_out_total") >= 4.0, "every publish path fans out:\n{after}");
        assert!(grew("switchboard_store_append_seconds_count") >= 4.0, "every append is timed:\n{after}");
        assert!(grew("switchboard_delivery_seconds_count") >= 8.0, "frames handed to transports:\n{after}");
        assert!(grew("switchboard_frames_in_total") >= 6.0, "{after}");
        assert!(grew("switchboard_errors_total{code=\"4403\"}") >= 1.0, "{after}");
        assert!(after.contains("switchboard_store_append_seconds"), "store latency histogram missing:\n{after}");

        // Bob has acknowledged nothing: his frames are held. Acknowledging
        // them frees them (the sync's own echo stays).
        let held = value(&after, "switchboard_outbox_frames");
        assert!(held >= 4.0, "bob's four msg frames at least:\n{after}");
        assert!(value(&after, "switchboard_outbox_bytes") > 0.0, "{after}");
        bob.ack().await?;
        bob.sync().await?;
        let acked = scrape_metrics(addr).await?;
        assert!(
            value(&acked, "switchboard_outbox_frames") <= held - 3.0,
            "outbox frames {held} before bob's ack, {} after",
            value(&acked, "switchboard_outbox_frames")
        );

        // Closing a WebSocket lowers the gauge.
        let open = value(&after, ws);
        let (sid, last) = (bob.sid().to_owned(), bob.last());
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

        // Resuming the detached session counts a resume.
        let resumes = value(&scrape_metrics(addr).await?, "switchboard_resumes_total");
        let bob = ChatClient::login(addr, &Login::name("bob").resume(&sid, last)).await?;
        assert_eq!(bob.welcome().bool("resumed"), Some(true), "{}", bob.welcome());
        let resumed = scrape_metrics(addr).await?;
        assert!(value(&resumed, "switchboard_resumes_total") >= resumes + 1.0, "{resumed}");
        drop(alice);
        server.shutdown().await;
        Ok(())
    })
    .await;
}
