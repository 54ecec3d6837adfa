//! No sticky sessions: a client may land on any node with every request.
//!
//! While another session publishes a steady stream into the room, a long-
//! poll client sends each request — polls and its own publishes alike — to
//! the next node in turn, and an SSE client cuts its stream every few
//! frames and resumes (with `sid` and `last`, or `Last-Event-ID`) through
//! the next node. Both see every message of the room once, in id order,
//! with every `seq` once and in order, and each resume is welcomed as the
//! same session.

use std::time::Duration;

use switchboard_testkit::cluster::{full_history, Cluster, ClusterOptions, Member, MessageLog};
use switchboard_testkit::{bounded, json, Publisher, Transport};
use tokio::sync::oneshot;

const ROOM: &str = "alternating";
/// Messages of the steady publisher.
const STREAM: u64 = 150;
/// The pause between two of them.
const PACE: Duration = Duration::from_millis(10);
/// Messages the long-poll client publishes itself.
const OWN: usize = 15;

fn is_end(frame: &switchboard_testkit::Frame) -> bool {
    frame.typ() == "msg" && frame.data() == Some(&json!({"end": true}))
}

#[tokio::test]
async fn clients_hopping_nodes_on_every_request_lose_and_repeat_nothing() {
    bounded(async {
        let options = ClusterOptions::new(env!("CARGO_BIN_EXE_switchboard"), "alternating");
        let cluster = Cluster::start(options, 3).await?;
        let addrs = cluster.addrs();

        let mut poller = Member::create(&addrs, 1, 0, "poller", Transport::LongPoll).await?;
        poller.join(ROOM).await?;
        poller.rotate_polls(true);
        let mut streamer = Member::create(&addrs, 2, 0, "streamer", Transport::Sse).await?;
        streamer.join(ROOM).await?;
        let publisher = Publisher::join(addrs[0], ROOM).await?;

        let (own_done, own_sent) = oneshot::channel::<()>();
        let publishing = tokio::spawn(async move {
            for n in 0..STREAM {
                publisher.upstream().publish(ROOM, json!({"n": n})).await?;
                tokio::time::sleep(PACE).await;
            }
            // The end marker comes after everything else anyone publishes.
            let _ = own_sent.await;
            publisher.upstream().publish(ROOM, json!({"end": true})).await?;
            anyhow::Ok(())
        });

        let send_via = addrs.clone();
        let polling = tokio::spawn(async move {
            let mut log = MessageLog::new(ROOM);
            let mut own_done = Some(own_done);
            let (mut sent, mut acks, mut frames, mut end) = (Vec::<String>::new(), Vec::new(), 0u64, false);
            while !end || acks.len() < sent.len() {
                let frame = poller.recv().await?;
                frames += 1;
                log.live(&frame);
                end |= is_end(&frame);
                match frame.typ() {
                    "ack" if sent.iter().any(|c| Some(c.as_str()) == frame.cid()) => acks.push(frame),
                    "error" => poller.violation(format!("refused: {frame}")),
                    _ => {}
                }
                if sent.len() < OWN && frames % 5 == 0 {
                    // Upstream hops nodes too, independently of the polls.
                    let via = send_via[sent.len() % send_via.len()];
                    let frame = json!({"type": "publish", "room": ROOM, "data": {"poller": sent.len()}});
                    sent.push(poller.sender().send_one(via, frame).await?);
                    if sent.len() == OWN {
                        let _ = own_done.take().map(|done| done.send(()));
                    }
                }
            }
            anyhow::Ok((poller, log, acks))
        });

        let streaming = tokio::spawn(async move {
            let mut log = MessageLog::new(ROOM);
            let (mut hop, mut in_this_attachment, mut end) = (0usize, 0usize, false);
            while !end {
                let frame = streamer.recv().await?;
                log.live(&frame);
                end = is_end(&frame);
                in_this_attachment += 1;
                // 1 to 5 frames per attachment, varying.
                if in_this_attachment > (hop * 7 + 3) % 5 {
                    // Cut with frames in flight; resume through the next node.
                    hop += 1;
                    in_this_attachment = 0;
                    streamer.use_last_event_id(hop % 2 == 1);
                    streamer.move_to(hop);
                }
            }
            anyhow::Ok((streamer, log, hop))
        });

        publishing.await??;
        let (poller, poller_log, acks) = polling.await??;
        let (streamer, streamer_log, hops) = streaming.await??;

        let history = full_history(&cluster.api(0), ROOM).await?;
        assert_eq!(history.len(), STREAM as usize + OWN + 1, "everything was stored once");
        for (who, member, log) in [("poller", &poller, &poller_log), ("streamer", &streamer, &streamer_log)] {
            assert!(member.violations().is_empty(), "{who}: {:#?}", member.violations());
            assert!(log.problems().is_empty(), "{who}: {:#?}", log.problems());
            log.matches_history(&history).map_err(|e| e.context(format!("{who} did not get every message once")))?;
            assert_eq!(member.sessions(), 1, "{who} kept its one session");
        }
        assert_eq!(acks.len(), OWN, "each of the poller's publishes was acked");
        for ack in &acks {
            let id = ack.u64("id").expect("ack with id");
            let stored = history.iter().find(|m| m["id"] == id).expect("acked id in history");
            assert_eq!(stored["user"], "poller", "{ack} names the poller's message");
        }
        assert!(
            poller.attachments() >= 3 * addrs.len(),
            "the poller went through every node several times ({} polls)",
            poller.attachments()
        );
        assert!(hops >= 3 * addrs.len(), "the SSE client hopped {hops} times");
        assert_eq!(streamer.attachments(), hops + 1, "one attachment per hop");
        Ok(())
    })
    .await;
}
