//! Presence is per user across the cluster (§7: "a user with three tabs is
//! one user"): a user with a session on each of two nodes is announced once
//! when the first arrives, stays present (and gets no `leave`) when one of
//! them ends, and leaves once when the last one ends.

use std::time::Duration;

use switchboard_testkit::cluster::{Cluster, ClusterOptions};
use switchboard_testkit::im::ChatClient;
use switchboard_testkit::{bounded, json, Frame};

const ROOM: &str = "tabs";
const GRACE: Duration = Duration::from_millis(500);

/// Presence frames `carol` receives about `alice` until the message
/// `marker`, posted through the API once everything before it is done,
/// arrives; the pause lets the presence events reach Redis first.
async fn alice_presence_until_marker(
    cluster: &Cluster,
    carol: &mut ChatClient,
    marker: &str,
) -> anyhow::Result<Vec<String>> {
    tokio::time::sleep(Duration::from_millis(300)).await;
    cluster.api(1).publish(ROOM, json!({"data": {"marker": marker}})).await?;
    let mut states = Vec::new();
    loop {
        let frame: Frame = carol.next().await?;
        if frame.typ() == "msg" && frame.data() == Some(&json!({"marker": marker})) {
            return Ok(states);
        }
        if frame.typ() == "presence" && frame.str("user") == Some("alice") {
            states.push(frame.str("state").unwrap_or_default().to_owned());
        }
    }
}

async fn present(cluster: &Cluster, node: usize) -> anyhow::Result<Vec<String>> {
    let (status, body) = cluster.api(node).get(&format!("/rooms/{ROOM}/presence")).await?;
    anyhow::ensure!(status == 200, "presence answered {status}: {body}");
    Ok(body["users"]
        .as_array()
        .map(|u| u.iter().filter_map(|u| u["user"].as_str().map(str::to_owned)).collect())
        .unwrap_or_default())
}

/// Waits until `alice`'s session `sid` on node `node` has ended.
async fn ended(cluster: &Cluster, node: usize, sid: &str) -> anyhow::Result<()> {
    switchboard_testkit::im::wait_session_ended(cluster.addr(node), sid, GRACE).await
}

#[tokio::test]
async fn a_user_on_two_nodes_is_announced_once_and_leaves_once() {
    bounded(async {
        let mut options = ClusterOptions::new(env!("CARGO_BIN_EXE_switchboard"), "presence");
        options.grace = GRACE;
        let cluster = Cluster::start(options, 2).await?;

        let mut carol = ChatClient::connect(cluster.addr(0), "carol").await?;
        carol.join(ROOM).await?;

        let mut tab1 = ChatClient::connect(cluster.addr(0), "alice").await?;
        tab1.join(ROOM).await?;
        let mut tab2 = ChatClient::connect(cluster.addr(1), "alice").await?;
        tab2.join(ROOM).await?;
        // Every broken promise is collected, so one run tells them all.
        let mut problems = Vec::new();
        let states = alice_presence_until_marker(&cluster, &mut carol, "both tabs").await?;
        if states != ["join"] {
            problems.push(format!("alice's two sessions must be announced once, carol heard {states:?}"));
        }

        let sid2 = tab2.sid().to_owned();
        tab2.disconnect().await?;
        ended(&cluster, 1, &sid2).await?;
        let states = alice_presence_until_marker(&cluster, &mut carol, "one tab closed").await?;
        if !states.is_empty() {
            problems
                .push(format!("alice's session on node 1 ended while she stays on node 0, yet carol heard {states:?}"));
        }
        for node in 0..2 {
            let users = present(&cluster, node).await?;
            if !users.iter().any(|u| u == "alice") {
                problems.push(format!("node {node} lists {users:?} while alice is on node 0"));
            }
        }

        let sid1 = tab1.sid().to_owned();
        tab1.disconnect().await?;
        ended(&cluster, 0, &sid1).await?;
        let states = alice_presence_until_marker(&cluster, &mut carol, "all tabs closed").await?;
        if states != ["leave"] {
            problems.push(format!("alice's last session ended: carol must hear one leave, heard {states:?}"));
        }
        for node in 0..2 {
            let users = present(&cluster, node).await?;
            if users.iter().any(|u| u == "alice") {
                problems.push(format!("node {node} lists {users:?} after alice left"));
            }
        }
        assert!(problems.is_empty(), "{problems:#?}");
        Ok(())
    })
    .await;
}
