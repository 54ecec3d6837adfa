//! `POST /api/v1/users/{u}/disconnect` on one node ends the user's
//! sessions on every node: each attachment gets `close` 4005 and the
//! session is gone (a resume is told 4004), wherever it lived. Other users'
//! sessions stay, and a session the user opens afterwards is not ended.

use std::time::Duration;

use switchboard_testkit::cluster::{Cluster, ClusterOptions};
use switchboard_testkit::im::{ChatClient, Login, Refusal};
use switchboard_testkit::{bounded, json};

/// How long the disconnect may take to reach the other node.
const REACH: Duration = Duration::from_secs(3);

#[tokio::test]
async fn disconnecting_a_user_through_one_node_ends_the_sessions_on_every_node() {
    bounded(async {
        let cluster = Cluster::start(ClusterOptions::new(env!("CARGO_BIN_EXE_switchboard"), "disconnect"), 2).await?;
        let alice_here = ChatClient::connect(cluster.addr(0), "alice").await?;
        let alice_there = ChatClient::connect(cluster.addr(1), "alice").await?;
        let there_sid = alice_there.sid().to_owned();
        let mut bob_there = ChatClient::connect(cluster.addr(1), "bob").await?;

        let (status, body) = cluster.api(0).post("/users/alice/disconnect", json!({})).await?;
        assert_eq!((status, &body), (200, &json!({"user": "alice", "disconnected": 1})), "{body}");

        for (node, client) in [(0, alice_here), (1, alice_there)] {
            let (close, code) = tokio::time::timeout(REACH, client.closed())
                .await
                .map_err(|_| anyhow::anyhow!("alice's session on node {node} still open {REACH:?} after the call"))??;
            assert_eq!(close.code(), Some(4005), "node {node}: {close}");
            assert_eq!(close.bool("reconnect"), Some(false), "node {node}: {close}");
            assert_eq!(code, Some(4005), "node {node}: WebSocket close code");
        }

        // The session on the other node is gone, not just detached.
        let resumed = Login::name("alice").resume(&there_sid, 0);
        let refusal: Refusal = ChatClient::refused(cluster.addr(1), &resumed).await?;
        assert_eq!(refusal.close.code(), Some(4004), "resuming the ended session: {:?}", refusal.close);

        // Bob was not touched, and alice may come back.
        bob_there.join("after").await?;
        let mut alice_again = ChatClient::connect(cluster.addr(1), "alice").await?;
        alice_again.join("after").await?;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let id = alice_again.publish("after", json!("still here")).await?;
        assert!(id > 0);
        Ok(())
    })
    .await;
}
