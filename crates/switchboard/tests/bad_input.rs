//! Bad input gets the documented answer (§3, §6) and the server keeps
//! serving: malformed frames 400 / error 4400, oversized ones 413 / WebSocket
//! close 1009, unknown sessions 404 / close 4004.

use switchboard_testkit::downstream::WsDownstream;
use switchboard_testkit::http::HttpRequest;
use switchboard_testkit::room::{numbered, Subscriber};
use switchboard_testkit::scenario::{assert_serving, assert_sessions_unknown, ROOM};
use switchboard_testkit::serde_json::Value;
use switchboard_testkit::{bounded, json, next_non_ping, Attach, Ended, Frame, TestServer, Transport, Upstream};

const MAX_FRAME: usize = 1024;
const MAX_BODY: usize = 4096;
const MAX_BATCH: usize = 8;

async fn server() -> TestServer {
    TestServer::start_with(|c| {
        c.max_frame_bytes = MAX_FRAME;
        c.max_body_bytes = MAX_BODY;
        c.max_batch = MAX_BATCH;
    })
    .await
}

/// POSTs `body` and expects `status` with `{"code": code, "message": ...}`.
async fn expect_refused(upstream: &Upstream, body: &str, status: u16, code: u64) -> anyhow::Result<()> {
    let (got, answer) = upstream.post(body.to_owned()).await?;
    assert_eq!(got, status, "POST {body:.80}: answered {answer}");
    assert_eq!(answer["code"], code, "POST {body:.80}: answered {answer}");
    assert!(answer["message"].as_str().is_some_and(|m| !m.is_empty()), "POST {body:.80}: no message in {answer}");
    Ok(())
}

/// After refusals, the only frames the session gets are those of a final
/// echo: nothing refused was applied or answered.
async fn expect_nothing_applied(subscriber: &mut Subscriber) -> anyhow::Result<()> {
    subscriber.upstream().send_one(json!({"type":"echo","data":"end","cid":"end"})).await?;
    let frame = subscriber.next_sequenced().await?;
    assert_eq!((frame.typ(), frame.cid()), ("echo", Some("end")), "a refused frame was applied: {frame}");
    Ok(())
}

/// A body that is not a frame (a JSON object with a string `type`, §1) or
/// an array of frames is refused whole with 400 (§3).
#[tokio::test]
async fn malformed_posts_get_400_and_apply_nothing() {
    bounded(async {
        let server = server().await;
        let mut subscriber = Subscriber::join(server.addr(), Transport::Stream, ROOM).await?;
        let upstream = subscriber.upstream().clone();
        let good = json!({"type":"publish","room":ROOM,"data":numbered(0),"cid":"g-0"});
        let bodies = [
            "not json".to_owned(),
            "{".to_owned(),
            "42".to_owned(),
            "\"publish\"".to_owned(),
            "null".to_owned(),
            "".to_owned(),
            json!({"type":7,"cid":"x-1"}).to_string(),
            json!([good.clone(), 42]).to_string(),
            json!([good.clone(), "publish"]).to_string(),
            json!({"room":ROOM,"data":1,"cid":"x-2"}).to_string(),
        ];
        for body in &bodies {
            expect_refused(&upstream, body, 400, 4400).await?;
        }
        expect_nothing_applied(&mut subscriber).await?;
        assert_serving(server.addr()).await?;
        server.shutdown().await;
        Ok(())
    })
    .await;
}

