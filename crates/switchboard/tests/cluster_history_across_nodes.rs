//! Many nodes, one history: what is written through node A is read through
//! node B — by the `history` frame (with its paging) and by the HTTP API —
//! with the same ids, and what node B's API posts is read on node A, live
//! and from history.

use switchboard_testkit::cluster::{Cluster, ClusterOptions};
use switchboard_testkit::im::{ids, ChatClient};
use switchboard_testkit::{bounded, json};

const ROOM: &str = "lobby";

#[tokio::test]
async fn history_written_through_one_node_is_read_through_another() {
    bounded(async {
        let options = ClusterOptions::new(env!("CARGO_BIN_EXE_switchboard"), "history");
        let cluster = Cluster::start(options, 2).await?;
        let (a, b) = (cluster.addr(0), cluster.addr(1));

        let mut alice = ChatClient::connect(a, "alice").await?;
        alice.join(ROOM).await?;
        let mut acked = Vec::new();
        for n in 0..20 {
            acked.push(alice.publish(ROOM, json!({"n": n, "text": "über <b>"})).await?);
        }
        assert!(acked.windows(2).all(|w| w[0] < w[1]), "ids increase: {acked:?}");
        let written = alice.history(ROOM, json!({"limit": 500})).await?;
        assert_eq!(ids(&written), acked, "node A's own history");

        // Bob, on node B, never joined: the room is public, he may read it.
        let mut bob = ChatClient::connect(b, "bob").await?;
        let read = bob.history(ROOM, json!({"limit": 500})).await?;
        assert_eq!(read, written, "node B reads what node A stored");
        for (n, message) in read.iter().enumerate() {
            assert_eq!(message["data"], json!({"n": n, "text": "über <b>"}));
            assert_eq!((&message["user"], &message["name"]), (&json!("alice"), &json!("alice")));
        }
        let older = bob.history(ROOM, json!({"before": acked[10], "limit": 5})).await?;
        assert_eq!(ids(&older), acked[5..10], "paging back on node B");
        let newer = bob.history(ROOM, json!({"after": acked[14]})).await?;
        assert_eq!(ids(&newer), acked[15..], "paging forward on node B");

        let via_api = cluster.api(1).history(ROOM, "limit=500").await?;
        assert_eq!(via_api, written, "node B's HTTP API reads what node A stored");
        let (status, rooms) = cluster.api(1).get("/rooms").await?;
        assert_eq!(status, 200, "{rooms}");
        let listed = rooms["rooms"].as_array().and_then(|r| r.iter().find(|r| r["name"] == ROOM)).cloned();
        assert_eq!(
            listed.map(|r| r["last_id"].clone()),
            Some(json!(acked[19])),
            "node B lists the room with its last id: {rooms}"
        );

        // The other way round: node B's API posts, node A reads.
        let posted = cluster.api(1).publish(ROOM, json!({"data": {"via": "api on B"}})).await?;
        let posted_id = posted["id"].as_u64().expect("posted id");
        assert_eq!(posted_id, acked[19] + 1, "one id sequence for the room: {posted}");
        let live = loop {
            let frame = alice.skip_to("msg").await?;
            if frame.u64("id") == Some(posted_id) {
                break frame;
            }
        };
        assert_eq!(
            (live.data(), live.str("user"), live.str("from")),
            (Some(&json!({"via": "api on B"})), Some("system"), Some("system")),
            "alice on node A got the message posted on node B: {live}"
        );
        let after = alice.history(ROOM, json!({"after": acked[19]})).await?;
        assert_eq!(ids(&after), [posted_id], "node A's history has it");
        let after = cluster.api(0).history(ROOM, &format!("after={}", acked[19])).await?;
        assert_eq!(ids(&after), [posted_id], "node A's HTTP API has it");
        assert_eq!(after[0]["data"], json!({"via": "api on B"}));
        Ok(())
    })
    .await;
}
