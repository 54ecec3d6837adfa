//! §1: the frames a client can receive are the ones the protocol lists. A
//! plain exchange (join, publish, echo, a refused publish, leave) must
//! produce no other frame type, since a client written from the document
//! cannot know what to do with it.

use switchboard_testkit::frame::{DOCUMENTED_CONTROL_TYPES, DOCUMENTED_SEQUENCED_TYPES};
use switchboard_testkit::scenario::ROOM;
use switchboard_testkit::{bounded, json, Downstream, Frame, TestServer, Transport, Upstream};

/// Reads every frame until the echo with `cid`.
async fn read_through(downstream: &mut dyn Downstream, cid: &str) -> anyhow::Result<Vec<Frame>> {
    let mut frames = Vec::new();
    loop {
        let frame = downstream.next_frame().await?;
        let done = frame.typ() == "echo" && frame.cid() == Some(cid);
        frames.push(frame);
        if done {
            return Ok(frames);
        }
    }
}

#[tokio::test]
async fn v1_exchange_produces_only_documented_frame_types() {
    bounded(async {
        let server = TestServer::start().await;
        let addr = server.addr();
        let mut a = Transport::WebSocket.attach(addr, None, 0).await?;
        let mut b = Transport::Sse.attach(addr, None, 0).await?;
        let mut upstreams = Vec::new();
        for downstream in [&mut a, &mut b] {
            let welcome = downstream.next_frame().await?;
            upstreams.push(Upstream::new(addr, welcome.str("sid").unwrap_or_default()));
        }
        let (up_a, up_b) = (&upstreams[0], &upstreams[1]);

        up_a.join(ROOM).await?;
        up_b.join(ROOM).await?;
        up_a.publish(ROOM, json!("hello from a")).await?;
        up_b.publish(ROOM, json!("hello from b")).await?;
        up_a.publish("not-joined", json!("refused")).await?;
        up_b.send_one(json!({"type":"leave","room":ROOM})).await?;
        up_a.publish(ROOM, json!("after b left")).await?;
        up_a.send_one(json!({"type":"echo","data":0,"cid":"end"})).await?;
        up_b.send_one(json!({"type":"echo","data":0,"cid":"end"})).await?;

        let mut strangers = Vec::new();
        for (name, downstream) in [("a", &mut a), ("b", &mut b)] {
            for frame in read_through(downstream.as_mut(), "end").await? {
                if frame.is_extension() {
                    strangers.push(format!("{name}: {frame}"));
                }
            }
        }
        assert!(
            strangers.is_empty(),
            "frames of types protocol.md does not list (sequenced: {DOCUMENTED_SEQUENCED_TYPES:?}, \
             control: {DOCUMENTED_CONTROL_TYPES:?}):\n{}",
            strangers.join("\n")
        );
        server.shutdown().await;
        Ok(())
    })
    .await;
}
