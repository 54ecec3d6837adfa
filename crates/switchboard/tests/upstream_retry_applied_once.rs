//! §3: an upstream frame resent with a `cid` the session already applied is
//! acknowledged again but not applied again; a refused frame is not
//! remembered, so resending it tries again.

use switchboard_testkit::downstream::WsDownstream;
use switchboard_testkit::room::{numbered, Subscriber};
use switchboard_testkit::scenario::ROOM;
use switchboard_testkit::{bounded, json, next_documented, Attach, Frame, TestServer, Transport};

/// Reads sequenced frames until `done` holds for the frames read so far.
async fn read_until(subscriber: &mut Subscriber, done: impl Fn(&[Frame]) -> bool) -> anyhow::Result<Vec<Frame>> {
    let mut frames = Vec::new();
    while !done(&frames) {
        frames.push(subscriber.next_sequenced().await?);
    }
    Ok(frames)
}

fn count(frames: &[Frame], typ: &str, pred: impl Fn(&Frame) -> bool) -> usize {
    frames.iter().filter(|f| f.typ() == typ && pred(f)).count()
}

#[tokio::test]
async fn retried_post_with_same_cid_is_applied_once_and_acked_each_time() {
    bounded(async {
        let server = TestServer::start().await;
        let mut observer = Subscriber::join(server.addr(), Transport::WebSocket, ROOM).await?;
        let mut sender = Subscriber::join(server.addr(), Transport::Stream, ROOM).await?;
        let sender_id = sender.id().to_owned();

        let body = json!([{"type":"publish","room":ROOM,"data":numbered(0),"cid":"dup-1"}]).to_string();
        for attempt in 0..3 {
            let (status, answer) = sender.upstream().post(body.clone()).await?;
            assert_eq!((status, &answer), (200, &json!({"accepted":1})), "attempt {attempt}");
        }
        sender.upstream().send_one(json!({"type":"publish","room":ROOM,"data":numbered(1),"cid":"after"})).await?;

        let frames = read_until(&mut sender, |f| {
            count(f, "ack", |a| a.cid() == Some("after")) == 1
                && count(f, "msg", |m| m.data() == Some(&numbered(1))) == 1
        })
        .await?;
        assert_eq!(count(&frames, "ack", |a| a.cid() == Some("dup-1")), 3, "{frames:?}");
        assert_eq!(count(&frames, "msg", |m| m.data() == Some(&numbered(0))), 1, "{frames:?}");
        assert_eq!(frames.len(), 6, "{frames:?}");

        // The other member saw the message once, then the next one.
        observer.expect_msgs(&sender_id, 0..2).await?;
        server.shutdown().await;
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn retried_batch_applies_only_the_frames_not_yet_applied() {
    bounded(async {
        let server = TestServer::start().await;
        let mut observer = Subscriber::join(server.addr(), Transport::Sse, ROOM).await?;
        let mut sender = Subscriber::join(server.addr(), Transport::WebSocket, ROOM).await?;
        let sender_id = sender.id().to_owned();
        let publish = |n: u64| json!({"type":"publish","room":ROOM,"data":numbered(n),"cid":format!("b-{n}")});

        let first = json!([publish(0), publish(1)]).to_string();
        let retry = json!([publish(0), publish(1), publish(2)]).to_string();
        assert_eq!(sender.upstream().post(first).await?, (200, json!({"accepted":2})));
        assert_eq!(sender.upstream().post(retry).await?, (200, json!({"accepted":3})));

        let frames = read_until(&mut sender, |f| f.len() == 8).await?;
        for (n, acks) in [(0, 2), (1, 2), (2, 1)] {
            let cid = format!("b-{n}");
            assert_eq!(count(&frames, "ack", |a| a.cid() == Some(&cid)), acks, "{cid}: {frames:?}");
            assert_eq!(count(&frames, "msg", |m| m.data() == Some(&numbered(n))), 1, "n={n}: {frames:?}");
        }
        observer.expect_msgs(&sender_id, 0..3).await?;
        // Nothing else is queued for the observer: the next message follows.
        sender.upstream().send_one(json!({"type":"publish","room":ROOM,"data":numbered(3)})).await?;
        observer.expect_msgs(&sender_id, 3..4).await?;
        server.shutdown().await;
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn retried_websocket_frame_with_same_cid_is_applied_once() {
    bounded(async {
        let server = TestServer::start().await;
        let mut observer = Subscriber::join(server.addr(), Transport::LongPoll, ROOM).await?;
        let mut ws = WsDownstream::connect(server.addr(), &Attach::new(None, 0)).await?;
        let welcome = ws.next().await?;
        let id = welcome.str("id").unwrap_or_default().to_owned();
        ws.send_text(&json!({"type":"join","room":ROOM,"cid":"j"}).to_string()).await?;
        let publish = json!({"type":"publish","room":ROOM,"data":numbered(0),"cid":"w-0"}).to_string();
        ws.send_text(&publish).await?;
        ws.send_text(&publish).await?;
        ws.send_text(&json!({"type":"publish","room":ROOM,"data":numbered(1),"cid":"w-1"}).to_string()).await?;
        let mut frames = Vec::new();
        let mut last = 0;
        while count(&frames, "ack", |a| a.cid() == Some("w-1")) == 0 {
            let frame = next_documented(&mut ws).await?;
            let seq = frame.seq().unwrap_or_default();
            assert!(seq > last, "seq must increase: {frame} after {last}");
            last = seq;
            frames.push(frame);
        }
        assert_eq!(frames.len(), 6, "join ack, msg, 2 acks, msg, ack: {frames:?}");
        assert_eq!(count(&frames, "ack", |a| a.cid() == Some("w-0")), 2, "{frames:?}");
        assert_eq!(count(&frames, "msg", |m| m.data() == Some(&numbered(0))), 1, "{frames:?}");
        observer.expect_msgs(&id, 0..2).await?;
        server.shutdown().await;
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn refused_frame_is_not_remembered_and_can_be_retried() {
    bounded(async {
        let server = TestServer::start().await;
        let mut observer = Subscriber::join(server.addr(), Transport::WebSocket, "other").await?;
        let mut sender = Subscriber::join(server.addr(), Transport::Sse, ROOM).await?;
        let sender_id = sender.id().to_owned();
        let publish = json!({"type":"publish","room":"other","data":numbered(7),"cid":"r-1"});

        // Not a member of "other": refused with 4403, for this cid.
        sender.upstream().send_one(publish.clone()).await?;
        let error = sender.next_sequenced().await?;
        assert_eq!((error.typ(), error.cid(), error.code()), ("error", Some("r-1"), Some(4403)), "{error}");

        // After joining, the same cid is applied: it was not remembered.
        sender.upstream().join("other").await?;
        assert_eq!(sender.next_sequenced().await?.typ(), "ack");
        sender.upstream().send_one(publish).await?;
        let frames = read_until(&mut sender, |f| f.len() == 2).await?;
        assert_eq!(count(&frames, "ack", |a| a.cid() == Some("r-1")), 1, "{frames:?}");
        assert_eq!(count(&frames, "msg", |m| m.data() == Some(&numbered(7))), 1, "{frames:?}");
        observer.expect_msgs(&sender_id, 7..8).await?;
        server.shutdown().await;
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn frame_without_cid_is_applied_but_not_acknowledged() {
    bounded(async {
        let server = TestServer::start().await;
        let mut sender = Subscriber::join(server.addr(), Transport::Stream, ROOM).await?;
        let answer =
            sender.upstream().post(json!({"type":"publish","room":ROOM,"data":numbered(0)}).to_string()).await?;
        assert_eq!(answer, (200, json!({"accepted":1})));
        sender.upstream().send_one(json!({"type":"echo","data":"end","cid":"end"})).await?;
        let msg = sender.next_sequenced().await?;
        assert_eq!((msg.typ(), msg.data()), ("msg", Some(&numbered(0))), "{msg}");
        let echo = sender.next_sequenced().await?;
        assert_eq!((echo.typ(), echo.cid()), ("echo", Some("end")), "expected no ack before the echo: {echo}");
        server.shutdown().await;
        Ok(())
    })
    .await;
}

/// A client whose POST timed out resends it while the server may still be
/// applying the first one. The two requests overlap; the messages must
/// still reach the room once each and in the order of the batch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_retry_of_a_batch_keeps_publish_order() {
    bounded(async {
        let server = TestServer::start().await;
        let mut observer = Subscriber::join(server.addr(), Transport::WebSocket, ROOM).await?;
        let sender = Subscriber::join(server.addr(), Transport::Stream, ROOM).await?;
        let sender_id = sender.id().to_owned();
        let upstream = sender.upstream().clone();
        for round in 0..10u64 {
            let batch: Vec<_> = (round * 50..round * 50 + 50)
                .map(|n| json!({"type":"publish","room":ROOM,"data":numbered(n),"cid":format!("o-{n}")}))
                .collect();
            let body = json!(batch).to_string();
            let (first, retry) = tokio::join!(
                tokio::spawn({
                    let (upstream, body) = (upstream.clone(), body.clone());
                    async move { upstream.post(body).await }
                }),
                tokio::spawn({
                    let upstream = upstream.clone();
                    async move { upstream.post(body).await }
                })
            );
            assert_eq!(first??.0, 200);
            assert_eq!(retry??.0, 200);
            observer.expect_msgs(&sender_id, round * 50..round * 50 + 50).await?;
        }
        server.shutdown().await;
        Ok(())
    })
    .await;
}
