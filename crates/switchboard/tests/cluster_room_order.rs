//! One room, three nodes, one order: six members spread over the nodes (two
//! on each transport family: WebSocket, SSE, long poll; some attached
//! through another node than their session's home, every upstream request
//! sent through yet another node) publish at the same time. Every member
//! sees every message once, with increasing ids, in the very same order —
//! the order of the room's history — and each publish is acked with the id
//! of its own message.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use switchboard_testkit::cluster::{full_history, Cluster, ClusterOptions, Member};
use switchboard_testkit::serde_json::Value;
use switchboard_testkit::{bounded, json, Publisher, Subscriber, Transport};
use tokio::sync::Barrier;

const ROOM: &str = "order";
/// Messages each member publishes.
const PER_MEMBER: u64 = 40;
/// Publishes per `POST /v1/send`.
const BATCH: u64 = 4;
/// (transport, home node, node the downstream goes through).
const MEMBERS: [(Transport, usize, usize); 6] = [
    (Transport::WebSocket, 0, 0),
    (Transport::Sse, 1, 1),
    (Transport::LongPoll, 2, 2),
    (Transport::LongPoll, 0, 1),
    (Transport::WebSocket, 1, 2),
    (Transport::Sse, 2, 0),
];

/// What one member saw.
struct Seen {
    user: String,
    public_id: String,
    /// (id, from, data) of every `msg`, in arrival order.
    msgs: Vec<(u64, String, Value)>,
    /// cid → id of the acks of its own publishes.
    acks: HashMap<String, u64>,
    /// cid → data it published.
    published: HashMap<String, Value>,
    violations: Vec<String>,
}

async fn run_member(
    mut member: Member,
    index: usize,
    total: usize,
    publish_via: std::net::SocketAddr,
    start: Arc<Barrier>,
) -> anyhow::Result<Seen> {
    start.wait().await;
    let sender = member.sender().clone();
    let publishing = tokio::spawn(async move {
        let mut published = HashMap::new();
        for first in (0..PER_MEMBER).step_by(BATCH as usize) {
            let datas: Vec<Value> = (first..first + BATCH).map(|n| json!({"member": index, "n": n})).collect();
            let frames = datas.iter().map(|data| json!({"type": "publish", "room": ROOM, "data": data})).collect();
            let cids = sender.send(publish_via, frames).await?;
            published.extend(cids.into_iter().zip(datas));
        }
        anyhow::Ok(published)
    });
    let mut msgs = Vec::new();
    let mut acks = HashMap::new();
    while msgs.len() < total || acks.len() < PER_MEMBER as usize {
        let frame = member.recv().await?;
        match frame.typ() {
            "msg" if frame.str("room") == Some(ROOM) => msgs.push((
                frame.u64("id").unwrap_or_default(),
                frame.str("from").unwrap_or_default().to_owned(),
                frame.data().cloned().unwrap_or_default(),
            )),
            "ack" => {
                let id = frame.u64("id").unwrap_or_default();
                acks.insert(frame.cid().unwrap_or_default().to_owned(), id);
            }
            "error" => member.violation(format!("publish refused: {frame}")),
            _ => {}
        }
    }
    let published = publishing.await??;
    Ok(Seen {
        user: member.user().to_owned(),
        public_id: member.id().to_owned(),
        msgs,
        acks,
        published,
        violations: member.violations().to_vec(),
    })
}

#[tokio::test]
async fn six_members_on_three_nodes_see_one_order() {
    bounded(async {
        let options = ClusterOptions::new(env!("CARGO_BIN_EXE_switchboard"), "order");
        let cluster = Cluster::start(options, 3).await?;
        let addrs = cluster.addrs();

        let mut members = Vec::new();
        for (i, (transport, home, via)) in MEMBERS.into_iter().enumerate() {
            let mut member = Member::create(&addrs, home, via, &format!("m{i}"), transport).await?;
            member.join(ROOM).await?;
            members.push(member);
        }
        let total = MEMBERS.len() * PER_MEMBER as usize;
        let start = Arc::new(Barrier::new(MEMBERS.len()));
        let tasks: Vec<_> = members
            .into_iter()
            .enumerate()
            .map(|(i, member)| {
                let via = addrs[(MEMBERS[i].2 + 1) % addrs.len()];
                tokio::spawn(run_member(member, i, total, via, Arc::clone(&start)))
            })
            .collect();
        let mut seen = Vec::new();
        for task in tasks {
            seen.push(task.await??);
        }

        let reference: Vec<u64> = seen[0].msgs.iter().map(|m| m.0).collect();
        assert!(reference.windows(2).all(|w| w[0] < w[1]), "ids increase, each once: {reference:?}");
        assert_eq!(reference.len(), total, "every message arrived");
        for s in &seen {
            assert!(s.violations.is_empty(), "{}: {:#?}", s.user, s.violations);
            let order: Vec<u64> = s.msgs.iter().map(|m| m.0).collect();
            assert_eq!(order, reference, "{} saw another order than {}", s.user, seen[0].user);
            assert_eq!(s.msgs, seen[0].msgs, "{} saw other messages", s.user);
        }

        // Each publish was acked with the id of its own message.
        let by_id: BTreeMap<u64, (String, Value)> =
            seen[0].msgs.iter().map(|(id, from, data)| (*id, (from.clone(), data.clone()))).collect();
        for s in &seen {
            assert_eq!(s.acks.len(), PER_MEMBER as usize, "{}: one ack per publish", s.user);
            for (cid, data) in &s.published {
                let id = s.acks.get(cid).copied();
                let message = id.and_then(|id| by_id.get(&id));
                assert_eq!(
                    message,
                    Some(&(s.public_id.clone(), data.clone())),
                    "{}: publish {cid} {data} acked with id {id:?}",
                    s.user
                );
            }
        }

        // The order everybody saw is the room's history.
        let history = full_history(&cluster.api(2), ROOM).await?;
        let stored: Vec<(u64, Value)> =
            history.iter().map(|m| (m["id"].as_u64().unwrap_or_default(), m["data"].clone())).collect();
        let delivered: Vec<(u64, Value)> = seen[0].msgs.iter().map(|(id, _, data)| (*id, data.clone())).collect();
        assert_eq!(stored, delivered, "delivery order is history order");
        Ok(())
    })
    .await;
}

/// The single-node scenario of `scenario::delivers_in_order`, across nodes:
/// a publisher's batches, sent through node A, reach a subscriber on node B
/// in the order they were sent, each with the next `seq`.
#[tokio::test]
async fn one_publishers_batches_arrive_in_send_order_on_another_node() {
    bounded(async {
        let options = ClusterOptions::new(env!("CARGO_BIN_EXE_switchboard"), "order-batch");
        let cluster = Cluster::start(options, 2).await?;
        let publisher = Publisher::join(cluster.addr(0), ROOM).await?;
        let mut subscriber = Subscriber::join(cluster.addr(1), Transport::Sse, ROOM).await?;
        publisher.publish_numbered(ROOM, 0..300).await?;
        subscriber.expect_msgs(publisher.id(), 0..300).await?;
        Ok(())
    })
    .await;
}