/// A frame that breaks a rule (unknown type, missing or out-of-range room,
/// missing `seq`, `cid` of 0 or 65 characters) is refused with 4400: either
/// the whole POST (400) or that frame alone, with an `error` frame (§1.1).
/// Either way it is not applied.
#[tokio::test]
async fn invalid_frames_are_refused_with_4400() {
    bounded(async {
        let server = server().await;
        let mut subscriber = Subscriber::join(server.addr(), Transport::WebSocket, ROOM).await?;
        let upstream = subscriber.upstream().clone();
        let frames = [
            json!({"type":"bogus","cid":"x-1"}),
            json!({"type":"publish","data":1,"cid":"x-2"}),
            json!({"type":"join","cid":"x-3"}),
            json!({"type":"leave","cid":"x-4"}),
            json!({"type":"join","room":"","cid":"x-5"}),
            json!({"type":"join","room":"r".repeat(129),"cid":"x-6"}),
            json!({"type":"join","room":"a\u{0007}b","cid":"x-7"}),
            json!({"type":"join","room":"a\nb","cid":"x-8"}),
            json!({"type":"publish","room":"x".repeat(129),"data":1,"cid":"x-9"}),
            json!({"type":"echo","data":0,"cid":"c".repeat(65)}),
            json!({"type":"echo","data":0,"cid":""}),
            json!({"type":"ack"}),
            json!({"type":"ack","seq":"seven"}),
        ];
        for frame in frames {
            let (status, answer) = upstream.post(frame.to_string()).await?;
            match status {
                400 => assert_eq!(answer["code"], 4400, "{frame}: {answer}"),
                200 => {
                    let error = subscriber.next_sequenced().await?;
                    assert!(
                        error.typ() == "error" && error.code() == Some(4400),
                        "{frame} must be refused with 4400, got {error}"
                    );
                    let cid = frame["cid"].as_str().filter(|c| (1..=64).contains(&c.len()));
                    if let Some(cid) = cid {
                        assert_eq!(error.cid(), Some(cid), "{frame}: {error}");
                    }
                }
                other => panic!("{frame}: answered {other} {answer}"),
            }
        }
        // The longest valid room and cid are fine.
        let room = "r".repeat(128);
        let cid = "c".repeat(64);
        upstream.send_one(json!({"type":"join","room":room,"cid":cid})).await?;
        let ack = subscriber.next_sequenced().await?;
        assert_eq!((ack.typ(), ack.cid()), ("ack", Some(cid.as_str())), "{ack}");
        expect_nothing_applied(&mut subscriber).await?;
        assert_serving(server.addr()).await?;
        server.shutdown().await;
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn oversized_posts_get_413_and_apply_nothing() {
    bounded(async {
        let server = server().await;
        let mut subscriber = Subscriber::join(server.addr(), Transport::Sse, ROOM).await?;
        let upstream = subscriber.upstream().clone();
        let publish = |n: u64, pad: usize| json!({"type":"publish","room":ROOM,"data":{"n":n,"pad":"x".repeat(pad)}});
        // One frame over the frame limit, inside the body limit.
        expect_refused(&upstream, &publish(0, MAX_FRAME + 10).to_string(), 413, 4413).await?;
        // A body over the body limit made of small frames.
        let many: Vec<Value> = (0..6).map(|n| publish(n, 900)).collect();
        let body = Value::Array(many).to_string();
        assert!(body.len() > MAX_BODY);
        expect_refused(&upstream, &body, 413, 4413).await?;
        // A body over the body limit that is not even JSON: the size wins.
        expect_refused(&upstream, &"x".repeat(MAX_BODY * 4), 413, 4413).await?;
        // A batch of one frame more than allowed.
        let batch: Vec<Value> = (0..MAX_BATCH as u64 + 1).map(|n| publish(n, 1)).collect();
        expect_refused(&upstream, &Value::Array(batch).to_string(), 413, 4413).await?;
        expect_nothing_applied(&mut subscriber).await?;

        // Exactly at the batch limit is fine.
        let batch: Vec<Value> = (0..MAX_BATCH as u64).map(|n| json!({"type":"echo","data":n})).collect();
        upstream.send(batch).await?;
        for n in 0..MAX_BATCH as u64 {
            let echo = subscriber.next_sequenced().await?;
            assert_eq!((echo.typ(), echo.data()), ("echo", Some(&json!(n))), "{echo}");
        }
        assert_serving(server.addr()).await?;
        server.shutdown().await;
        Ok(())
    })
    .await;
}

/// Malformed frames on a WebSocket are answered with `error` 4400; the
/// socket stays open and later frames are served.
#[tokio::test]
async fn websocket_malformed_frames_get_error_4400_and_stay_open() {
    bounded(async {
        let server = server().await;
        let mut ws = WsDownstream::connect(server.addr(), &Attach::new(None, 0)).await?;
        ws.next().await?; // welcome
        let mut next_seq = 1;
        for text in [
            "not json".to_owned(),
            "42".to_owned(),
            json!({"type":"bogus","cid":"b-1"}).to_string(),
            json!({"type":"publish","data":1,"cid":"b-2"}).to_string(),
            json!({"type":"join"}).to_string(),
        ] {
            ws.send_text(&text).await?;
            let error = next_non_ping(&mut ws).await?;
            assert!(error.typ() == "error" && error.code() == Some(4400), "{text}: expected error 4400, got {error}");
            if let Some(seq) = error.seq() {
                assert_eq!(seq, next_seq, "{error}");
                next_seq += 1;
            }
        }
        ws.send_text(r#"{"type":"echo","data":"ok","cid":"e-1"}"#).await?;
        let echo = next_non_ping(&mut ws).await?;
        assert_eq!((echo.typ(), echo.cid(), echo.seq()), ("echo", Some("e-1"), Some(next_seq)), "{echo}");
        assert_serving(server.addr()).await?;
        server.shutdown().await;
        Ok(())
    })
    .await;
}

/// A WebSocket message over the frame limit closes the socket with 1009;
/// the session survives and can be resumed.
#[tokio::test]
async fn websocket_oversized_message_is_closed_with_1009() {
    bounded(async {
        let server = server().await;
        let mut ws = WsDownstream::connect(server.addr(), &Attach::new(None, 0)).await?;
        let welcome = ws.next().await?;
        let sid = welcome.str("sid").unwrap_or_default().to_owned();
        let big = json!({"type":"echo","data":"x".repeat(MAX_FRAME * 2),"cid":"big"}).to_string();
        ws.send_text(&big).await?;
        let mut frames: Vec<Frame> = Vec::new();
        let ended = loop {
            match ws.next().await {
                Ok(frame) => frames.push(frame),
                Err(e) => break e,
            }
        };
        assert_eq!(
            ended.downcast_ref::<Ended>(),
            Some(&Ended { ws_close: Some(1009) }),
            "expected WebSocket close 1009, got {ended:#} after {frames:?}"
        );
        assert!(frames.iter().all(|f| f.cid() != Some("big")), "the oversized frame was applied: {frames:?}");

        let mut resumed = WsDownstream::connect(server.addr(), &Attach::new(Some(&sid), 0)).await?;
        let welcome = resumed.next().await?;
        assert_eq!(welcome.bool("resumed"), Some(true), "{welcome}");
        assert_serving(server.addr()).await?;
        server.shutdown().await;
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn unknown_sid_gets_close_4004_downstream_and_404_upstream() {
    bounded(async {
        let server = server().await;
        let sids = ["0123456789abcdef0123456789abcdef", "not-a-session"];
        for sid in sids {
            let upstream = Upstream::new(server.addr(), sid);
            let echo = json!({"type":"echo","data":0,"cid":"e"}).to_string();
            expect_refused(&upstream, &echo, 404, 4004).await?;
        }
        for sid in sids {
            assert_sessions_unknown(server.addr(), sid).await?;
        }
        assert_serving(server.addr()).await?;
        server.shutdown().await;
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn malformed_query_parameters_get_400() {
    bounded(async {
        let server = server().await;
        for path in
            ["/v1/poll?last=abc", "/v1/poll?last=-1", "/v1/poll?wait=soon", "/v1/stream?last=abc", "/v1/sse?last=1.5"]
        {
            let response = HttpRequest::get(path).send(server.addr()).await?;
            assert_eq!(response.status, 400, "GET {path}");
            let body = response.json().await?;
            assert_eq!(body["code"], 4400, "GET {path}: {body}");
        }
        assert_serving(server.addr()).await?;
        server.shutdown().await;
        Ok(())
    })
    .await;
}
